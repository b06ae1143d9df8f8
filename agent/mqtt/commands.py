"""The ``cmd`` topic: check a command, run it at most once, and queue the reply.

A command is ``{"id", "cmd", "args", "ts", "terminal"?}``. Whatever arrives, the terminal answers
on ``cmd/reply`` with the same ``id`` (null when there was none to read) and a status: ``ok``,
``error`` (with an ``error`` code) or ``duplicate`` (the id ran before; it is not run again, the
earlier reply comes back in ``data.original``). Nothing that arrives here can crash the agent.

Executed ids are kept on disk (``mqtt_commands`` table, the latest 2000), claimed *before* the
command runs: after a crash in the middle, a replay is answered ``duplicate`` rather than run twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agent import __version__
from agent.mqtt import protocol as p
from agent.mqtt.bridge import BridgeClosed, CommandResult
from agent.store import utc_now_text

log = logging.getLogger("agent.mqtt")

PLAY_ARGS = {"course_id": str, "media": str, "title": str, "priority": int}


class CommandProcessor:
    def __init__(
        self,
        bridge: Any,
        terminal: str,
        *,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bridge = bridge
        self.terminal = terminal
        self.on_status = on_status  # republish the retained status after a status command
        self.now = now
        self.started = now()
        self.clock = "unsynced"

    def handle(self, payload: bytes) -> dict[str, Any]:
        """Process one command message; returns the reply that was queued."""
        cmd_id: str | None = None
        cmd: str | None = None
        try:
            msg = p.decode(payload, p.MAX_CMD_BYTES, "cmd")
            if isinstance(msg, dict):
                raw_id, raw_cmd = msg.get("id"), msg.get("cmd")
                if isinstance(raw_id, str) and p.CMD_ID_RE.match(raw_id):
                    cmd_id = raw_id
                if isinstance(raw_cmd, str) and len(raw_cmd) <= 32:
                    cmd = raw_cmd
            problems = p.validate("cmd", msg)
            if problems:
                raise p.ProtocolError("malformed", "; ".join(problems))
        except p.ProtocolError as exc:
            return self._reply(cmd_id, cmd, "error", exc.message, {}, exc.code, remember=False)
        assert cmd_id is not None and cmd is not None
        target = msg.get("terminal")
        if target is not None and target != self.terminal:
            return self._reply(
                cmd_id,
                cmd,
                "error",
                f"this command is for terminal {target!r}, this is {self.terminal!r}",
                {},
                "wrong_terminal",
                remember=False,
            )
        earlier = self.bridge.command_begin(cmd_id, cmd)
        if earlier is not None:
            original = earlier.get("reply") or {"status": earlier.get("status")}
            return self._reply(
                cmd_id,
                cmd,
                "duplicate",
                f"command {cmd_id} was already received at {earlier.get('received_at', '?')}; not run again",
                {"original": original},
                None,
                remember=False,
            )
        args = msg.get("args") or {}
        try:
            result = self._run(cmd, args)
        except BridgeClosed:
            raise
        except Exception as exc:  # a failing command must never take the link down
            log.exception("command %s (%s) failed", cmd_id, cmd)
            result = CommandResult(False, f"command failed: {exc}", {}, "failed")
        status = "ok" if result.ok else "error"
        return self._reply(
            cmd_id,
            cmd,
            status,
            result.message,
            result.data,
            result.error if not result.ok else None,
        )

    def _run(self, cmd: str, args: dict[str, Any]) -> CommandResult:
        if cmd not in p.COMMANDS:
            return CommandResult(
                False,
                f"unknown command {cmd!r}; known: {', '.join(p.COMMANDS)}",
                {},
                "unknown_command",
            )
        if cmd == "ping":
            return CommandResult(
                True,
                "pong",
                {"uptime_s": round(self.now() - self.started, 1), "version": __version__},
            )
        if cmd == "status":
            snapshot = self.bridge.status()
            if self.on_status is not None:
                self.on_status(snapshot)
            return CommandResult(True, "status", {"status": snapshot})
        if cmd == "play":
            problem = _check_args(args, PLAY_ARGS)
            if problem:
                return CommandResult(False, problem, {}, "bad_args")
            if not args.get("course_id") and not args.get("media"):
                return CommandResult(
                    False, "play needs args.course_id or args.media", {}, "bad_args"
                )
            return self.bridge.play(args)
        if cmd == "stop":
            return self.bridge.stop()
        return self.bridge.reload()

    def _reply(
        self,
        cmd_id: str | None,
        cmd: str | None,
        status: str,
        message: str,
        data: dict[str, Any],
        error: str | None,
        remember: bool = True,
    ) -> dict[str, Any]:
        try:
            self.clock = self.bridge.clock()
        except BridgeClosed:
            raise
        except Exception:
            pass
        reply = p.cmd_reply(
            ts=utc_now_text(),
            terminal=self.terminal,
            cmd_id=cmd_id,
            cmd=cmd,
            status=status,
            message=message[:2000],
            data=data,
            error=error,
            clock=self.clock,
        )
        self.bridge.command_finish(cmd_id if remember else None, status, reply)
        level = logging.INFO if status == "ok" else logging.WARNING
        log.log(level, "command %s %s: %s (%s)", cmd_id, cmd, status, message[:200])
        return reply


def _check_args(args: Any, allowed: dict[str, type]) -> str | None:
    if not isinstance(args, dict):
        return "args must be an object"
    for key, value in args.items():
        if key not in allowed:
            return f"unknown argument {key!r} (known: {', '.join(allowed)})"
        want = allowed[key]
        if value is not None and (not isinstance(value, want) or isinstance(value, bool)):
            return f"argument {key!r} must be {'text' if want is str else 'a whole number'}"
        if isinstance(value, str) and len(value) > 1024:
            return f"argument {key!r} is too long"
    return None
