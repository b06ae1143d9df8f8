"""The local control socket: how ``stationctl`` asks the running agent to act.

A Unix stream socket at ``cfg.socket_path``, owned by the agent, mode 0660 with group
``cfg.admin_group`` (0600 when that group does not exist): the file mode keeps everyone else out,
and every connection is checked again with SO_PEERCRED (uid 0, the agent's own uid, or a member
of the admin group), so a loosened mode does not open the door and a refused user gets a clear
answer instead of silence.

Protocol: JSON lines. Each request is one object ``{"cmd": NAME, ...}`` (an optional ``id``,
text or a whole number, is echoed); each answer is one object ``{"ok": bool, "message": str,
"data": {...}, "error": code}`` (``error`` only when not ok). Commands: ping, status, play, stop,
attendance. Every line gets exactly one answer, whatever it holds (not JSON, nested 30,000 deep,
not an object...): a bad line is answered ``bad_request`` and the connection goes on.

``agent_busy`` means the core thread did not take the request in time and nothing was done: a
request it has not begun is cancelled (``Runtime.submit`` for play/stop, ``call_or_nothing`` for
the rest), one it has begun is waited for, so nothing runs behind the admin's back.

Threads: one server thread accepts; each connection gets a short-lived handler thread (at most
``MAX_CLIENTS`` at once) that reaches the core only through ``runtime.call``/``runtime.submit``.
Nothing here ever runs on, or waits inside, the core thread.

The client side is agent/stationctl/client.py (``request``), kept apart so that stationctl starts
without the server's imports.
"""

from __future__ import annotations

import errno
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from agent import __version__
from agent.domain.document import DocumentError, loads_strict_json
from agent.runtime.play_check import media_problem, play_target

log = logging.getLogger("agent.adapters.control_socket")

MAX_LINE = 64 * 1024
MAX_CLIENTS = 8
CLIENT_IDLE_S = 30.0
CORE_TIMEOUT_S = 10.0
SOCKET_MODE = 0o660

# Error codes in answers (stationctl turns them into the admin's language).
FORBIDDEN = "forbidden"
BAD_REQUEST = "bad_request"
UNKNOWN_COMMAND = "unknown_command"
BUSY = "agent_busy"
INTERNAL = "internal"
BAD_MEDIA = "bad_media"
BUSY_MESSAGE = "the agent was busy and did not take the request in time; nothing was done"
MAX_ID = 128  # characters of an echoed request id


# -- peer credentials ----------------------------------------------------------------------------


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (SO_PEERCRED)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def admin_gid(group: str | None) -> int | None:
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def process_groups(pid: int, proc_root: Path = Path("/proc")) -> set[int]:
    """The supplementary groups the peer process runs with (its real credentials, not /etc)."""
    try:
        text = (proc_root / str(pid) / "status").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("Groups:"):
            return {int(g) for g in line.split()[1:] if g.isdigit()}
    return set()


def is_permitted(
    pid: int, uid: int, gid: int, group: str | None, *, own_uid: int | None = None
) -> bool:
    """Root, the agent's own user, or a member of the admin group."""
    if uid == 0 or uid == (os.getuid() if own_uid is None else own_uid):
        return True
    agid = admin_gid(group)
    if agid is None:
        return False
    if gid == agid or agid in process_groups(pid):
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
        return name in grp.getgrgid(agid).gr_mem
    except KeyError:
        return False


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def overflow_uid() -> int:
    try:
        return int(Path("/proc/sys/kernel/overflowuid").read_text().strip())
    except (OSError, ValueError):
        return 65534


# -- the server ----------------------------------------------------------------------------------


class ControlServer:
    """Serve the control socket for a Runtime (see module docstring)."""

    def __init__(
        self,
        runtime: Any,
        path: Path | None = None,
        admin_group: str | None = None,
        *,
        core_timeout: float = CORE_TIMEOUT_S,
    ) -> None:
        self.runtime = runtime
        cfg = runtime.cfg
        self.path = Path(path or cfg.socket_path)
        self.admin_group = cfg.admin_group if admin_group is None else admin_group
        self.core_timeout = core_timeout
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._inode: tuple[int, int] | None = None
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ping": self._ping,
            "status": self._status,
            "play": self._play,
            "stop": self._stop_cmd,
            "attendance": self._attendance,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def start_for(cls, runtime: Any) -> ControlServer:
        """Start the server; never raises (the agent plays courses without its socket too)."""
        server = cls(runtime)
        try:
            server.start()
        except OSError as exc:
            log.error("control socket %s not available: %s", server.path, exc)
            server._log_event("error", f"The control socket {server.path} is not available: {exc}")
        return server

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            # Nobody can connect before listen(), so the mode is right before the door opens.
            os.chmod(self.path, self._socket_mode())
            sock.listen(16)  # blocking accept: the thread sleeps until a client comes
        except OSError:
            sock.close()
            raise
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self.sock = sock
        self.thread = threading.Thread(target=self._serve, name="control-socket", daemon=True)
        self.thread.start()
        log.info("control socket listening at %s", self.path)

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(str(self.path))
        except OSError:
            os.unlink(self.path)  # left over from a crash: nobody answers on it
            return
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, f"another agent answers on {self.path}")

    def _socket_mode(self) -> int:
        """0660 with the admin group on the socket, else 0600 (root and the agent only).

        Under systemd with ``PrivateUsers=yes`` the admin group is not mapped into the agent's
        user namespace and cannot be named in chown(); the state directory is setgid
        stationadmin there, so the socket is born in that group and 0660 is still right.
        """
        gid = admin_gid(self.admin_group)
        if gid is None:
            log.warning(
                "admin group %r does not exist; control socket is for root only", self.admin_group
            )
            return 0o600
        try:
            os.chown(self.path, -1, gid)
            return SOCKET_MODE
        except OSError as exc:
            if os.stat(self.path.parent).st_mode & stat.S_ISGID:
                return SOCKET_MODE
            log.warning(
                "cannot give %s to group %s (%s); root only", self.path, self.admin_group, exc
            )
            return 0o600

    def stop(self) -> None:
        self._stop.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once
            except OSError:
                pass  # not connected-state on some kernels: close() below still ends it
        if self.thread is not None:
            self.thread.join(2.0)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        try:
            st = os.stat(self.path)
            if self._inode == (st.st_dev, st.st_ino):
                os.unlink(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("control socket %s not removed: %s", self.path, exc)

    # -- connections -----------------------------------------------------------------------------

    def _serve(self) -> None:
        sock = self.sock
        if sock is None:
            log.error("control socket: serve() called before start()")
            return
        while not self._stop.is_set():
            try:
                conn, _addr = sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                self._refuse(conn, BUSY, "too many stationctl connections at once; try again")
                continue
            threading.Thread(
                target=self._client, args=(conn,), name="control-client", daemon=True
            ).start()

    def _refuse(self, conn: socket.socket, code: str, message: str, **data: Any) -> None:
        try:
            conn.settimeout(1.0)
            conn.sendall(_encode({"ok": False, "error": code, "message": message, "data": data}))
        except OSError as exc:
            log.debug("control: refusal (%s) not delivered, the client left: %s", code, exc)
        finally:
            conn.close()

    def _client(self, conn: socket.socket) -> None:
        try:
            pid, uid, gid = peer_credentials(conn)
            if not (is_permitted(pid, uid, gid, self.admin_group) or self._admitted_by_mode(uid)):
                log.warning("control: refused %s (uid %d, pid %d)", user_name(uid), uid, pid)
                self._refuse(
                    conn,
                    FORBIDDEN,
                    f"user {user_name(uid)} may not control the agent: only root and members "
                    f"of group {self.admin_group} may",
                    user=user_name(uid),
                    group=self.admin_group,
                )
                return
            conn.settimeout(CLIENT_IDLE_S)
            with conn, conn.makefile("rb") as reader:
                while not self._stop.is_set():
                    line = reader.readline(MAX_LINE + 1)
                    if not line:
                        return
                    if len(line) > MAX_LINE:
                        conn.sendall(_encode(_error(BAD_REQUEST, "request too long")))
                        return
                    answer = self.handle_line(line, uid=uid)
                    conn.sendall(_encode(answer))
        except OSError as exc:
            log.debug("control: connection ended: %s", exc)
        finally:
            self._slots.release()

    def _admitted_by_mode(self, uid: int) -> bool:
        """A peer whose uid is not mapped into our user namespace (systemd PrivateUsers=yes shows
        it as the overflow uid) can only have connected through the file's group bits: accept
        it while the socket grants nothing to others, refuse it otherwise."""
        if uid != overflow_uid():
            return False
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return False
        return mode & 0o007 == 0 and mode & 0o060 == 0o060

    def handle_line(self, line: bytes, *, uid: int = 0) -> dict[str, Any]:
        """One request line -> one answer. Never raises: whatever the line holds, the client gets
        an answer and its connection (and this thread) goes on."""
        try:
            return self._answer(line, uid)
        except Exception as exc:
            log.exception("control: request failed (uid %d)", uid)
            return _error(INTERNAL, f"{type(exc).__name__}: {exc}")

    def _answer(self, line: bytes, uid: int) -> dict[str, Any]:
        try:
            req = loads_strict_json(line, "request", MAX_LINE)
        except DocumentError as exc:
            return _error(BAD_REQUEST, f"a request is one JSON object per line: {exc.message}")
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return _error(BAD_REQUEST, 'a request is a JSON object with "cmd"')
        req_id = req.get("id")
        if "id" in req and not _plain_id(req_id):
            return _error(BAD_REQUEST, f'"id" must be text (up to {MAX_ID}) or a whole number')
        name = req["cmd"]
        handler = self.handlers.get(name)
        if handler is None:
            answer = _error(UNKNOWN_COMMAND, f"unknown command {name[:64]!r}")
        else:
            try:
                answer = handler(req)
            except TimeoutError:
                answer = _error(BUSY, BUSY_MESSAGE)
            except Exception as exc:  # a bad request must not kill the handler silently
                log.exception("control command %s failed", name)
                answer = _error(INTERNAL, f"{type(exc).__name__}: {exc}")
        if "id" in req:
            answer["id"] = req_id
        if name in ("play", "stop", "attendance"):
            log.info("control: %s by uid %d: %s", name, uid, answer.get("message"))
        return answer

    def _call(self, fn: Callable[[], Any]) -> Any:
        return call_or_nothing(self.runtime, fn, self.core_timeout)

    # -- commands ----------------------------------------------------------------------------------

    def _ping(self, _req: dict[str, Any]) -> dict[str, Any]:
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

    def _status(self, _req: dict[str, Any]) -> dict[str, Any]:
        snap = self._call(self.runtime.status_snapshot)
        snap.setdefault("pid", os.getpid())
        return {"ok": True, "message": "status", "data": json.loads(json.dumps(snap, default=str))}

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
        return _error(INTERNAL, "the agent gave no answer")

    def _play(self, req: dict[str, Any]) -> dict[str, Any]:
        from agent.domain.core import PlayCommand

        course = _opt_str(req, "course")
        media = _opt_str(req, "media")
        title = _opt_str(req, "title")
        if not course and not media:
            return _error(BAD_REQUEST, "play needs a course id or a media path")
        target = self._call(lambda: play_target(self.runtime.core, course, media))
        problem = media_problem(self.runtime.cfg.content_dir, target)
        if problem is not None:
            return _error(
                BAD_MEDIA,
                f"{problem.message}; nothing was played",
                reason=problem.reason,
                media=target,
            )
        return self._submit(PlayCommand(course, media, title, trigger="admin"))

    def _stop_cmd(self, _req: dict[str, Any]) -> dict[str, Any]:
        from agent.domain.core import StopCommand

        return self._submit(StopCommand(trigger="admin"))

    def _attendance(self, req: dict[str, Any]) -> dict[str, Any]:
        from agent.runtime.attendance import AttendanceError, apply_attendance

        count = req.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            return _error("bad_count", "attendance needs a whole number")
        record = _opt_str(req, "record")
        try:
            result = self._call(lambda: apply_attendance(self.runtime, count, record))
        except AttendanceError as exc:
            return {"ok": False, "error": exc.code, "message": exc.message, "data": exc.data}
        return {"ok": True, "message": result["message"], "data": result}

    def _log_event(self, level: str, message: str) -> None:
        store = getattr(self.runtime, "store", None)
        if store is None:
            return
        try:
            self.runtime.call(
                lambda: store.add_event(level, "control_socket", message), timeout=None
            )
        except Exception:
            log.warning("control: event %r not logged", message, exc_info=True)


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


def _error(code: str, message: str, **data: Any) -> dict[str, Any]:
    return {"ok": False, "error": code, "message": message, "data": data}


def _encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
