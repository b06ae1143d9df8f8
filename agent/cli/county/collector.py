"""The durable record collector: the county's end of store-and-forward.

- A persistent session (clean_session/clean_start off, a week's session expiry) under a fixed
  client id: while the collector is away, the broker keeps its subscription and queues records.
- Manual PUBACK: a record is acknowledged to the broker only after it is committed to SQLite
  (WAL, synchronous=FULL). Killed in between, the broker delivers it again.
- After the commit, ``record/ack`` goes to each terminal with the ``(record_id, rev)`` pairs it
  stored: only then does the terminal delete them from its outbox.
- Duplicates are dropped by ``record_id`` (a newer ``rev`` replaces an older one); ``deliveries``
  counts how often one arrived. Events (alarms) are stored by ``msg_id`` the same way.
- A record or event belongs to the terminal whose topic it came on (the broker's ACL lets each
  terminal publish only under its own root): its payload must name that terminal, and a
  ``record_id``/``msg_id`` that another terminal already owns is never stored over.
- Anything that fails validation or belongs elsewhere is kept in ``rejected`` with the reason
  (PUBACKed to the broker, never ``record/ack``ed): nothing is lost, and a malformed message
  cannot block the queue.
"""

from __future__ import annotations

import csv
import logging
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from agent.adapters.mqtt.config import MqttConfig
from agent.cli.county.client import CountyClient, Message, ToolError
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.backoff import Backoff
from agent.domain.records import utc_now_text

log = logging.getLogger("county.collector")
LULL_S = 0.001  # no message for this long ends a batch early

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id         TEXT PRIMARY KEY,
    rev               INTEGER NOT NULL,
    terminal          TEXT NOT NULL,
    county            TEXT NOT NULL,
    seq               INTEGER,
    course_id         TEXT,
    title             TEXT,
    media             TEXT,
    trigger           TEXT,
    outcome           TEXT,
    reason            TEXT,
    schedule_layer    TEXT,
    schedule_version  INTEGER,
    item_id           TEXT,
    planned_start     TEXT,
    started_at        TEXT,
    ended_at          TEXT,
    played_seconds    REAL,
    media_duration    REAL,
    completion        REAL,
    attendance        INTEGER,
    clock_state       TEXT,
    payload           TEXT NOT NULL,
    first_received_at TEXT NOT NULL,
    received_at       TEXT NOT NULL,
    deliveries        INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_terminal ON records(terminal, seq);
CREATE TABLE IF NOT EXISTS events (
    msg_id      TEXT PRIMARY KEY,
    terminal    TEXT NOT NULL,
    county      TEXT NOT NULL,
    ts          TEXT,
    type        TEXT,
    name        TEXT,
    state       TEXT,
    severity    TEXT,
    payload     TEXT NOT NULL,
    received_at TEXT NOT NULL,
    deliveries  INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS rejected (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    payload     BLOB,
    reason      TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""

RECORD_FIELDS = [
    "record_id",
    "rev",
    "terminal",
    "county",
    "seq",
    "course_id",
    "title",
    "media",
    "trigger",
    "outcome",
    "reason",
    "schedule_layer",
    "schedule_version",
    "item_id",
    "planned_start",
    "started_at",
    "ended_at",
    "played_seconds",
    "media_duration",
    "completion",
    "attendance",
    "clock_state",
]
CSV_FIELDS = RECORD_FIELDS + ["first_received_at", "received_at", "deliveries"]


class CollectorDb:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def store(self, batch: list[tuple[str, str, str, Any]]) -> dict[str, Any]:
        """Commit one batch: ("record"|"event"|"rejected", topic-terminal, topic, obj-or-reason).

        A record or event belongs to the terminal whose topic it came on: one whose payload names
        another terminal, or whose ``record_id``/``msg_id`` another terminal already owns, goes
        to ``rejected`` and is not acknowledged. Returns counts, the rejections as (topic,
        reason), and per (county, terminal) the (record_id, rev) pairs to acknowledge.
        """
        now = utc_now_text()
        acks: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
        rejected: list[tuple[str, str]] = []
        new = dup = 0
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for kind, terminal, topic, obj in batch:
                if kind == "rejected":
                    payload, reason = obj
                else:
                    payload = p.dumps(obj)
                    if kind == "event":
                        reason = self._store_event(obj, terminal, payload, now)
                    else:
                        reason, fresh = self._store_record(obj, terminal, payload, now)
                        if reason is None:
                            new, dup = new + fresh, dup + (not fresh)
                            acks[(obj["county"], terminal)].append((obj["record_id"], obj["rev"]))
                if reason is not None:
                    db.execute(
                        "INSERT INTO rejected(topic, payload, reason, received_at) VALUES(?,?,?,?)",
                        (topic, payload, reason, now),
                    )
                    rejected.append((topic, reason))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return {"new": new, "duplicates": dup, "rejected": rejected, "acks": acks}

    def _store_record(
        self, obj: dict[str, Any], terminal: str, payload: bytes, now: str
    ) -> tuple[str | None, bool]:
        """(why it is rejected or None, whether it is new). Never touches another terminal's row."""
        problem = _not_from(obj, terminal)
        if problem:
            return problem, False
        rid = obj["record_id"]
        owner = self.db.execute(
            "SELECT terminal, county, rev FROM records WHERE record_id=?", (rid,)
        ).fetchone()
        text = payload.decode("utf-8")
        values = [obj.get(f) for f in RECORD_FIELDS]
        if owner is None:
            cols = ", ".join(RECORD_FIELDS)
            marks = ", ".join("?" for _ in RECORD_FIELDS)
            self.db.execute(
                f"INSERT INTO records({cols}, payload, first_received_at, received_at) "
                f"VALUES({marks}, ?, ?, ?)",
                [*values, text, now, now],
            )
            return None, True
        if (owner[0], owner[1]) != (terminal, obj["county"]):
            return _owned_by("record_id", rid, owner[1], owner[0]), False
        if obj["rev"] > owner[2]:
            sets = ", ".join(f"{f}=?" for f in RECORD_FIELDS[1:])
            self.db.execute(
                f"UPDATE records SET {sets}, payload=?, received_at=? WHERE record_id=?",
                [*values[1:], text, now, rid],
            )
        self.db.execute("UPDATE records SET deliveries = deliveries + 1 WHERE record_id=?", (rid,))
        return None, False

    def _store_event(
        self, obj: dict[str, Any], terminal: str, payload: bytes, now: str
    ) -> str | None:
        """Why it is rejected, or None once stored (or counted as a duplicate)."""
        problem = _not_from(obj, terminal)
        if problem:
            return problem
        key = obj.get("msg_id") or f"{terminal}:{obj['ts']}:{obj['name']}"
        owner = self.db.execute(
            "SELECT terminal, county FROM events WHERE msg_id=?", (key,)
        ).fetchone()
        if owner is None:
            self.db.execute(
                "INSERT INTO events(msg_id, terminal, county, ts, type, name, "
                "state, severity, payload, received_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    terminal,
                    obj["county"],
                    obj["ts"],
                    obj.get("type"),
                    obj.get("name"),
                    obj.get("state"),
                    obj.get("severity"),
                    payload.decode("utf-8"),
                    now,
                ),
            )
            return None
        if (owner[0], owner[1]) != (terminal, obj["county"]):
            return _owned_by("msg_id", key, owner[1], owner[0])
        self.db.execute("UPDATE events SET deliveries = deliveries + 1 WHERE msg_id=?", (key,))
        return None

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    def export_csv(self, out: TextIO) -> int:
        w = csv.writer(out)
        w.writerow(CSV_FIELDS)
        n = 0
        rows = self.db.execute(
            f"SELECT {', '.join(CSV_FIELDS)} FROM records ORDER BY terminal, seq, record_id"
        )
        for row in rows:
            w.writerow(["" if v is None else v for v in row])
            n += 1
        return n


def _not_from(obj: dict[str, Any], terminal: str) -> str | None:
    """Why a message does not belong to the terminal whose topic it came on, or None."""
    if obj.get("terminal") != terminal:
        return (
            f"the message names terminal {obj.get('terminal')!r} but came on the topic of "
            f"terminal {terminal!r}"
        )
    return None


def _owned_by(what: str, key: str, county: str, terminal: str) -> str:
    return (
        f"{what} {key} belongs to terminal {terminal} (county {county}); "
        "not stored over another terminal's data"
    )


def classify(msg: Message, county: str | None) -> tuple[str, str, str, Any]:
    """What one incoming message is, checked: ("record"|"event", terminal, topic, obj) or rejected."""
    parsed = t.parse(msg.topic)
    if parsed is None or parsed.suffix not in (t.RECORD, t.EVENT):
        return ("rejected", "", msg.topic, (msg.payload, "unexpected topic"))
    if county is not None and parsed.county != county:
        return ("rejected", parsed.terminal, msg.topic, (msg.payload, "another county"))
    kind = "record" if parsed.suffix == t.RECORD else "event"
    try:
        obj = p.decode(msg.payload, p.MAX_SCHEDULE_BYTES)
    except p.ProtocolError as exc:
        return ("rejected", parsed.terminal, msg.topic, (msg.payload, exc.message))
    problems = p.validate(kind, obj)
    if not problems and (obj["terminal"] != parsed.terminal or obj["county"] != parsed.county):
        problems = ["terminal/county in the message do not match the topic"]
    if problems:
        return ("rejected", parsed.terminal, msg.topic, (msg.payload, "; ".join(problems)[:2000]))
    return (kind, parsed.terminal, msg.topic, obj)


class Collector:
    def __init__(
        self,
        m: MqttConfig,
        db_path: Path,
        *,
        county: str | None = None,
        client_id: str | None = None,
        batch_max: int = 500,
        linger: float = 0.05,
        retry_max: float = 30.0,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.m = m
        self.db = CollectorDb(db_path)
        self.county = county
        self.client_id = client_id or f"county-collector-{county or 'all'}"
        self.batch_max = batch_max
        self.linger = linger
        self.retry_max = retry_max
        self.on_line = on_line or (lambda line: None)
        self.stored = 0
        self.duplicates = 0
        self.acks_sent = 0
        self.ready = threading.Event()

    def filters(self) -> list[str]:
        if self.county:
            return [t.fleet(self.county, t.RECORD), t.fleet(self.county, t.EVENT)]
        return [t.all_counties(t.RECORD), t.all_counties(t.EVENT)]

    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        end = None if duration is None else time.monotonic() + duration
        backoff = Backoff(min(0.5, self.retry_max), self.retry_max)
        good_until = time.monotonic()  # the collector is one client: no fleet to spread out
        cc: CountyClient | None = None
        try:
            while not stop.is_set() and (end is None or time.monotonic() < end):
                if cc is None:
                    cc = CountyClient(self.m, self.client_id, persistent=True, manual_ack=True)
                    try:
                        cc.connect()
                        cc.subscribe(self.filters())
                    except ToolError as exc:
                        cc.close(disconnect=False)
                        cc = None
                        delay = backoff.next_delay(time.monotonic() - good_until)
                        log.warning("collector: %s; retrying in %.1f s", exc, delay)
                        stop.wait(delay)
                        continue
                    backoff.reset()
                    self.ready.set()
                    self.on_line(
                        f"collector connected (session {'resumed' if cc.session_present else 'new'})"
                    )
                batch = self._take(cc)
                if batch:
                    self._commit_and_ack(cc, batch)
                if cc.lost.is_set():
                    cc.close(disconnect=False)
                    # What arrived but was not acknowledged comes again with the session.
                    _drain(cc.messages)
                    cc = None
                    good_until = time.monotonic()
                    self.ready.clear()
                    self.on_line("collector lost the broker; reconnecting")
        finally:
            if cc is not None:
                cc.close()
            self.db.close()

    def _take(self, cc: CountyClient) -> list[Message]:
        """A batch: what arrives until a short lull, ``linger`` at most, ``batch_max`` at most
        (one commit and one ack message per terminal for the lot)."""
        batch: list[Message] = []
        try:
            batch.append(cc.messages.get(timeout=0.2))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.linger
        while len(batch) < self.batch_max:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(cc.messages.get(timeout=min(left, LULL_S)))
            except queue.Empty:
                break
        return batch

    def _commit_and_ack(self, cc: CountyClient, batch: list[Message]) -> None:
        items = [classify(msg, self.county) for msg in batch]
        result = self.db.store(items)
        self.stored += result["new"]
        self.duplicates += result["duplicates"]
        for (county, terminal), pairs in result["acks"].items():
            for i in range(0, len(pairs), p.MAX_ACK_RECORDS):
                chunk = pairs[i : i + p.MAX_ACK_RECORDS]
                payload = p.record_ack(ts=utc_now_text(), collector=self.client_id, records=chunk)
                try:
                    cc.publish(t.topic(county, terminal, t.RECORD_ACK), p.dumps(payload), wait=None)
                except ToolError as exc:
                    log.warning("record/ack not sent (the terminal will send again): %s", exc)
                self.acks_sent += len(chunk)
            self.on_line(f"stored {len(pairs)} record(s) from {terminal}; record/ack sent")
        for topic, reason in result["rejected"]:
            self.on_line(f"rejected a message on {topic}: {reason[:200]}")
        for msg in batch:
            cc.ack(msg)


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
