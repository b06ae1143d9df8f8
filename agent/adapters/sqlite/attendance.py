"""The record lookups and the update behind ``stationctl attendance`` (rules: agent.runtime).

A record is named by the admin as its number (``seq``), its id or a unique id prefix; these are
the queries for each form. The update itself runs inside the caller's transaction, together with
re-queuing the record and the event line.
"""

from __future__ import annotations

import sqlite3

from agent.domain.records import Record


def latest_shown(db: sqlite3.Connection) -> Record | None:
    """The newest record that was actually shown (it has ``started_at``)."""
    row = db.execute(
        "SELECT * FROM records WHERE started_at IS NOT NULL ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return Record.from_row(row) if row is not None else None


def by_seq(db: sqlite3.Connection, seq: int) -> Record | None:
    row = db.execute("SELECT * FROM records WHERE seq=?", (seq,)).fetchone()
    return Record.from_row(row) if row is not None else None


def by_id(db: sqlite3.Connection, record_id: str) -> Record | None:
    row = db.execute("SELECT * FROM records WHERE record_id=?", (record_id,)).fetchone()
    return Record.from_row(row) if row is not None else None


def by_prefix(db: sqlite3.Connection, prefix: str, limit: int = 2) -> list[Record]:
    """Records whose id starts with ``prefix`` (lower-cased), oldest first; ``limit`` of them
    (two are enough to tell a unique prefix from an ambiguous one)."""
    rows = db.execute(
        "SELECT * FROM records WHERE substr(record_id, 1, ?)=? ORDER BY seq LIMIT ?",
        (len(prefix), prefix.lower(), limit),
    ).fetchall()
    return [Record.from_row(r) for r in rows]


def set_attendance(conn: sqlite3.Connection, record_id: str, count: int, rev: int) -> None:
    conn.execute(
        "UPDATE records SET attendance=?, rev=? WHERE record_id=?", (count, rev, record_id)
    )
