"""What one simulated terminal says and answers, built with the protocol's own builders
(:mod:`agent.domain.protocol`) so the county sees exactly the documented messages.

No sockets here: the link hands in what arrived and takes what to publish. A terminal keeps a
session counter (+1 per connection attempt), its heartbeat ``seq``, its record ``seq`` and an
outbox (:class:`MemOutbox`) of records, schedule and library acks and command replies.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.cli.county.simulate.outbox import MemOutbox
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.outbox import OutboxPolicy, Row
from agent.domain.records import utc_text

AGENT_VERSION = "0.1.0-sim"
COURSES = [("PH-01", "党史学习 第一讲"), ("AG-07", "果树冬季修剪"), ("HL-03", "冬季常见病预防")]
CHECK_FIRST = 3  # validate the first messages of each kind against the protocol, then trust them


class ProtocolMismatch(AssertionError):
    """The simulator built a message the protocol's validators refuse: a bug in the simulator."""


_checked: dict[str, int] = {}


def checked(kind: str, obj: dict[str, Any], always: bool = False) -> bytes:
    """The message as bytes, validated like the collector will (the first few of each kind)."""
    if always or _checked.get(kind, 0) < CHECK_FIRST:
        _checked[kind] = _checked.get(kind, 0) + 1
        problems = p.validate(kind, obj)
        if problems:
            raise ProtocolMismatch(f"simulated {kind} is invalid: {'; '.join(problems)}")
    return p.dumps(obj)


@dataclass
class Counts:
    created: int = 0
    revised: int = 0
    acked: int = 0
    heartbeats: int = 0
    schedule_acks: int = 0
    replies: int = 0


@dataclass
class SimTerminal:
    terminal: str
    county: str
    protocol: str
    ack_timeout: float
    rng: random.Random
    validate_all: bool = False
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_mono: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    session: int = 0
    hb_seq: int = 0
    rec_seq: int = 0
    applied: dict[str, int | None] = field(
        default_factory=lambda: {"terminal": None, "county": None}
    )
    library: dict[str, int | None] = field(
        default_factory=lambda: {"terminal": None, "county": None}
    )
    counts: Counts = field(default_factory=Counts)
    latencies: list[float] = field(default_factory=list)
    made: dict[str, int] = field(default_factory=dict)  # record_id -> newest rev
    seqs: dict[str, int] = field(default_factory=dict)  # record_id -> seq

    def __post_init__(self) -> None:
        self.outbox = MemOutbox(OutboxPolicy(ack_timeout=self.ack_timeout))
        self._records: dict[str, dict[str, Any]] = {}  # record_id -> the newest revision

    def topic(self, suffix: str) -> str:
        return t.topic(self.county, self.terminal, suffix)

    def subscriptions(self) -> list[str]:
        return t.terminal_subscriptions(self.county, self.terminal)

    def _bytes(self, kind: str, obj: dict[str, Any]) -> bytes:
        return checked(kind, obj, self.validate_all)

    # -- connection ---------------------------------------------------------------------------

    def next_session(self) -> int:
        self.session += 1
        return self.session

    def state(self, online: bool, reason: str, wall: float) -> bytes:
        return self._bytes(
            "state",
            p.state(
                ts=utc_text(wall),
                terminal=self.terminal,
                county=self.county,
                online=online,
                session=self.session,
                boot_id=self.boot_id,
                agent_version=AGENT_VERSION,
                protocol=self.protocol,
                reason=reason,
                clock="synced",
            ),
        )

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "uptime_s": round(now - self.started_mono, 1),
            "playing": None,
            "schedule_versions": {k: v for k, v in self.applied.items() if v is not None},
            "clock": "synced",
            "outbox": len(self.outbox),
        }

    def status(self, now: float, wall: float, connects: int) -> bytes:
        snapshot = {
            **self.summary(now),
            "terminal": self.terminal,
            "county": self.county,
            "started_at": utc_text(self.started_wall),
            "boot_id": self.boot_id,
            "timezone": "Asia/Shanghai",
            "upcoming": [],
            "open_records": 0,
            "records_unsent": self.outbox.records(),
        }
        link = {
            "state": "connected",
            "protocol": self.protocol,
            "session": self.session,
            "connects": connects,
            "reconnects": max(0, connects - 1),
            "last_error": None,
            "hint": None,
            "outbox": self.outbox.policy.snapshot(),
        }
        obj = p.status(
            ts=utc_text(wall),
            session=self.session,
            agent_version=AGENT_VERSION,
            snapshot=snapshot,
            link=link,
        )
        return self._bytes("status", obj)

    def heartbeat(self, now: float, wall: float) -> bytes:
        self.hb_seq += 1
        self.counts.heartbeats += 1
        obj = p.heartbeat(
            ts=utc_text(wall),
            terminal=self.terminal,
            seq=self.hb_seq,
            session=max(1, self.session),
            agent_version=AGENT_VERSION,
            summary=self.summary(now),
        )
        return self._bytes("heartbeat", obj)

    # -- records ------------------------------------------------------------------------------

    def new_record(self, now: float, wall: float) -> str:
        """A finished viewing of a scheduled course, queued until the collector confirms it."""
        self.rec_seq += 1
        rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        course, title = self.rng.choice(COURSES)
        played = round(self.rng.uniform(600.0, 1800.0), 1)
        start = wall - played
        rec: dict[str, Any] = {
            "msg_id": rid,
            "record_id": rid,
            "rev": 1,
            "seq": self.rec_seq,
            "terminal": self.terminal,
            "county": self.county,
            "boot_id": self.boot_id,
            "course_id": course,
            "title": title,
            "media": f"courses/{course.lower()}.mp4",
            "trigger": "schedule",
            "schedule_layer": "county",
            "schedule_version": self.applied.get("county") or 1,
            "item_id": "w1",
            "occurrence_key": f"county/w1/{self.terminal}/{self.rec_seq}",
            "planned_start": utc_text(start),
            "started_at": utc_text(start),
            "ended_at": utc_text(wall),
            "played_seconds": played,
            "media_duration": 1800.0,
            "position": played,
            "completion": round(played / 1800.0, 4),
            "outcome": "completed" if played >= 1620 else "stopped",
            "reason": None if played >= 1620 else "stopped by the operator",
            "clock_state": "synced",
            "attendance": None,
            "resumed_from": None,
            "ts": utc_text(wall),
        }
        self._queue(rec, now)
        self.counts.created += 1
        return rid

    def revise(self, rid: str, now: float, wall: float) -> None:
        """Attendance counted later: the same record again with ``rev`` + 1."""
        rec = dict(self._records[rid])
        rec["rev"] += 1
        rec["attendance"] = self.rng.randint(3, 40)
        rec["ts"] = utc_text(wall)
        self._queue(rec, now)
        self.counts.revised += 1

    def _queue(self, rec: dict[str, Any], now: float) -> None:
        payload = self._bytes("record", rec).decode("utf-8")
        rid = rec["record_id"]
        self._records[rid] = rec
        self.made[rid] = rec["rev"]
        self.seqs[rid] = rec["seq"]
        self.outbox.add("record", rid, t.RECORD, payload, now, rev=rec["rev"])

    # -- what arrives -------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, now: float, wall: float) -> None:
        parsed = t.parse(topic)
        if parsed is None:
            return
        if parsed.suffix == t.RECORD_ACK:
            self._on_record_ack(payload, now)
        elif parsed.suffix in (t.SCHEDULE, t.LIBRARY) and payload:
            layer = "county" if parsed.terminal == t.ALL else "terminal"
            self._on_document(parsed.suffix, layer, payload, now, wall)
        elif parsed.suffix == t.CMD:
            self._on_cmd(payload, now, wall)

    def _on_record_ack(self, payload: bytes, now: float) -> None:
        try:
            obj = p.decode(payload, p.MAX_ACK_BYTES)
        except p.ProtocolError:
            return
        if p.validate("record_ack", obj):
            return
        pairs = [(r["record_id"], int(r["rev"])) for r in obj["records"] if isinstance(r, dict)]
        for queued in self.outbox.on_record_ack(pairs):
            self.latencies.append(now - queued)
            self.counts.acked += 1

    def _on_document(
        self, suffix: str, layer: str, payload: bytes, now: float, wall: float
    ) -> None:
        """Apply a schedule or library layer by its ``version`` (the simulator plays nothing),
        and say so on ``schedule/ack`` / ``library/ack`` (retained, from the outbox)."""
        applied = self.applied if suffix == t.SCHEDULE else self.library
        try:
            doc = json.loads(payload)
            version = doc.get("version") if isinstance(doc, dict) else None
        except ValueError:
            version = None
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            status, version, reasons = "rejected", None, ["version: missing or not a whole number"]
        elif applied[layer] is not None and version <= applied[layer]:
            return  # the retained layer again after a reconnect: answered already
        else:
            status, reasons = "applied", []
        previous = applied[layer]
        if status == "applied":
            applied[layer] = version
        kind = "schedule_ack" if suffix == t.SCHEDULE else "library_ack"
        obj = p.schedule_ack(
            ts=utc_text(wall),
            terminal=self.terminal,
            county=self.county,
            layer=layer,
            version=version,
            status=status,
            reasons=reasons,
            previous_version=previous,
            applied=dict(applied),
            clock="synced",
        )
        msg_id = f"{kind}:{layer}:{'none' if version is None else version}:{status}"
        obj = {"msg_id": msg_id, **obj}
        ack_topic = t.SCHEDULE_ACK if suffix == t.SCHEDULE else t.LIBRARY_ACK
        self.outbox.add(kind, msg_id, ack_topic, self._bytes(kind, obj).decode(), now, retain=True)
        self.counts.schedule_acks += 1

    def _on_cmd(self, payload: bytes, now: float, wall: float) -> None:
        try:
            obj = p.decode(payload, p.MAX_CMD_BYTES)
        except p.ProtocolError:
            obj = None
        ok = isinstance(obj, dict) and not p.validate("cmd", obj)
        cmd_id = obj.get("id") if ok else None
        name = obj.get("cmd") if ok else None
        if ok and name == "ping":
            status, message, data, error = "ok", "pong", {"uptime_s": now - self.started_mono}, None
        elif ok:
            status, message, data, error = (
                "error",
                f"the simulator only answers ping, not {name!r}",
                {},
                "unknown_command",
            )
        else:
            status, message, data, error = "error", "not a readable command", {}, "malformed"
        reply = p.cmd_reply(
            ts=utc_text(wall),
            terminal=self.terminal,
            cmd_id=cmd_id,
            cmd=name,
            status=status,
            message=message,
            data=data,
            error=error,
            clock="synced",
        )
        msg_id = f"reply:{cmd_id}"
        reply = {"msg_id": msg_id, **reply}
        self.outbox.add(
            "cmd_reply", msg_id, t.CMD_REPLY, self._bytes("cmd_reply", reply).decode(), now
        )
        self.counts.replies += 1

    # -- delivery -----------------------------------------------------------------------------

    def pump(self, publish: Callable[[Row], int | None], now: float) -> int:
        return self.outbox.pump(publish, now)
