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

from agent.adapters.sqlite import read_model
from agent.domain.records import utc_text

TARGET_SESSIONS = 2
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(month: str, tz: dt.tzinfo) -> tuple[str, str]:
    """UTC text bounds [start, end) of a local calendar month ``YYYY-MM``; ValueError if bad."""
    m = MONTH_RE.match(month)
    if not m:
        raise ValueError(month)
    year, mon = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, mon, 1, tzinfo=tz)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return utc_text(start.timestamp()), utc_text(end.timestamp())


def current_month(now: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(now, tz).strftime("%Y-%m")


def month_summary(
    db: sqlite3.Connection, month: str, tz: dt.tzinfo, course_id: str | None = None
) -> dict[str, Any]:
    # One pass over the month's rows (through the index), grouped small, summed here.
    rows = read_model.month_counts(db, month_bounds(month, tz), course_id)
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
