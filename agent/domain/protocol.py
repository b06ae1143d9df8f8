"""Payloads on the wire: builders for what the terminal and the county tools send.

This is the module callers import (``from agent.domain import protocol as p``): besides the
builders it re-exports the incoming side from :mod:`agent.domain.protocol_specs` (formats, size
limits, ``decode``, ``ProtocolError``, ``SPECS`` and ``validate``), so one name space covers the
whole contract. Together they are the code behind ``docs/protocol.md``; a test loads that
document's JSON examples and runs them through ``validate``, so the contract and the code cannot
drift apart. The county tools (``agent.cli.county``) use the same builders and validators.

JSON, UTF-8, compact. Every message the terminal sends carries ``ts`` (UTC, RFC 3339) and its
clock state (``clock``; a record carries its own ``clock_state``).
"""

from __future__ import annotations

import json
from typing import Any

from agent.domain.protocol_specs import (
    ACK_STATUSES,
    BOOL,
    CLOCK,
    CLOCK_STATES,
    CMD_ID_RE,
    COMMANDS,
    ID,
    ID_RE,
    INT,
    KIND_BY_SUFFIX,
    LAYERS,
    LIST,
    MAX_ACK_BYTES,
    MAX_ACK_RECORDS,
    MAX_CMD_BYTES,
    MAX_INCOMING_PACKET,
    MAX_SCHEDULE_BYTES,
    NUM,
    OBJ,
    REPLY_STATUSES,
    SPECS,
    STR,
    TRIGGERS,
    TS,
    TS_RE,
    F,
    ProtocolError,
    decode,
    validate,
)

__all__ = [
    "ACK_STATUSES",
    "BOOL",
    "CLOCK",
    "CLOCK_STATES",
    "CMD_ID_RE",
    "COMMANDS",
    "HEARTBEAT_BUDGET",
    "HEARTBEAT_CORE_KEYS",
    "ID",
    "ID_RE",
    "INT",
    "KIND_BY_SUFFIX",
    "LAYERS",
    "LIST",
    "MAX_ACK_BYTES",
    "MAX_ACK_RECORDS",
    "MAX_CMD_BYTES",
    "MAX_INCOMING_PACKET",
    "MAX_REASONS",
    "MAX_SCHEDULE_BYTES",
    "NUM",
    "OBJ",
    "PROTOCOL_VERSION",
    "REPLY_STATUSES",
    "SPECS",
    "STR",
    "TRIGGERS",
    "TS",
    "TS_RE",
    "F",
    "ProtocolError",
    "cmd_reply",
    "command",
    "decode",
    "dumps",
    "heartbeat",
    "record_ack",
    "schedule_ack",
    "state",
    "status",
    "validate",
]

PROTOCOL_VERSION = 1
HEARTBEAT_BUDGET = 1000  # bytes of JSON: a heartbeat stays under 1 KB
MAX_REASONS = 50


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON with non-ASCII text kept as is, so size budgets count the real bytes."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- builders (terminal side) --------------------------------------------------------------


def state(
    *,
    ts: str,
    terminal: str,
    county: str,
    online: bool,
    session: int,
    boot_id: str,
    agent_version: str,
    protocol: str,
    reason: str,
    clock: str,
) -> dict[str, Any]:
    return {
        "ts": ts,
        "terminal": terminal,
        "county": county,
        "state": "online" if online else "offline",
        "session": session,
        "reason": reason,
        "boot_id": boot_id,
        "agent_version": agent_version,
        "protocol": protocol,
        "clock": clock,
        "v": PROTOCOL_VERSION,
    }


def _compact_playing(playing: dict[str, Any] | None, title_len: int) -> dict[str, Any] | None:
    if not playing:
        return None
    out = {
        k: playing.get(k)
        for k in ("course_id", "title", "trigger", "phase", "position", "length", "record_id")
        if playing.get(k) is not None
    }
    if isinstance(out.get("title"), str) and len(out["title"]) > title_len:
        out["title"] = out["title"][: title_len - 1] + "…"
    return out


HEARTBEAT_CORE_KEYS = ("uptime_s", "playing", "schedule_versions", "clock", "outbox")


def heartbeat(
    *,
    ts: str,
    terminal: str,
    seq: int,
    session: int,
    agent_version: str,
    summary: dict[str, Any],
    budget: int = HEARTBEAT_BUDGET,
) -> dict[str, Any]:
    """The heartbeat from ``Runtime.summary()``; extra summary sections are dropped to fit."""
    out: dict[str, Any] = {
        "ts": ts,
        "terminal": terminal,
        "seq": seq,
        "session": session,
        "version": agent_version,
        "uptime_s": summary.get("uptime_s"),
        "clock": summary.get("clock"),
        "playing": _compact_playing(summary.get("playing"), 60),
        "schedule_versions": summary.get("schedule_versions") or {},
        "outbox": summary.get("outbox", 0),
    }
    extras = {k: v for k, v in summary.items() if k not in HEARTBEAT_CORE_KEYS}
    out.update(extras)
    dropped: list[str] = []
    while len(dumps(out)) > budget and extras:
        biggest = max(extras, key=lambda k: len(dumps(extras[k])))
        del extras[biggest]
        del out[biggest]
        dropped.append(biggest)
        out["truncated"] = sorted(dropped)
    if len(dumps(out)) > budget and out["playing"]:
        out["playing"] = _compact_playing(out["playing"], 16)
    return out


def status(
    *, ts: str, session: int, agent_version: str, snapshot: dict[str, Any], link: dict[str, Any]
) -> dict[str, Any]:
    out = dict(snapshot)
    out.update(
        {
            "ts": ts,
            "session": session,
            "version": agent_version,
            "mqtt": link,
            "v": PROTOCOL_VERSION,
        }
    )
    return out


def schedule_ack(
    *,
    ts: str,
    terminal: str,
    county: str,
    layer: str,
    version: int | None,
    status: str,
    reasons: list[str],
    previous_version: int | None,
    applied: dict[str, int | None],
    clock: str,
) -> dict[str, Any]:
    return {
        "ts": ts,
        "terminal": terminal,
        "county": county,
        "layer": layer,
        "version": version,
        "status": status,
        "reasons": [r[:500] for r in reasons[:MAX_REASONS]],
        "previous_version": previous_version,
        "applied": applied,
        "clock": clock,
    }


def cmd_reply(
    *,
    ts: str,
    terminal: str,
    cmd_id: str | None,
    cmd: str | None,
    status: str,
    message: str,
    data: dict[str, Any] | None = None,
    error: str | None = None,
    clock: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": ts,
        "terminal": terminal,
        "id": cmd_id,
        "cmd": cmd,
        "status": status,
        "message": message,
        "data": data or {},
        "clock": clock,
    }
    if error:
        out["error"] = error
    return out


# -- builders (county side) ----------------------------------------------------------------


def record_ack(*, ts: str, collector: str, records: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "ts": ts,
        "collector": collector,
        "records": [{"record_id": rid, "rev": rev} for rid, rev in records],
    }


def command(
    *, cmd_id: str, cmd: str, args: dict[str, Any] | None, ts: str, terminal: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": cmd_id, "cmd": cmd, "args": args or {}, "ts": ts}
    if terminal:
        out["terminal"] = terminal
    return out
