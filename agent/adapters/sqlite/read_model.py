"""What stationctl reads from the terminal's database: the queries behind its screens.

stationctl opens the store read-only (``open_readonly``) and never writes; the agent may be
running, stopped or broken. Each function answers one question of one screen and returns plain
rows or values, so the commands format and judge without knowing a table.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from agent.adapters.sqlite.store import Store
from agent.domain.records import Record, utc_text

# When a record happened: it started, or was planned, or (never started, never planned) ended.
WHEN = "COALESCE(started_at, planned_start, ended_at)"
MONTH_MARGIN_S = 3 * 86400  # a course starts at most a day late: a wide margin on planned_start


def open_readonly(path: Path) -> Store:
    """The store, read-only, for a reader that must never disturb the agent.

    A WAL reader needs the ``-shm`` file. While the agent runs it exists; when the agent has
    stopped cleanly it is gone, and an admin who may read the state folder but not write it
    (group stationadmin, mode 2750) cannot create it. Then, and only when no ``-wal`` file holds
    commits that are not yet in the database file, the file is opened as immutable: no locks,
    no side files, exactly what is on disk.
    """
    store = Store(path, readonly=True, timeout=10.0)
    try:
        store.db.execute("SELECT 1 FROM records LIMIT 1").fetchall()
        return store
    except sqlite3.OperationalError:
        wal = Path(str(path) + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise
        store.close()
    store = Store(path, readonly=True, timeout=10.0)
    store.db.close()
    store.db = sqlite3.connect(
        f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False
    )
    store.db.row_factory = sqlite3.Row
    store.db.execute("SELECT 1 FROM records LIMIT 1").fetchall()
    return store


def check(db: sqlite3.Connection) -> tuple[str, int]:
    """SQLite's ``quick_check`` verdict ("ok" when intact) and the number of viewing records."""
    verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    n = db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    return str(verdict), int(n)


# -- the event log -------------------------------------------------------------------------------


def events(
    db: sqlite3.Connection,
    *,
    levels: list[str],
    since: str | None = None,
    kind: str | None = None,
    after_id: int = 0,
    limit: int | None = None,
) -> list[sqlite3.Row]:
    """Events of ``levels`` after ``after_id`` (and from ``since``, UTC text), oldest first;
    with ``limit``, only the newest that many."""
    sql = f"SELECT * FROM events WHERE id > ? AND level IN ({', '.join('?' * len(levels))})"
    params: list[Any] = [after_id, *levels]
    if since:
        sql += " AND ts >= ?"
        params.append(since)
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    if limit:
        rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
        return rows[::-1]
    return db.execute(sql + " ORDER BY id", params).fetchall()


def last_event_id(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def lifecycle(db: sqlite3.Connection) -> dict[str, Any]:
    """The latest agent_started / agent_stopped event and the latest event of any kind."""
    row = db.execute(
        "SELECT kind, ts, data FROM events WHERE kind IN ('agent_started', 'agent_stopped') "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    last = db.execute("SELECT ts FROM events ORDER BY id DESC LIMIT 1").fetchone()
    out: dict[str, Any] = {
        "kind": row[0] if row else None,
        "ts": row[1] if row else None,
        "pid": None,
        "last_event": last[0] if last else None,
    }
    if row is not None and row[2]:
        try:
            out["pid"] = json.loads(row[2]).get("pid")
        except (ValueError, AttributeError):
            pass
    return out


# -- records -------------------------------------------------------------------------------------


def _month_where(bounds: tuple[str, str]) -> tuple[str, list[Any]]:
    """SQL condition and arguments selecting the records of a month given as UTC bounds [lo, hi).

    The month goes by ``WHEN``, which no index covers; the extra condition on ``planned_start``
    (a few days' margin: a course starts at most a day late) lets SQLite use the
    ``records_planned`` index, so the cost follows the month's records, not the whole history
    (100,000 records: about 4 ms instead of 22 ms a query).
    """
    lo, hi = bounds
    wide_lo = utc_text(_epoch(lo) - MONTH_MARGIN_S)
    wide_hi = utc_text(_epoch(hi) + MONTH_MARGIN_S)
    sql = (
        "((planned_start >= ? AND planned_start < ?) OR planned_start IS NULL) "
        f"AND {WHEN} >= ? AND {WHEN} < ?"
    )
    return sql, [wide_lo, wide_hi, lo, hi]


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def records(
    db: sqlite3.Connection,
    *,
    month: tuple[str, str] | None = None,
    course_id: str | None = None,
    limit: int | None = None,
) -> list[Record]:
    """Viewing records, oldest first: of a month (UTC bounds), of a course, or the newest
    ``limit``."""
    sql, params = "SELECT * FROM records WHERE 1=1", []
    if month:
        where, more = _month_where(month)
        sql += f" AND {where}"
        params += more
    if course_id:
        sql += " AND course_id = ?"
        params.append(course_id)
    if limit:
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(max(0, limit))
        rows = list(db.execute(sql, params))[::-1]
    else:
        rows = list(db.execute(sql + " ORDER BY seq", params))
    return [Record.from_row(r) for r in rows]


def month_counts(
    db: sqlite3.Connection, month: tuple[str, str], course_id: str | None = None
) -> list[tuple[Any, ...]]:
    """The month's records grouped by (outcome, reason, course_id), one pass through the index.

    Each row: outcome, reason, course_id, records, shown with an attendance of at least one,
    people counted, shown (to the end or mostly) without an attendance count.
    """
    where, args = _month_where(month)
    if course_id:
        where += " AND course_id = ?"
        args.append(course_id)
    rows = db.execute(
        f"""SELECT outcome, reason, course_id, COUNT(*),
               SUM(started_at IS NOT NULL AND attendance >= 1),
               COALESCE(SUM(CASE WHEN started_at IS NOT NULL THEN attendance END), 0),
               SUM(started_at IS NOT NULL AND attendance IS NULL
                   AND (outcome = 'completed' OR completion >= 0.5))
            FROM records WHERE {where} GROUP BY outcome, reason, course_id""",
        args,
    )
    return [tuple(r) for r in rows]


def last_failure(db: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest record that ended ``error`` or ``skipped``, with ``at`` (when it happened)."""
    row = db.execute(
        f"SELECT seq, course_id, title, outcome, reason, {WHEN} AS at FROM records "
        "WHERE outcome IN ('error', 'skipped') ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return dict(row) if row is not None else None


# -- alarms and the outbox ------------------------------------------------------------------------


def alarms(db: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(open alarms by raise time, the five latest alarms) as name/severity/raised/cleared."""

    def as_dict(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "name": row["name"],
            "severity": row["severity"],
            "raised_at": row["raised_at"],
            "cleared_at": row["cleared_at"],
        }

    active = [
        as_dict(r)
        for r in db.execute("SELECT * FROM alarms WHERE cleared_at IS NULL ORDER BY raised_at")
    ]
    recent = [as_dict(r) for r in db.execute("SELECT * FROM alarms ORDER BY id DESC LIMIT 5")]
    return active, recent


def unsent_records(db: sqlite3.Connection) -> dict[str, Any]:
    """How many record messages wait in the outbox, and since when the oldest."""
    n, oldest = db.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE kind='record'"
    ).fetchone()
    return {"count": int(n), "oldest": oldest}
