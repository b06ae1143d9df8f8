"""SQLite store: the single source of truth across restarts and power cuts.

WAL mode with synchronous=FULL: measured on this kind of machine, it survived every simulated
power cut with no lost commit, where NORMAL lost acknowledged commits (see shared design notes).
Readers (stationctl) open the same file read-only and never block the writer.

Tables
- ``records``  one row per viewing record; ``outcome`` is NULL while the record is open.
- ``outbox``   messages waiting to leave the terminal, in order; removed only when confirmed.
- ``events``   the agent's own event log (notable events, not debug chatter) for stationctl.
- ``alarms``   current and past alarms (raised/cleared), one row per raise.
- ``kv``       small durable values (session counter, plan cursor, seen command ids...).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id        TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL UNIQUE,
    occurrence_key   TEXT,
    terminal         TEXT NOT NULL,
    course_id        TEXT NOT NULL,
    title            TEXT NOT NULL,
    media            TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    schedule_layer   TEXT,
    schedule_version INTEGER,
    item_id          TEXT,
    planned_start    TEXT,
    started_at       TEXT,
    ended_at         TEXT,
    played_seconds   REAL NOT NULL DEFAULT 0,
    media_duration   REAL,
    position         REAL NOT NULL DEFAULT 0,
    completion       REAL NOT NULL DEFAULT 0,
    outcome          TEXT,
    reason           TEXT,
    clock_state      TEXT NOT NULL,
    boot_id          TEXT NOT NULL,
    attendance       INTEGER,
    resumed_from     TEXT,
    rev              INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_open ON records(outcome) WHERE outcome IS NULL;
CREATE INDEX IF NOT EXISTS records_occurrence ON records(occurrence_key);
CREATE INDEX IF NOT EXISTS records_planned ON records(planned_start);
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    topic      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    qos        INTEGER NOT NULL DEFAULT 1,
    retain     INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_msg ON outbox(msg_id);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      TEXT NOT NULL,
    level   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    data    TEXT
);
CREATE TABLE IF NOT EXISTS alarms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    raised_at  TEXT NOT NULL,
    cleared_at TEXT,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS alarms_active ON alarms(name) WHERE cleared_at IS NULL;
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

OUTCOMES = ("completed", "stopped", "error", "interrupted", "skipped", "missed")
TRIGGERS = ("schedule", "admin", "remote")


@dataclass
class Record:
    """One viewing record. Times are UTC RFC 3339 strings; durations are seconds."""

    record_id: str
    seq: int
    terminal: str
    course_id: str
    title: str
    media: str
    trigger: str
    clock_state: str
    boot_id: str
    occurrence_key: str | None = None
    schedule_layer: str | None = None
    schedule_version: int | None = None
    item_id: str | None = None
    planned_start: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    played_seconds: float = 0.0
    media_duration: float | None = None
    position: float = 0.0
    completion: float = 0.0
    outcome: str | None = None
    reason: str | None = None
    attendance: int | None = None
    resumed_from: str | None = None
    rev: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{k: row[k] for k in row.keys() if k in names})  # noqa: SIM118


RECORD_COLUMNS = [f.name for f in fields(Record)]


class StoreCorrupt(Exception):
    """The database file failed its integrity check."""


class Store:
    """The agent's read-write handle. One per process, used from the core thread only."""

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
        self.db.row_factory = sqlite3.Row
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            # Fewer, larger checkpoints: every WAL page written back costs SD-card wear.
            self.db.execute("PRAGMA wal_autocheckpoint=256")
            self.db.executescript(SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        else:
            self.db.execute("PRAGMA query_only=1")

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open_or_recover(cls, path: Path) -> tuple[Store, Path | None]:
        """Open the store; a corrupt file is moved aside (with a timestamp) and a fresh one made.

        Returns the store and the path the corrupt file was moved to, if any, so the caller can
        raise an alarm. Losing a corrupt store is bad; refusing to play for months is worse.
        """
        path = Path(path)
        moved: Path | None = None
        if path.exists():
            try:
                probe = cls(path)
                result = probe.db.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    probe.close()
                    raise StoreCorrupt(result)
                return probe, None
            except (sqlite3.DatabaseError, StoreCorrupt):
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                moved = path.with_name(f"{path.name}.corrupt-{stamp}")
                shutil.move(str(path), str(moved))
                for suffix in ("-wal", "-shm"):
                    side = Path(str(path) + suffix)
                    if side.exists():
                        shutil.move(str(side), str(moved) + suffix)
        return cls(path), moved

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    # -- kv --------------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.db).execute(
            "INSERT INTO kv(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def bump_counter(self, key: str) -> int:
        with self.transaction() as conn:
            value = int(self.get(key, "0") or 0) + 1
            self.put(key, str(value), conn)
        return value

    # -- records ---------------------------------------------------------------------------

    def next_record_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
        return int(row[0]) + 1

    def insert_record(self, rec: Record, conn: sqlite3.Connection | None = None) -> None:
        cols = ", ".join(RECORD_COLUMNS)
        marks = ", ".join("?" for _ in RECORD_COLUMNS)
        values = [getattr(rec, c) for c in RECORD_COLUMNS]
        (conn or self.db).execute(f"INSERT INTO records({cols}) VALUES({marks})", values)

    def update_record(self, rec: Record, conn: sqlite3.Connection | None = None) -> None:
        cols = [c for c in RECORD_COLUMNS if c != "record_id"]
        assignments = ", ".join(f"{c}=?" for c in cols)
        values = [getattr(rec, c) for c in cols] + [rec.record_id]
        (conn or self.db).execute(f"UPDATE records SET {assignments} WHERE record_id=?", values)

    def checkpoint_record(
        self, record_id: str, position: float, played: float, completion: float
    ) -> None:
        self.db.execute(
            "UPDATE records SET position=?, played_seconds=?, completion=? WHERE record_id=?",
            (position, played, completion, record_id),
        )

    def get_record(self, record_id: str) -> Record | None:
        row = self.db.execute("SELECT * FROM records WHERE record_id=?", (record_id,)).fetchone()
        return Record.from_row(row) if row else None

    def open_records(self) -> list[Record]:
        rows = self.db.execute("SELECT * FROM records WHERE outcome IS NULL ORDER BY seq")
        return [Record.from_row(r) for r in rows]

    def records(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        course_id: str | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        sql = "SELECT * FROM records WHERE 1=1"
        args: list[Any] = []
        if since:
            sql += " AND COALESCE(started_at, planned_start) >= ?"
            args.append(since)
        if until:
            sql += " AND COALESCE(started_at, planned_start) < ?"
            args.append(until)
        if course_id:
            sql += " AND course_id = ?"
            args.append(course_id)
        if limit:
            sql += f" ORDER BY seq DESC LIMIT {int(limit)}"
            rows = list(self.db.execute(sql, args))[::-1]
            return [Record.from_row(r) for r in rows]
        sql += " ORDER BY seq"
        return [Record.from_row(r) for r in self.db.execute(sql, args)]

    def occurrence_outcomes(self, keys: Iterable[str]) -> dict[str, list[tuple[str | None, str]]]:
        """For each occurrence key, the (outcome, record_id) of its records, oldest first."""
        out: dict[str, list[tuple[str | None, str]]] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.db.execute(
                f"SELECT occurrence_key, outcome, record_id FROM records WHERE occurrence_key IN ({marks}) ORDER BY seq",
                chunk,
            )
            for key, outcome, rid in rows:
                out.setdefault(key, []).append((outcome, rid))
        return out

    # -- outbox ----------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        msg_id: str,
        topic: str,
        payload: dict[str, Any] | str,
        *,
        qos: int = 1,
        retain: bool = False,
        replace: bool = False,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Put a message in the outbox. ``replace`` drops an unsent older copy with the same id."""
        c = conn or self.db
        text = (
            payload
            if isinstance(payload, str)
            else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        )
        if replace:
            c.execute("DELETE FROM outbox WHERE msg_id=? AND kind=?", (msg_id, kind))
        c.execute(
            "INSERT INTO outbox(msg_id, kind, topic, payload, qos, retain, created_at) VALUES(?,?,?,?,?,?,?)",
            (msg_id, kind, topic, text, qos, int(retain), utc_now_text()),
        )

    def outbox_depth(self, kind: str | None = None) -> int:
        if kind:
            return self.db.execute("SELECT COUNT(*) FROM outbox WHERE kind=?", (kind,)).fetchone()[
                0
            ]
        return self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    # -- events ----------------------------------------------------------------------------

    def add_event(
        self,
        level: str,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
        ts: str | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        (conn or self.db).execute(
            "INSERT INTO events(ts, level, kind, message, data) VALUES(?,?,?,?,?)",
            (
                ts or utc_now_text(),
                level,
                kind,
                message,
                json.dumps(data, ensure_ascii=False) if data else None,
            ),
        )


def utc_now_text(ts: float | None = None) -> str:
    return utc_text(time.time() if ts is None else ts)


def utc_text(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-28T11:30:00.000Z."""
    whole = int(ts // 1)
    ms = int(round((ts - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


def fsync_dir(path: Path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that after a power cut it holds either the old or the new content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
