"""SQLite store: the single source of truth across restarts and power cuts.

``Store`` is the agent's handle (one per process, used from the core thread only): the file and
the generic tables come from ``Database``; here are the viewing records and the views other
parts use through the runtime's ports (``outbox`` for the MQTT link, ``commands`` for its
command ledger, ``alarms``). Every SQL statement of the terminal's database lives in this
package; stationctl reads through ``read_model``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from functools import cached_property
from typing import Any

from agent.adapters.sqlite.alarms import AlarmLog
from agent.adapters.sqlite.commands import CommandLedger
from agent.adapters.sqlite.database import Database
from agent.adapters.sqlite.outbox import OutboxQueue
from agent.domain.records import RECORD_COLUMNS, Record


class Store(Database):
    """The agent's read-write handle. One per process, used from the core thread only.

    ``degraded`` says why the store is open in a fallback mode (read-only, or holding the file
    exclusively because the disk is full): every write then fails and the runtime holds what must
    not be lost until ``reopen()`` succeeds.
    """

    # -- views for the adapters (typed by agent.runtime.ports) ------------------------------

    @cached_property
    def outbox(self) -> OutboxQueue:
        return OutboxQueue(self)

    @cached_property
    def commands(self) -> CommandLedger:
        """The MQTT command ledger; its table is made here, on first use."""
        return CommandLedger(self)

    @cached_property
    def alarms(self) -> AlarmLog:
        return AlarmLog(self)

    # -- records ---------------------------------------------------------------------------

    def next_record_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
        return int(row[0]) + 1

    def insert_record(self, rec: Record, conn: sqlite3.Connection | None = None) -> int:
        """Insert ``rec``; returns the rows written (1), so a caller can tell a write happened."""
        cols = ", ".join(RECORD_COLUMNS)
        marks = ", ".join("?" for _ in RECORD_COLUMNS)
        values = [getattr(rec, c) for c in RECORD_COLUMNS]
        cur = (conn or self.db).execute(f"INSERT INTO records({cols}) VALUES({marks})", values)
        return cur.rowcount

    def update_record(self, rec: Record, conn: sqlite3.Connection | None = None) -> int:
        """Update ``rec`` by its id; returns the rows matched (0: no such record, a bug)."""
        cols = [c for c in RECORD_COLUMNS if c != "record_id"]
        assignments = ", ".join(f"{c}=?" for c in cols)
        values = [getattr(rec, c) for c in cols] + [rec.record_id]
        cur = (conn or self.db).execute(
            f"UPDATE records SET {assignments} WHERE record_id=?", values
        )
        return cur.rowcount

    def checkpoint_record(
        self, record_id: str, position: float, played: float, completion: float
    ) -> int:
        """Save an open record's progress; returns the rows matched (0: no such record)."""
        cur = self.db.execute(
            "UPDATE records SET position=?, played_seconds=?, completion=? WHERE record_id=?",
            (position, played, completion, record_id),
        )
        return cur.rowcount

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

    # -- what a restart plans with -----------------------------------------------------------

    def latest_durations(self) -> dict[str, float]:
        """Each course's media length as its latest play measured it."""
        rows = self.db.execute(
            "SELECT course_id, media_duration FROM records WHERE seq IN ("
            "SELECT MAX(seq) FROM records WHERE media_duration > 0 GROUP BY course_id)"
        )
        return {cid: float(d) for cid, d in rows}

    def last_played(self) -> dict[str, str]:
        """Each media's latest start (UTC text): the content folder evicts the file played
        longest ago first when it needs room."""
        rows = self.db.execute(
            "SELECT media, MAX(started_at) FROM records WHERE started_at IS NOT NULL GROUP BY media"
        )
        return {media: started for media, started in rows}

    def occurrence_history(self, since: str) -> list[tuple[str, str | None, str, float]]:
        """(occurrence_key, outcome, record_id, position) of planned records from ``since``
        (UTC text) on, oldest first: what the planner needs to resume or mark missed."""
        rows = self.db.execute(
            "SELECT occurrence_key, outcome, record_id, position FROM records "
            "WHERE occurrence_key IS NOT NULL AND planned_start >= ? ORDER BY seq",
            (since,),
        )
        return [(key, outcome, rid, pos or 0.0) for key, outcome, rid, pos in rows]
