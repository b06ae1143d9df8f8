"""A constructed month (October 2026, Asia/Shanghai) with its expected report, worked out by
hand from the rules in agent/domain/viewing.py."""

from __future__ import annotations

from agent.cli.county.storage import Storage
from tests.county.conftest import at, event, heartbeat, item, link_summary, record, state

MONTH = "2026-10"
NOW = at("2026-11-05 12:00")  # the report is made after the month: as of its end


def fill(st: Storage) -> None:
    """t-a: two collective sessions; t-b: one; t-c: silent since 2 October; t-d: another county."""
    chain = "terminal/w9/20261018T113000Z"
    a = [
        record("t-a", 1, start="2026-10-03 19:30", attendance=12),
        record("t-a", 2, start="2026-10-10 19:30", attendance=8),
        record("t-a", 3, start="2026-10-12 19:30", outcome="stopped", completion=0.5, played=900),
        record("t-a", 4, start="2026-10-14 19:30", outcome="missed", reason="power off"),
        record("t-a", 5, start="2026-10-16 19:30", outcome="skipped", reason="checksum: mismatch"),
        record(
            "t-a",
            6,
            start="2026-10-18 19:30",
            outcome="interrupted",
            completion=0.3,
            played=540,
            occurrence_key=chain,
        ),  # fmt: skip
        record("t-a", 7, start="2026-10-18 20:00", occurrence_key=chain),
        record(
            "t-a",
            8,
            start="2026-10-20 10:00",
            trigger="remote",
            outcome="stopped",
            completion=0.33,
            played=600,
        ),  # fmt: skip
        record("t-a", 9, start="2026-10-21 10:00", trigger="admin", played=300),
        record("t-a", 10, start="2026-09-29 19:30", attendance=30),  # September
    ]
    st.store([item("record", r) for r in a], "c", now=at("2026-10-25 09:05"))
    for when in ("2026-10-03 20:00", "2026-10-10 20:00", "2026-10-25 09:00", "2026-10-31 22:00"):
        st.store([item("heartbeat", heartbeat("t-a", 1))], "c", now=at(when))
    st.store(
        [
            item("event", event("t-a", "disk_low", "raised", "2026-10-05 10:00")),
            item("event", event("t-a", "disk_low", "cleared", "2026-10-06 10:00")),
            item(
                "event",
                event(
                    "t-a",
                    "content_missing",
                    "raised",
                    "2026-10-15 10:00",
                    files=["courses/ph-02.mp4"],
                    count=1,
                ),
            ),  # fmt: skip
            item("event", event("t-a", "content_missing", "cleared", "2026-10-16 10:00")),
            item("event", event("t-a", "display_disconnected", "raised", "2026-10-30 10:00")),
        ],
        "c",
        now=at("2026-10-31 22:00"),
    )
    status = {
        "ts": "2026-10-31T14:00:00.000Z",
        "terminal": "t-a",
        "county": "c-01",
        "content": {
            "readiness": {"needed": 2, "ready": 1},
            "files": [
                {
                    "path": "courses/ph-03.mp4",
                    "status": "fetching",
                    "slot": "2026-10-31T15:00:00.000Z",
                },
                {
                    "path": "courses/ph-01.mp4",
                    "status": "ready",
                    "slot": "2026-10-31T15:00:00.000Z",
                },
            ],
            "files_total": 2,
        },
    }
    st.store([item("status", status)], "c", now=at("2026-10-31 22:00"))

    b1 = record("t-b", 1, start="2026-10-08 19:30")
    b = [
        b1,
        {**b1, "rev": 2, "attendance": 6},
        record("t-b", 2, start="2026-10-22 19:30", outcome="stopped", completion=0.95),
        record(
            "t-b",
            3,
            start="2026-10-29 19:30",
            outcome="error",
            completion=0.1,
            played=180,
            reason="decoder failed",
        ),  # fmt: skip
    ]
    st.store([item("state", state("t-b", "online", 3))], "c", now=at("2026-10-08 18:00"))
    st.store(
        [item("record", r) for r in b]
        + [
            item("link_summary", link_summary("t-b", "2026-10-22 10:00", 0.9)),
            item("link_summary", link_summary("t-b", "2026-10-24 10:00", 0.0)),
        ],
        "c",
        now=at("2026-10-31 23:00"),
    )
    st.store([item("heartbeat", heartbeat("t-c", 1))], "c", now=at("2026-10-02 09:00"))
    d = record("t-d", 1, start="2026-10-05 19:30", attendance=4, county="c-02")
    st.store([item("record", d)], "c", now=at("2026-10-05 21:00"))


STATIONS = {
    "t-a": {
        "scheduled": 6, "completed": 3, "partial": 1, "missed": 2, "viewing_rate": 0.5,
        "collective_sessions": 2, "target_met": True, "attendance": 20,
        "on_demand_plays": 2, "on_demand_minutes": 15.0, "days_online": 4, "silent": False,
        "alarms_raised": 3, "alarms_open": 1, "open_alarms": ["display_disconnected"],
        "content_missing_alarms": 1,
        "courses_missing": ["courses/ph-02.mp4", "courses/ph-03.mp4"],
        "missed_reasons": [
            {"outcome": "missed", "reason": "power off", "count": 1},
            {"outcome": "skipped", "reason": "checksum: mismatch", "count": 1},
        ],
    },
    "t-b": {
        "scheduled": 3, "completed": 2, "partial": 1, "missed": 0, "viewing_rate": 0.667,
        "collective_sessions": 1, "target_met": False, "attendance": 6,
        "on_demand_plays": 0, "on_demand_minutes": 0.0, "days_online": 3, "silent": False,
        "alarms_raised": 0, "alarms_open": 0, "courses_missing": [], "missed_reasons": [],
    },
    "t-c": {
        "scheduled": 0, "completed": 0, "viewing_rate": None, "collective_sessions": 0,
        "target_met": False, "days_online": 1, "silent": True, "silent_days": 29.6,
        "last_seen": "2026-10-02T01:00:00.000Z",
    },
}  # fmt: skip

TOTALS = {
    "stations": 3,
    "stations_meeting_target": 1,
    "stations_below_target": 2,
    "scheduled": 9,
    "completed": 5,
    "partial": 2,
    "missed": 2,
    "viewing_rate": 0.556,
    "collective_sessions": 3,
    "attendance": 26,
    "on_demand_plays": 2,
    "on_demand_minutes": 15.0,
    "alarms_raised": 3,
    "alarms_open": 1,
    "silent_stations": ["t-c"],
}
