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
) -> dict[str, Any] | None:
    """Publish a command (or ``raw`` bytes, for tests of bad input) and wait for its reply.

    Returns the reply, or None when none came in time (the terminal may be offline: commands
    are not queued for absent terminals).
    """
    cmd_id = cmd_id or new_command_id()
    payload = raw
    if payload is None:
        payload = p.dumps(
            p.command(cmd_id=cmd_id, cmd=cmd, args=args, ts=utc_now_text(), terminal=terminal)
        )
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


def parse_args_kv(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ToolError(f"argument {item!r} must look like key=value")
        out[key] = int(value) if value.isdigit() and key == "priority" else value
    return out
