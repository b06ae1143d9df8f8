"""The ``cmd`` topic: check a command, run it at most once, and queue the reply.

A command is ``{"id", "cmd", "args", "ts", "terminal"?, "expires"?}``, signed in an envelope
(``docs/trust.md``) where the terminal requires it; a signed one must carry ``expires`` and is
refused once expired. Whatever arrives, the terminal answers
on ``cmd/reply`` with the same ``id`` (null when there was none to read) and a status: ``ok``,
``error`` (with an ``error`` code) or ``duplicate`` (the id ran before; it is not run again, the
earlier reply comes back in ``data.original``). Nothing that arrives here can crash the agent.

A command is checked whole (JSON, fields, name, arguments) before its id is claimed, so a refused
command can be corrected and sent again under the same id. Executed ids are kept on disk
(``mqtt_commands`` table, the latest 2000), claimed *before* the command runs: after a crash in
the middle, a replay is answered ``duplicate`` rather than run twice.

``agent_busy`` means the core thread did not take the command in time and it was *not* executed
(the bridge and ``Runtime.submit`` cancel what they gave up on): nothing runs later behind the
county's back. The reply is remembered like any other, so a re-delivered copy is ``duplicate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import __version__
from agent.adapters.mqtt.bridge import BridgeClosed, CommandResult
from agent.domain import protocol as p
from agent.domain.records import utc_now_text
from agent.domain.trust import TrustRejected, parse_envelope

log = logging.getLogger("agent.adapters.mqtt")

MAX_NAME = 32  # characters in a command name; longer ones are never a known command
PLAY_ARGS = {"course_id": str, "media": str, "title": str, "priority": int}
ARGS: dict[str, dict[str, type]] = {name: {} for name in p.COMMANDS} | {"play": PLAY_ARGS}
BUSY = "agent_busy"
BUSY_MESSAGE = "the agent was busy and did not take the command in time; nothing was done"


@dataclass
class Incoming:
    """What could be read of one command: its id and name where they are valid, and the first
    reason it cannot run (``problem``; None when it can)."""

    cmd_id: str | None = None
    cmd: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    problem: p.ProtocolError | None = None


def read_command(payload: bytes) -> Incoming:
    """Decode and check a command; never raises (every problem becomes ``Incoming.problem``)."""
    inc = Incoming()
    try:
        msg = p.decode(payload, p.MAX_CMD_BYTES, "cmd")
    except p.ProtocolError as exc:
        inc.problem = exc
        return inc
    if isinstance(msg, dict):
        raw_id, raw_cmd = msg.get("id"), msg.get("cmd")
        if isinstance(raw_id, str) and p.CMD_ID_RE.match(raw_id):
            inc.cmd_id = raw_id
        if isinstance(raw_cmd, str) and len(raw_cmd) <= MAX_NAME:
            inc.cmd = raw_cmd
    problems = p.validate("cmd", msg)
    if problems:
        inc.problem = p.ProtocolError("malformed", "; ".join(problems))
        return inc
    inc.target = msg.get("terminal")
    name = msg["cmd"]
    if name not in p.COMMANDS:
        shown = name if len(name) <= MAX_NAME else f"{name[:MAX_NAME]}… ({len(name)} characters)"
        inc.problem = p.ProtocolError(
            "unknown_command", f"unknown command {shown!r}; known: {', '.join(p.COMMANDS)}"
        )
        return inc
    inc.args = msg.get("args") or {}
    problem = _check_args(name, inc.args)
    if problem:
        inc.problem = p.ProtocolError("bad_args", problem)
    return inc


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
        """Process one command message; returns the reply (queued unless the store refused it)."""
        refused, payload = self._open(payload)
        if refused is not None:
            inc = read_command(payload)  # only to answer under the command's id and name
            return self._reply(
                inc.cmd_id, inc.cmd, "error", refused.reason(), {}, refused.code, remember=False
            )
        inc = read_command(payload)
        if inc.problem is not None:
            exc = inc.problem
            return self._reply(inc.cmd_id, inc.cmd, "error", exc.message, {}, exc.code, False)
        cmd_id, cmd = inc.cmd_id, inc.cmd
        if cmd_id is None or cmd is None:  # read_command guarantees both; never run without
            return self._reply(cmd_id, cmd, "error", "unreadable command", {}, "malformed", False)
        if inc.target is not None and inc.target != self.terminal:
            return self._reply(
                cmd_id,
                cmd,
                "error",
                f"this command is for terminal {inc.target!r}, this is {self.terminal!r}",
                {},
                "wrong_terminal",
                remember=False,
            )
        try:
            earlier = self.bridge.command_begin(cmd_id, cmd)
        except BridgeClosed:
            raise
        except TimeoutError:
            # Not claimed: the same id sent again later will run.
            return self._reply(cmd_id, cmd, "error", BUSY_MESSAGE, {}, BUSY, remember=False)
        except Exception as exc:  # the ledger cannot be written: do not run what we cannot claim
            log.exception("command %s (%s): its id could not be claimed", cmd_id, cmd)
            message = f"the command's id could not be recorded ({exc}); nothing was done"
            return self._reply(cmd_id, cmd, "error", message, {}, "failed", remember=False)
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
        result = self._execute(cmd_id, cmd, inc.args)
        status = "ok" if result.ok else "error"
        error = None if result.ok else result.error
        return self._reply(cmd_id, cmd, status, result.message, result.data, error)

    def _open(self, payload: bytes) -> tuple[Any, bytes]:
        """(refusal or None, the command's own bytes): a signed command is verified (signer,
        target, ``expires``) before any field of it is used. A bridge without a trust gate
        (the in-memory one of benches) passes payloads through."""
        opener = getattr(self.bridge, "open_command", None)
        if opener is None:
            return None, payload
        try:
            return None, opener(payload)
        except TrustRejected as exc:
            inner = payload
            try:
                env = parse_envelope(payload, len(payload))
                inner = env.payload
            except TrustRejected:
                pass
            return exc, inner
        except BridgeClosed:
            raise
        except Exception as exc:  # a broken gate must not run the command nor kill the link
            log.exception("command: the signature check failed")
            return TrustRejected("failed", f"the signature could not be checked ({exc})"), payload

    def _execute(self, cmd_id: str, cmd: str, args: dict[str, Any]) -> CommandResult:
        try:
            return self._run(cmd, args)
        except BridgeClosed:
            raise
        except TimeoutError:
            log.warning("command %s (%s) not executed: the core thread was busy", cmd_id, cmd)
            return CommandResult(False, BUSY_MESSAGE, {}, BUSY)
        except Exception as exc:  # a failing command must never take the link down
            log.exception("command %s (%s) failed", cmd_id, cmd)
            return CommandResult(False, f"command failed: {exc}", {}, "failed")

    def _run(self, cmd: str, args: dict[str, Any]) -> CommandResult:
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
        except Exception as exc:
            log.warning(
                "command %s: clock state not read for the reply (%s: %s); using %r",
                cmd_id,
                type(exc).__name__,
                exc,
                self.clock,
            )
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
        try:
            self.bridge.command_finish(cmd_id if remember else None, status, reply)
        except BridgeClosed:
            raise
        except Exception:
            log.exception("command %s %s: the %s reply could not be queued", cmd_id, cmd, status)
            return reply
        level = logging.INFO if status == "ok" else logging.WARNING
        log.log(level, "command %s %s: %s (%s)", cmd_id, cmd, status, message[:200])
        return reply


def _check_args(cmd: str, args: dict[str, Any]) -> str | None:
    """Why ``args`` do not fit ``cmd`` (unknown keys, wrong types, too long), or None."""
    allowed = ARGS[cmd]
    for key, value in args.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            return f"{cmd}: unknown argument {key[:64]!r} (known: {known})"
        want = allowed[key]
        if value is not None and (not isinstance(value, want) or isinstance(value, bool)):
            return f"argument {key!r} must be {'text' if want is str else 'a whole number'}"
        if isinstance(value, str) and len(value) > 1024:
            return f"argument {key!r} is too long"
    if cmd == "play" and not args.get("course_id") and not args.get("media"):
        return "play needs args.course_id or args.media"
    return None
