"""``countyctl report``: a month of a county's stations, counted from the collector's database.

The counting rules are the terminal's own (:mod:`agent.domain.viewing`); this module only reads
the rows and groups them per station:

- sessions: scheduled, completed (watched to at least 90 %), partial, missed or skipped with the
  reasons; collective study sessions held against the target of two; attendance; on-demand
  (点播) plays and minutes;
- days online: local days with any sign of the terminal (a heartbeat, an ``online`` state, a
  link summary with the link up, a record or event received); last seen, and silent when that
  is more than ``silent_days`` before the end of the month (or now, for the running month);
- alarms raised in the month, and those still open at its end (the newest change per alarm);
- courses missing before their slot: ``content_missing`` alarms of the month (the files they
  name) and files the newest status lists as not ready for a slot in the month.

Stations below the target come first. A station the collector has never heard from does not
exist for it: a county roster is the way to list those (not this module's job).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from agent.cli.county.storage import Storage
from agent.domain.records import utc_text
from agent.domain.viewing import (
    COMPLETED_AT,
    TARGET_SESSIONS,
    View,
    month_bounds,
    tally,
    top_reasons,
)

SIGNS = [
    # (table, time column, extra condition): each row is a moment the terminal was connected
    ("heartbeat_hours", "first_seen", ""),
    ("heartbeat_hours", "last_seen", ""),
    ("state_changes", "received_at", " AND state = 'online'"),
    ("link_summaries", "period_start", " AND (availability IS NULL OR availability > 0)"),
    ("link_summaries", "received_at", ""),
    ("records", "first_received_at", ""),
    ("events", "received_at", ""),
    ("content", "received_at", ""),
]


@dataclass
class Station:
    county: str
    terminal: str
    views: list[View] = field(default_factory=list)
    days: set[str] = field(default_factory=set)
    last_seen: str | None = None
    alarms_raised: int = 0
    open_alarms: list[str] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    content_alarms: int = 0


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _local_day(text: str, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(_epoch(text), tz).strftime("%Y-%m-%d")


def _where_county(county: str | None, col: str = "county") -> tuple[str, list[Any]]:
    return (f" AND {col} = ?", [county]) if county else ("", [])


def build(
    db: Storage,
    month: str,
    tz: dt.tzinfo,
    *,
    county: str | None = None,
    silent_days: float = 3.0,
    now: float,
) -> dict[str, Any]:
    """The report as plain data (JSON-ready): ``totals`` and ``stations`` (below target first)."""
    lo, hi = month_bounds(month, tz)
    as_of = utc_text(min(now, _epoch(hi)))
    stations: dict[tuple[str, str], Station] = {}

    def station(c: str, term: str) -> Station:
        return stations.setdefault((c, term), Station(c, term))

    cw, cargs = _where_county(county)
    for table in ("records", "events", "heartbeat_hours", "state_changes", "link_summaries"):
        for r in db.rows(f"SELECT DISTINCT county, terminal FROM {table} WHERE 1=1{cw}", cargs):
            station(r["county"], r["terminal"])

    when = "COALESCE(started_at, planned_start, ended_at)"
    for r in db.rows(
        "SELECT record_id, county, terminal, trigger, outcome, reason, course_id, started_at, "
        "completion, played_seconds, attendance, occurrence_key FROM records "
        f"WHERE {when} >= ? AND {when} < ?{cw} ORDER BY county, terminal, seq, record_id",
        [lo, hi, *cargs],
    ):
        station(r["county"], r["terminal"]).views.append(
            View(
                r["record_id"],
                r["trigger"],
                r["outcome"],
                r["reason"],
                r["course_id"],
                r["started_at"],
                r["completion"],
                r["played_seconds"],
                r["attendance"],
                r["occurrence_key"],
            )
        )

    for table, col, extra in SIGNS:
        for r in db.rows(
            f"SELECT county, terminal, {col} AS at FROM {table} "
            f"WHERE {col} >= ? AND {col} < ?{extra}{cw}",
            [lo, as_of, *cargs],
        ):
            station(r["county"], r["terminal"]).days.add(_local_day(r["at"], tz))
        for r in db.rows(
            f"SELECT county, terminal, MAX({col}) AS at FROM {table} "
            f"WHERE {col} < ?{extra}{cw} GROUP BY county, terminal",
            [as_of, *cargs],
        ):
            s = station(r["county"], r["terminal"])
            if r["at"] and (s.last_seen is None or r["at"] > s.last_seen):
                s.last_seen = r["at"]

    _alarms(db, stations, lo, as_of, cw, cargs)
    _content(db, stations, lo, hi, cw, cargs)
    rows = [_station_row(s, as_of, silent_days) for s in stations.values()]
    rows.sort(key=lambda r: (r["target_met"], r["county"], r["terminal"]))
    return {
        "month": month,
        "timezone": str(tz),
        "county": county,
        "as_of": as_of,
        "target": TARGET_SESSIONS,
        "completed_threshold": COMPLETED_AT,
        "silent_days": silent_days,
        "totals": _totals(rows),
        "stations": rows,
    }


def _alarms(
    db: Storage,
    stations: dict[tuple[str, str], Station],
    lo: str,
    as_of: str,
    cw: str,
    cargs: list[Any],
) -> None:
    latest: dict[tuple[str, str, str], str] = {}
    for r in db.rows(
        f"SELECT county, terminal, name, state, ts FROM events WHERE type = 'alarm' AND ts < ?{cw} "
        "ORDER BY ts, msg_id",
        [as_of, *cargs],
    ):
        key = (r["county"], r["terminal"], r["name"])
        latest[key] = r["state"]
        if r["state"] == "raised" and r["ts"] >= lo:
            stations[(r["county"], r["terminal"])].alarms_raised += 1
    for (c, term, name), state in sorted(latest.items()):
        if state == "raised":
            stations[(c, term)].open_alarms.append(name)


def _content(
    db: Storage,
    stations: dict[tuple[str, str], Station],
    lo: str,
    hi: str,
    cw: str,
    cargs: list[Any],
) -> None:
    for r in db.rows(
        "SELECT county, terminal, detail FROM events WHERE name = 'content_missing' "
        f"AND state = 'raised' AND ts >= ? AND ts < ?{cw}",
        [lo, hi, *cargs],
    ):
        s = stations[(r["county"], r["terminal"])]
        s.content_alarms += 1
        detail = json.loads(r["detail"]) if r["detail"] else {}
        s.missing.update(str(f) for f in detail.get("files") or [])
    for r in db.rows(f"SELECT county, terminal, files FROM content WHERE 1=1{cw}", cargs):
        for f in json.loads(r["files"]) if r["files"] else []:
            slot = f.get("slot") if isinstance(f, dict) else None
            if isinstance(slot, str) and f.get("status") != "ready" and lo <= slot < hi:
                stations[(r["county"], r["terminal"])].missing.add(str(f.get("path")))


def _station_row(s: Station, as_of: str, silent_days: float) -> dict[str, Any]:
    t = tally(s.views)
    silent_for = (
        None if s.last_seen is None else round((_epoch(as_of) - _epoch(s.last_seen)) / 86400, 1)
    )
    rate = t.viewing_rate
    return {
        "county": s.county,
        "terminal": s.terminal,
        "scheduled": t.scheduled,
        "completed": t.completed,
        "partial": t.partial,
        "missed": t.missed,
        "missed_reasons": top_reasons(t.missed_reasons),
        "viewing_rate": None if rate is None else round(rate, 3),
        "collective_sessions": t.collective,
        "target_met": t.target_met,
        "attendance": t.attendance,
        "on_demand_plays": t.on_demand_plays,
        "on_demand_minutes": round(t.on_demand_seconds / 60, 1),
        "days_online": len(s.days),
        "last_seen": s.last_seen,
        "silent_days": silent_for,
        "silent": silent_for is None or silent_for > silent_days,
        "alarms_raised": s.alarms_raised,
        "alarms_open": len(s.open_alarms),
        "open_alarms": s.open_alarms,
        "content_missing_alarms": s.content_alarms,
        "courses_missing": sorted(s.missing),
    }


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sums: dict[str, float] = defaultdict(float)
    for r in rows:
        for k in (
            "scheduled",
            "completed",
            "partial",
            "missed",
            "collective_sessions",
            "attendance",
            "on_demand_plays",
            "on_demand_minutes",
            "alarms_raised",
            "alarms_open",
        ):
            sums[k] += r[k]
    scheduled, completed = int(sums["scheduled"]), int(sums["completed"])
    return {
        "stations": len(rows),
        "stations_meeting_target": sum(r["target_met"] for r in rows),
        "stations_below_target": sum(not r["target_met"] for r in rows),
        "scheduled": scheduled,
        "completed": completed,
        "partial": int(sums["partial"]),
        "missed": int(sums["missed"]),
        "viewing_rate": round(completed / scheduled, 3) if scheduled else None,
        "collective_sessions": int(sums["collective_sessions"]),
        "attendance": int(sums["attendance"]),
        "on_demand_plays": int(sums["on_demand_plays"]),
        "on_demand_minutes": round(sums["on_demand_minutes"], 1),
        "alarms_raised": int(sums["alarms_raised"]),
        "alarms_open": int(sums["alarms_open"]),
        "silent_stations": [r["terminal"] for r in rows if r["silent"]],
    }
