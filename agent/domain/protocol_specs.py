"""What the wire accepts: formats, enumerations, size limits, and a validator per message kind.

Validation is data: ``SPECS`` maps each message kind to its fields (type, presence, nullability,
a check), and :func:`validate` walks that table, so adding a field or a kind is one edit here and
one example in ``docs/protocol.md`` (a test runs every example through :func:`validate`). Incoming
bytes go through :func:`decode` first, which bounds their size before parsing. The payload builders
in :mod:`agent.domain.protocol` use the same vocabulary; that module re-exports everything here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.domain.document import DocumentError, loads_strict_json
from agent.domain.records import OUTCOMES
from agent.domain.schema import ID_PATTERN as ID_RE
from agent.domain.schema import ID_RULE

CMD_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
CLOCK_STATES = ("synced", "unsynced", "implausible")
TRIGGERS = ("schedule", "admin", "remote")
LAYERS = ("terminal", "county")
ACK_STATUSES = ("applied", "rejected", "stale")
REPLY_STATUSES = ("ok", "error", "duplicate")
COMMANDS = ("status", "play", "stop", "reload", "ping")

MAX_CMD_BYTES = 64 * 1024
MAX_ACK_BYTES = 256 * 1024
MAX_ACK_RECORDS = 1000
MAX_SCHEDULE_BYTES = 1024 * 1024
# The largest MQTT packet a terminal accepts: the largest document it takes (a schedule) plus room
# for the topic and MQTT 5 properties. Told to the broker at CONNECT (Maximum-Packet-Size).
MAX_INCOMING_PACKET = MAX_SCHEDULE_BYTES + 16 * 1024


class ProtocolError(ValueError):
    """An incoming payload is not acceptable; ``code`` is the machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode(payload: bytes, limit: int, source: str = "<message>") -> Any:
    """Strict JSON (no NaN, no duplicate keys) within ``limit`` bytes, or ProtocolError.

    Cheap enough for the county collector, which reads thousands of records a second."""
    if len(payload) > limit:
        raise ProtocolError("too_large", f"payload is {len(payload)} bytes, the limit is {limit}")
    try:
        return loads_strict_json(payload, source, limit)
    except DocumentError as exc:
        raise ProtocolError("malformed", exc.message) from None


@dataclass(frozen=True)
class F:
    """One field: allowed types, whether it must be present, whether null is allowed, a check."""

    types: tuple[type, ...]
    required: bool = True
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None


def _one_of(values: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in values else f"must be one of {', '.join(values)}"


def _match(rx: re.Pattern[str], what: str) -> Callable[[Any], str | None]:
    return lambda v: None if rx.match(v) else f"must be {what}"


def _at_least(low: int) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be at least {low}"


STR, INT, NUM, BOOL, OBJ, LIST = (str,), (int,), (int, float), (bool,), (dict,), (list,)
TS = F(STR, check=_match(TS_RE, "an RFC 3339 time such as 2026-11-28T11:30:00.000Z"))
ID = F(STR, check=_match(ID_RE, f"an id ({ID_RULE}; no '.')"))
CLOCK = F(STR, check=_one_of(CLOCK_STATES))

SPECS: dict[str, dict[str, F]] = {
    "state": {
        "ts": TS,
        "terminal": ID,
        "county": ID,
        "state": F(STR, check=_one_of(("online", "offline"))),
        "session": F(INT, check=_at_least(1)),
        "reason": F(STR, check=_one_of(("connect", "shutdown", "will"))),
        "boot_id": F(STR),
        "agent_version": F(STR),
        "protocol": F(STR, check=_one_of(("5", "3.1.1"))),
        "clock": CLOCK,
        "v": F(INT),
    },
    "heartbeat": {
        "ts": TS,
        "terminal": ID,
        "seq": F(INT, check=_at_least(1)),
        "session": F(INT, check=_at_least(1)),
        "version": F(STR),
        "uptime_s": F(NUM),
        "clock": CLOCK,
        "playing": F(OBJ, nullable=True),
        "schedule_versions": F(OBJ),
        "outbox": F(INT, check=_at_least(0)),
        "truncated": F(LIST, required=False),
    },
    "status": {
        "ts": TS,
        "terminal": ID,
        "county": ID,
        "session": F(INT, check=_at_least(1)),
        "version": F(STR),
        "uptime_s": F(NUM),
        "clock": CLOCK,
        "playing": F(OBJ, nullable=True),
        "schedule_versions": F(OBJ),
        "outbox": F(INT),
        "records_unsent": F(INT),
        "open_records": F(INT),
        "upcoming": F(LIST),
        "started_at": TS,
        "boot_id": F(STR),
        "timezone": F(STR),
        "mqtt": F(OBJ),
        "v": F(INT),
    },
    "record": {
        "ts": TS,
        "record_id": F(STR, check=_match(re.compile(r"^[A-Za-z0-9-]{8,64}$"), "a record id")),
        "rev": F(INT, check=_at_least(1)),
        "seq": F(INT, check=_at_least(1)),
        "terminal": ID,
        "county": ID,
        "course_id": F(STR),
        "title": F(STR),
        "media": F(STR),
        "trigger": F(STR, check=_one_of(TRIGGERS)),
        "outcome": F(STR, check=_one_of(OUTCOMES)),
        "reason": F(STR, nullable=True),
        "clock_state": CLOCK,
        "boot_id": F(STR),
        "planned_start": F(STR, nullable=True),
        "started_at": F(STR, nullable=True),
        "ended_at": F(STR, nullable=True),
        "played_seconds": F(NUM),
        "media_duration": F(NUM, nullable=True),
        "completion": F(NUM),
        "schedule_layer": F(STR, nullable=True),
        "schedule_version": F(INT, nullable=True),
        "item_id": F(STR, nullable=True),
        "attendance": F(INT, required=False, nullable=True),
    },
    "event": {
        "ts": TS,
        "terminal": ID,
        "county": ID,
        "type": F(STR),
        "name": F(STR),
        "state": F(STR, check=_one_of(("raised", "cleared"))),
        "severity": F(STR),
        "detail": F(OBJ, required=False, nullable=True),
        "clock": F(STR, required=False, check=_one_of(CLOCK_STATES)),
    },
    "link_summary": {
        "ts": TS,
        "terminal": ID,
        "county": ID,
        "period_start": TS,
        "period_end": TS,
    },
    "schedule_ack": {
        "ts": TS,
        "terminal": ID,
        "county": ID,
        "layer": F(STR, check=_one_of(LAYERS + ("?",))),
        # null: the document could not be read far enough to know its version
        "version": F(INT, nullable=True, check=_at_least(1)),
        "status": F(STR, check=_one_of(ACK_STATUSES)),
        "reasons": F(LIST),
        "previous_version": F(INT, nullable=True),
        "applied": F(OBJ),
        "clock": CLOCK,
    },
    "cmd_reply": {
        "ts": TS,
        "terminal": ID,
        "id": F(STR, nullable=True),
        "cmd": F(STR, nullable=True),
        "status": F(STR, check=_one_of(REPLY_STATUSES)),
        "message": F(STR),
        "data": F(OBJ),
        "error": F(STR, required=False),
        "clock": CLOCK,
    },
    "record_ack": {
        "ts": F(STR, required=False, check=_match(TS_RE, "an RFC 3339 time")),
        "collector": F(STR, required=False),
        "records": F(LIST, check=lambda v: None if 0 < len(v) <= MAX_ACK_RECORDS else "1-1000"),
    },
    "cmd": {
        "id": F(STR, check=_match(CMD_ID_RE, "1-64 letters, digits, '.', '_', ':' or '-'")),
        "cmd": F(STR),
        "args": F(OBJ, required=False),
        "ts": F(STR, required=False, check=_match(TS_RE, "an RFC 3339 time")),
        "terminal": F(STR, required=False),
        # Required in a signed command (docs/trust.md): it is refused once this time is past.
        "expires": F(STR, required=False, check=_match(TS_RE, "an RFC 3339 time")),
    },
}
# A course manifest is answered like a schedule: the same fields, on ``library/ack``; so is a
# revocation list, on ``trust/ack`` (layer ``county``; ``applied.county`` is the list in force).
SPECS["library_ack"] = SPECS["schedule_ack"]
SPECS["trust_ack"] = SPECS["schedule_ack"]


def validate(kind: str, obj: Any) -> list[str]:
    """Every problem with ``obj`` as a message of ``kind`` (empty when it is fine).

    Unknown extra fields are allowed (a newer peer may add some); missing, mistyped or out of
    range ones are not.
    """
    spec = SPECS[kind]
    if not isinstance(obj, dict):
        return [f"{kind}: must be a JSON object"]
    problems = []
    for name, f in spec.items():
        if name not in obj:
            if f.required:
                problems.append(f"{kind}.{name}: is required")
            continue
        value = obj[name]
        if value is None:
            if not f.nullable:
                problems.append(f"{kind}.{name}: must not be null")
            continue
        if isinstance(value, bool) and bool not in f.types:
            problems.append(f"{kind}.{name}: must be {_type_words(f.types)}")
            continue
        if not isinstance(value, f.types):
            problems.append(f"{kind}.{name}: must be {_type_words(f.types)}")
            continue
        if f.check is not None:
            message = f.check(value)
            if message:
                problems.append(f"{kind}.{name}: {message}")
    if kind == "record_ack" and isinstance(obj.get("records"), list):
        for i, item in enumerate(obj["records"]):
            if not (
                isinstance(item, dict)
                and isinstance(item.get("record_id"), str)
                and isinstance(item.get("rev"), int)
                and not isinstance(item.get("rev"), bool)
                and item["rev"] >= 1
            ):
                problems.append(f"record_ack.records[{i}]: must be {{record_id: text, rev: >= 1}}")
    return problems


def _type_words(types: tuple[type, ...]) -> str:
    names = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}
    names.update({dict: "an object", list: "a list"})
    if types == NUM:
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in types)


KIND_BY_SUFFIX = {
    "state": "state",
    "heartbeat": "heartbeat",
    "status": "status",
    "record": "record",
    "event": "event",
    "link/summary": "link_summary",
    "schedule/ack": "schedule_ack",
    "library/ack": "library_ack",
    "trust/ack": "trust_ack",
    "cmd/reply": "cmd_reply",
    "record/ack": "record_ack",
    "cmd": "cmd",
}
