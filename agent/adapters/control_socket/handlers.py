"""The control protocol's requests: one line in, one answer out, and the commands behind them.

Every line gets exactly one answer, whatever it holds (not JSON, nested 30,000 deep, not an
object...): a bad line is answered ``bad_request`` and the connection goes on.

``agent_busy`` means the core thread did not take the request in time and nothing was done: a
request it has not begun is cancelled (``Runtime.submit`` for play/stop, ``call_or_nothing`` for
the rest), one it has begun is waited for, so nothing runs behind the admin's back. The commands
run on the client's handler thread and reach the core only through ``runtime.call`` and
``runtime.submit``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from agent import __version__
from agent.domain.document import DocumentError, loads_strict_json
from agent.runtime.play_check import media_problem, play_target

from .wire import (
    BAD_MEDIA,
    BAD_REQUEST,
    BUSY,
    BUSY_MESSAGE,
    INTERNAL,
    MAX_ID,
    MAX_LINE,
    UNKNOWN_COMMAND,
    error,
)

log = logging.getLogger("agent.adapters.control_socket")

Handler = Callable[[dict[str, Any]], dict[str, Any]]
LOGGED_COMMANDS = (
    "play",
    "stop",
    "attendance",
    "reload",
    "library_import",
)  # the ones that change something


class RequestHandlers:
    """Answers requests for a Runtime; ``commands`` maps each command name to its handler."""

    def __init__(self, runtime: Any, core_timeout: float) -> None:
        self.runtime = runtime
        self.core_timeout = core_timeout
        self.commands: dict[str, Handler] = {
            "ping": self.ping,
            "status": self.status,
            "play": self.play,
            "stop": self.stop,
            "attendance": self.attendance,
            "reload": self.reload,
            "library": self.library,
            "library_import": self.library_import,
        }

    def answer(self, line: bytes, uid: int) -> dict[str, Any]:
        """One request line -> one answer. Never raises: whatever the line holds, the client gets
        an answer and its connection (and its thread) goes on."""
        try:
            return self._answer(line, uid)
        except Exception as exc:
            log.exception("control: request failed (uid %d)", uid)
            return error(INTERNAL, f"{type(exc).__name__}: {exc}")

    def _answer(self, line: bytes, uid: int) -> dict[str, Any]:
        try:
            req = loads_strict_json(line, "request", MAX_LINE)
        except DocumentError as exc:
            return error(BAD_REQUEST, f"a request is one JSON object per line: {exc.message}")
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return error(BAD_REQUEST, 'a request is a JSON object with "cmd"')
        req_id = req.get("id")
        if "id" in req and not _plain_id(req_id):
            return error(BAD_REQUEST, f'"id" must be text (up to {MAX_ID}) or a whole number')
        name = req["cmd"]
        handler = self.commands.get(name)
        if handler is None:
            answer = error(UNKNOWN_COMMAND, f"unknown command {name[:64]!r}")
        else:
            try:
                answer = handler(req)
            except TimeoutError:
                answer = error(BUSY, BUSY_MESSAGE)
            except Exception as exc:  # a bad request must not kill the handler silently
                log.exception("control command %s failed", name)
                answer = error(INTERNAL, f"{type(exc).__name__}: {exc}")
        if "id" in req:
            answer["id"] = req_id
        if name in LOGGED_COMMANDS:
            log.info("control: %s by uid %d: %s", name, uid, answer.get("message"))
        return answer

    # -- commands ----------------------------------------------------------------------------------

    def ping(self, _req: dict[str, Any]) -> dict[str, Any]:
        from agent.domain.records import utc_text

        rt = self.runtime
        return {
            "ok": True,
            "message": "pong",
            "data": {
                "pid": os.getpid(),
                "version": __version__,
                "terminal": rt.cfg.terminal,
                "started_at": utc_text(rt.started_wall),
            },
        }

    def reload(self, _req: dict[str, Any]) -> dict[str, Any]:
        """Re-read the stored schedule layers now (``stationctl schedule apply`` just wrote one),
        rather than at the next poll of the schedule files."""
        versions = self._call(lambda: self._reload_now())
        return {"ok": True, "message": "schedules re-read", "data": {"versions": versions}}

    def _reload_now(self) -> dict[str, int]:
        self.runtime.reload_schedules("stationctl asked")
        self.runtime.library.load()
        return self.runtime.schedule_versions()

    def library(self, _req: dict[str, Any]) -> dict[str, Any]:
        """The on-demand courses (id, title, category, files) and the manifests' versions."""
        from agent.runtime.library_import import library_listing

        data = self._call(lambda: library_listing(self.runtime))
        return {"ok": True, "message": "library", "data": data}

    def library_import(self, req: dict[str, Any]) -> dict[str, Any]:
        """Apply the course manifests found in a folder (a USB stick) and have the content
        service copy the matching files from it; the copying shows in the status."""
        from agent.runtime.library_import import ImportError_, import_folder

        folder = _opt_str(req, "dir")
        if not folder:
            return error(BAD_REQUEST, "library_import needs a folder (dir)")
        try:
            data = import_folder(self.runtime, folder, self._call)
        except ImportError_ as exc:
            return {"ok": False, "error": exc.code, "message": exc.message, "data": {}}
        message = f"{len(data['manifests'])} manifest(s) read from {folder}"
        return {"ok": True, "message": message, "data": data}

    def status(self, _req: dict[str, Any]) -> dict[str, Any]:
        snap = self._call(self.runtime.status_snapshot)
        snap.setdefault("pid", os.getpid())
        return {"ok": True, "message": "status", "data": json.loads(json.dumps(snap, default=str))}

    def play(self, req: dict[str, Any]) -> dict[str, Any]:
        from agent.domain.core import PlayCommand

        course = _opt_str(req, "course")
        media = _opt_str(req, "media")
        title = _opt_str(req, "title")
        if not course and not media:
            return error(BAD_REQUEST, "play needs a course id or a media path")
        target = self._call(lambda: play_target(self.runtime.core, course, media))
        problem = media_problem(self.runtime.cfg.content_dir, target)
        if problem is not None:
            return error(
                BAD_MEDIA,
                f"{problem.message}; nothing was played",
                reason=problem.reason,
                media=target,
            )
        return self._submit(PlayCommand(course, media, title, trigger="admin"))

    def stop(self, _req: dict[str, Any]) -> dict[str, Any]:
        from agent.domain.core import StopCommand

        return self._submit(StopCommand(trigger="admin"))

    def attendance(self, req: dict[str, Any]) -> dict[str, Any]:
        from agent.runtime.attendance import AttendanceError, apply_attendance

        count = req.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            return error("bad_count", "attendance needs a whole number")
        record = _opt_str(req, "record")
        try:
            result = self._call(lambda: apply_attendance(self.runtime, count, record))
        except AttendanceError as exc:
            return {"ok": False, "error": exc.code, "message": exc.message, "data": exc.data}
        return {"ok": True, "message": result["message"], "data": result}

    # -- reaching the core -------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Any:
        return call_or_nothing(self.runtime, fn, self.core_timeout)

    def _submit(self, event: object) -> dict[str, Any]:
        from agent.domain.core import Reply

        actions = self.runtime.submit(event, timeout=self.core_timeout)
        for action in actions:
            if isinstance(action, Reply):
                out: dict[str, Any] = {
                    "ok": action.ok,
                    "message": action.message,
                    "data": dict(action.data),
                }
                if not action.ok:
                    out["error"] = str(action.data.get("error") or "refused")
                return out
        return error(INTERNAL, "the agent gave no answer")


def call_or_nothing(runtime: Any, fn: Callable[[], Any], timeout: float) -> Any:
    """``fn``'s result from the core thread; ``TimeoutError`` means it did not run and never will.

    A plain ``runtime.call`` that times out still runs later; here the core thread first claims
    the call, and a call not yet claimed when the wait ends is cancelled. One already running is
    waited for (a core step takes milliseconds), so the answer always says what happened.
    """
    claim: Future[None] = Future()

    def once() -> Any:
        if not claim.set_running_or_notify_cancel():
            return None  # the caller gave up before the core thread got here
        return fn()

    fut: Future[Any] = runtime.call(once, timeout=None)
    try:
        return fut.result(timeout)
    except FutureTimeout:
        if claim.cancel():
            raise TimeoutError(BUSY_MESSAGE) from None
    return fut.result()


def _plain_id(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_ID
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_str(req: dict[str, Any], key: str) -> str | None:
    value = req.get(key)
    return value if isinstance(value, str) and value else None
