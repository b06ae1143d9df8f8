"""How viewing records count: the rules the terminal (``stationctl``) and the county
(``countyctl report``) both judge a station by, so the two never disagree.

- A record belongs to the month of its start: ``started_at``, else ``planned_start`` (one that
  never started), else ``ended_at``, in the station's time zone.
- **Watched to the end**: outcome ``completed``, or a start that reached ``COMPLETED_AT`` (90 %)
  of the media (a course stopped in its closing credits was watched).
- **Collective study session held**: a record that was shown (it started) with an attendance of
  at least one; the admin's attendance entry is what shows a group met. Target: two a month.
- **Scheduled session**: a record with ``trigger`` ``schedule``; the parts of one slot (an
  interrupted play and the record that resumes it share ``occurrence_key``) count once, by the
  best part. It is *completed* (watched to the end), *partial* (started, not to the end) or
  *missed* (never started: ``missed``, ``skipped``, or an ``error`` before the start).
- **On-demand play** (点播): any other trigger (``admin`` at the station, ``remote`` from the
  county); counted in plays and minutes played.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.domain.records import utc_text

TARGET_SESSIONS = 2
COMPLETED_AT = 0.9
NOT_SHOWN = ("missed", "skipped")
FAILED = ("missed", "skipped", "error")
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


def started(started_at: str | None) -> bool:
    return started_at is not None


def watched_to_end(outcome: str | None, completion: float | None, started_at: str | None) -> bool:
    if outcome == "completed":
        return True
    return started(started_at) and (completion or 0.0) >= COMPLETED_AT


def is_collective(started_at: str | None, attendance: int | None) -> bool:
    return started(started_at) and attendance is not None and attendance >= 1


def is_on_demand(trigger: str | None) -> bool:
    return trigger != "schedule"


@dataclass(frozen=True)
class View:
    """The fields of a viewing record these rules read (a terminal's or the collector's row)."""

    record_id: str
    trigger: str | None
    outcome: str | None
    reason: str | None
    course_id: str | None
    started_at: str | None
    completion: float | None
    played_seconds: float | None
    attendance: int | None
    occurrence_key: str | None = None


def session_state(parts: list[View]) -> str:
    """``completed``, ``partial``, ``missed`` or ``open`` for the parts of one scheduled slot."""
    if any(watched_to_end(v.outcome, v.completion, v.started_at) for v in parts):
        return "completed"
    if any(started(v.started_at) for v in parts):
        return "partial"
    if any(v.outcome in FAILED for v in parts):
        return "missed"
    return "open"


@dataclass
class Tally:
    """A month of one station's records, counted by the rules above."""

    records: int = 0
    by_outcome: Counter[str] = field(default_factory=Counter)
    watched: int = 0
    courses_watched: set[str] = field(default_factory=set)
    collective: int = 0
    attendance: int = 0
    shown_without_attendance: int = 0
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    open: int = 0
    scheduled: int = 0
    completed: int = 0
    partial: int = 0
    missed: int = 0
    missed_reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    on_demand_plays: int = 0
    on_demand_seconds: float = 0.0

    @property
    def target_met(self) -> bool:
        return self.collective >= TARGET_SESSIONS

    @property
    def viewing_rate(self) -> float | None:
        """Completed scheduled sessions / scheduled sessions (None without any)."""
        return self.completed / self.scheduled if self.scheduled else None


def tally(views: Iterable[View]) -> Tally:
    out = Tally()
    slots: dict[str, list[View]] = {}
    for v in views:
        out.records += 1
        out.by_outcome[v.outcome or "open"] += 1
        if v.outcome is None:
            out.open += 1
        if watched_to_end(v.outcome, v.completion, v.started_at):
            out.watched += 1
            if v.course_id:
                out.courses_watched.add(v.course_id)
        if v.outcome in FAILED:
            out.failed[(v.outcome, v.reason or "")] += 1
        if started(v.started_at):
            out.attendance += v.attendance or 0
            if is_collective(v.started_at, v.attendance):
                out.collective += 1
            elif v.attendance is None and (
                v.outcome == "completed" or (v.completion or 0.0) >= 0.5
            ):
                out.shown_without_attendance += 1
        if is_on_demand(v.trigger):
            out.on_demand_plays += 1
            out.on_demand_seconds += v.played_seconds or 0.0
        else:
            slots.setdefault(v.occurrence_key or v.record_id, []).append(v)
    for parts in slots.values():
        out.scheduled += 1
        state = session_state(parts)
        if state == "completed":
            out.completed += 1
        elif state == "partial":
            out.partial += 1
        elif state == "missed":
            out.missed += 1
            last = parts[-1]
            out.missed_reasons[(last.outcome or "", last.reason or "")] += 1
    return out


def top_reasons(counts: Counter[tuple[str, str]], n: int = 10) -> list[dict[str, object]]:
    """The most frequent (outcome, reason) pairs, most first, as JSON-ready dicts."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"outcome": o, "reason": r, "count": c} for (o, r), c in ranked]
