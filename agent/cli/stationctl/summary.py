"""The monthly summary the county judges a station by.

- Collective study sessions held: viewing records that were shown and have an attendance of at
  least one (the admin's attendance entry is what shows a group met). Target: two a month.
- Courses completed: records with outcome ``completed`` (and the distinct courses among them).
- Shown without an attendance count: shown to the end (or mostly) with no attendance entered;
  the admin may have forgotten ``stationctl attendance``.
- Missed sessions and why: outcomes ``missed`` and ``skipped`` (and ``error``), by reason.

A record belongs to the month of its start in the station's time zone (``started_at``, or
``planned_start`` for one that never started).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import Any

from agent.domain.records import utc_text

TARGET_SESSIONS = 2
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
WHEN = "COALESCE(started_at, planned_start, ended_at)"


def month_bounds(month: str, tz: dt.tzinfo) -> tuple[str, str]:
    """UTC text bounds [start, end) of a local calendar month ``YYYY-MM``; ValueError if bad."""
    m = MONTH_RE.match(month)
    if not m:
        raise ValueError(month)
    year, mon = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, mon, 1, tzinfo=tz)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return utc_text(start.timestamp()), utc_text(end.timestamp())


def month_filter(month: str, tz: dt.tzinfo) -> tuple[str, list[Any]]:
    """SQL condition and arguments selecting the records of a local month.

    The month goes by ``COALESCE(started_at, planned_start, ended_at)``, which no index covers;
    the extra condition on ``planned_start`` (a few days' margin: a course starts at most a day
    late) lets SQLite use the ``records_planned`` index, so the cost follows the month's records,
    not the whole history (100,000 records: about 4 ms instead of 22 ms a query).
    """
    lo, hi = month_bounds(month, tz)
    margin = 3 * 86400
    wide_lo = utc_text(dt.datetime.fromisoformat(lo.replace("Z", "+00:00")).timestamp() - margin)
    wide_hi = utc_text(dt.datetime.fromisoformat(hi.replace("Z", "+00:00")).timestamp() + margin)
    sql = (
        "((planned_start >= ? AND planned_start < ?) OR planned_start IS NULL) "
        f"AND {WHEN} >= ? AND {WHEN} < ?"
    )
    return sql, [wide_lo, wide_hi, lo, hi]


def current_month(now: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(now, tz).strftime("%Y-%m")


def month_summary(
    db: sqlite3.Connection, month: str, tz: dt.tzinfo, course_id: str | None = None
) -> dict[str, Any]:
    where, args = month_filter(month, tz)
    if course_id:
        where += " AND course_id = ?"
        args.append(course_id)
    # One pass over the month's rows (through the index), grouped small, summed here.
    rows = db.execute(
        f"""SELECT outcome, reason, course_id, COUNT(*),
               SUM(started_at IS NOT NULL AND attendance >= 1),
               COALESCE(SUM(CASE WHEN started_at IS NOT NULL THEN attendance END), 0),
               SUM(started_at IS NOT NULL AND attendance IS NULL
                   AND (outcome = 'completed' OR completion >= 0.5))
            FROM records WHERE {where} GROUP BY outcome, reason, course_id""",
        args,
    ).fetchall()
    total = held = people = completed = no_count = missed = open_ = 0
    by_outcome: dict[str, int] = {}
    courses: set[str] = set()
    why: dict[tuple[str, str], int] = {}
    for outcome, reason, course, n, h, p, nc in rows:
        total += n
        held += h or 0
        people += p or 0
        no_count += nc or 0
        by_outcome[outcome or "open"] = by_outcome.get(outcome or "open", 0) + n
        if outcome == "completed":
            completed += n
            courses.add(course)
        elif outcome in ("missed", "skipped", "error"):
            missed += n
            why[(outcome, reason or "")] = why.get((outcome, reason or ""), 0) + n
        elif outcome is None:
            open_ += n
    reasons = [
        {"outcome": o, "reason": r, "count": n}
        for (o, r), n in sorted(why.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    ]
    by_outcome = dict(sorted(by_outcome.items(), key=lambda kv: (-kv[1], kv[0])))
    return {
        "month": month,
        "timezone": str(tz),
        "course_id": course_id,
        "records": total,
        "collective_sessions": {
            "held": held,
            "target": TARGET_SESSIONS,
            "met": held >= TARGET_SESSIONS,
        },
        "attendance_total": people,
        "completed": completed,
        "courses_completed": sorted(courses),
        "shown_without_attendance": no_count,
        "missed": missed,
        "missed_reasons": reasons,
        "open": open_,
        "by_outcome": by_outcome,
    }
