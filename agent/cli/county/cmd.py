"""``countyctl cmd T status|play|stop|reload|ping``: one command, its reply."""

from __future__ import annotations

import queue
import time
import uuid
from typing import Any

from agent.adapters.mqtt.config import MqttConfig
from agent.cli.county.client import CountyClient, ToolError
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.records import utc_now_text


def new_command_id() -> str:
    return "cc-" + uuid.uuid4().hex[:20]


def send_command(
    m: MqttConfig,
    *,
    county: str,
    terminal: str,
    cmd: str,
    args: dict[str, Any] | None = None,
    cmd_id: str | None = None,
    wait: float = 20.0,
    raw: bytes | None = None,
    client_id: str | None = None,
    signer: tuple[Any, dict[str, Any]] | None = None,
    expires_s: float = 600.0,
) -> dict[str, Any] | None:
    """Publish a command (or ``raw`` bytes, for tests of bad input) and wait for its reply.

    Returns the reply, or None when none came in time (the terminal may be offline: commands
    are not queued for absent terminals). With a ``signer`` (county key, certificate) the command
    carries ``expires`` and goes out in its signed envelope.
    """
    cmd_id = cmd_id or new_command_id()
    payload = raw
    if payload is None:
        payload = command_bytes(county, terminal, cmd, args, cmd_id, signer, expires_s)
    cc = CountyClient(m, client_id or f"countyctl-cmd-{uuid.uuid4().hex[:12]}")
    cc.connect()
    try:
        cc.subscribe([t.topic(county, terminal, t.CMD_REPLY)])
        cc.publish(t.topic(county, terminal, t.CMD), payload, qos=1)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                msg = cc.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                reply = p.decode(msg.payload, p.MAX_SCHEDULE_BYTES, msg.topic)
            except p.ProtocolError:
                continue
            if isinstance(reply, dict) and (reply.get("id") == cmd_id or raw is not None):
                return reply
    finally:
        cc.close()
    return None


def command_bytes(
    county: str,
    terminal: str,
    cmd: str,
    args: dict[str, Any] | None,
    cmd_id: str,
    signer: tuple[Any, dict[str, Any]] | None = None,
    expires_s: float = 600.0,
    now: float | None = None,
) -> bytes:
    """The command as published: plain JSON, or its signed envelope with ``expires``."""
    from agent.domain.trust import time_text

    when = time.time() if now is None else now
    msg = p.command(cmd_id=cmd_id, cmd=cmd, args=args, ts=time_text(when), terminal=terminal)
    if signer is None:
        msg["ts"] = utc_now_text()
        return p.dumps(msg)
    from agent.cli.county.keys import envelope

    msg["expires"] = time_text(when + expires_s)
    key, cert = signer
    return envelope(key, cert, "command", county, terminal, p.dumps(msg))


def parse_args_kv(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ToolError(f"argument {item!r} must look like key=value")
        out[key] = int(value) if value.isdigit() and key == "priority" else value
    return out
