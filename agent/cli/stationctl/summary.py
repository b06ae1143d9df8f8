"""The monthly summary the county judges a station by, counted by the shared rules of
:mod:`agent.domain.viewing` (the county's ``countyctl report`` uses the same ones).

- Collective study sessions held: records shown with an attendance of at least one. Target: two.
- Courses completed: records watched to the end (outcome ``completed`` or 90 % of the media).
- Shown without an attendance count: shown to the end (or mostly) with no attendance entered;
  the admin may have forgotten ``stationctl attendance``.
- Missed sessions and why: outcomes ``missed``, ``skipped`` and ``error``, by reason.

A record belongs to the month of its start in the station's time zone (``started_at``, or
``planned_start`` for one that never started).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from agent.adapters.sqlite import read_model
from agent.domain.viewing import (
    MONTH_RE,
    TARGET_SESSIONS,
    View,
    current_month,
    month_bounds,
    tally,
    top_reasons,
)

__all__ = ["MONTH_RE", "TARGET_SESSIONS", "current_month", "month_bounds", "month_summary"]


def month_summary(
    db: sqlite3.Connection, month: str, tz: dt.tzinfo, course_id: str | None = None
) -> dict[str, Any]:
    # A month at one station is tens to a few hundred records: read them, count them in Python.
    records = read_model.records(db, month=month_bounds(month, tz), course_id=course_id)
    t = tally(
        View(
            r.record_id,
            r.trigger,
            r.outcome,
            r.reason,
            r.course_id,
            r.started_at,
            r.completion,
            r.played_seconds,
            r.attendance,
            r.occurrence_key,
        )
        for r in records
    )
    by_outcome = dict(sorted(t.by_outcome.items(), key=lambda kv: (-kv[1], kv[0])))
    return {
        "month": month,
        "timezone": str(tz),
        "course_id": course_id,
        "records": t.records,
        "collective_sessions": {
            "held": t.collective,
            "target": TARGET_SESSIONS,
            "met": t.target_met,
        },
        "attendance_total": t.attendance,
        "completed": t.watched,
        "courses_completed": sorted(t.courses_watched),
        "shown_without_attendance": t.shown_without_attendance,
        "missed": sum(t.failed.values()),
        "missed_reasons": top_reasons(t.failed),
        "open": t.open,
        "by_outcome": by_outcome,
    }
