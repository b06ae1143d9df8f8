"""A prepared station for stationctl tests: config, content, an applied schedule, and a store with
records (one fixed month, 2026-10, and a few around now), alarms, events and unsent messages."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from agent.adapters.sqlite.store import Store
from agent.domain.records import Record, utc_text
from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule, write_config

TERMINAL, COUNTY = "t-001", "c-01"
OCT = "2026-10"


def oct_utc(day: int, hour: int, minute: int = 0) -> str:
    """A local (Asia/Shanghai, UTC+8) time in October 2026 as stored UTC text."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    local = dt.datetime(2026, 10, day, hour, minute, tzinfo=ZoneInfo("Asia/Shanghai"))
    return utc_text(local.timestamp())


def make_record(seq: int, **kw: Any) -> Record:
    base: dict[str, Any] = {
        "record_id": str(uuid.UUID(int=seq)),
        "seq": seq,
        "terminal": TERMINAL,
        "course_id": "course",
        "title": "Course",
        "media": "a.wav",
        "trigger": "schedule",
        "clock_state": "unsynced",
        "boot_id": "boot-1",
    }
    base.update(kw)
    return Record(**base)


def build_station(root: Path, *, now: float | None = None, **config: Any) -> Path:
    """Create the station under ``root``; returns the config path."""
    now = time.time() if now is None else now
    cfg = write_config(root, **config)
    content = root / "content"
    write_wav(content / "pig-1.wav", 1.0)
    write_wav(content / "apple.wav", 1.0)
    good_sha = hashlib.sha256((content / "apple.wav").read_bytes()).hexdigest()
    write_wav(content / "broken.wav", 1.0)
    state = root / "state"
    state.mkdir(exist_ok=True)
    doc = schedule(
        7,
        [
            one_off("s1", now + 3600, "pig-1.wav", course_id="pig-1", title="生猪养殖技术（一）"),
            one_off("s2", now + 2 * 3600, "missing.wav", course_id="tea-2", title="茶叶种植"),
            one_off(
                "s3",
                now + 3 * 3600,
                "apple.wav",
                course_id="apple",
                title="Apple trees in winter",
                course={"sha256": good_sha},
            ),
            one_off(
                "s4",
                now + 4 * 3600,
                "broken.wav",
                course_id="broken",
                title="Damaged video",
                course={"sha256": "0" * 64},
            ),
        ],
    )
    result = apply_schedule(state, doc)
    assert result.status == "applied", result
    store = Store(state / "agent.db")
    recs = [
        make_record(
            1,
            course_id="pig-1",
            title="生猪养殖技术（一）",
            planned_start=oct_utc(3, 19, 30),
            started_at=oct_utc(3, 19, 30),
            ended_at=oct_utc(3, 20, 10),
            played_seconds=2400,
            media_duration=2400,
            completion=1.0,
            outcome="completed",
            attendance=23,
        ),
        make_record(
            2,
            course_id="apple",
            title="Apple trees in winter",
            planned_start=oct_utc(10, 19, 30),
            started_at=oct_utc(10, 19, 31),
            ended_at=oct_utc(10, 20, 0),
            played_seconds=1740,
            media_duration=1800,
            completion=0.97,
            outcome="completed",
            attendance=15,
        ),
        make_record(
            3,
            course_id="pig-1",
            title="生猪养殖技术（一）",
            planned_start=oct_utc(17, 19, 30),
            started_at=oct_utc(17, 19, 30),
            ended_at=oct_utc(17, 20, 10),
            played_seconds=2400,
            media_duration=2400,
            completion=1.0,
            outcome="completed",
        ),
        make_record(
            4,
            course_id="tea-2",
            title="茶叶种植",
            media="missing.wav",
            planned_start=oct_utc(20, 19, 30),
            ended_at=oct_utc(20, 19, 30),
            outcome="skipped",
            reason="media file missing.wav is missing",
        ),
        make_record(
            5,
            course_id="tea-2",
            title="茶叶种植",
            media="missing.wav",
            planned_start=oct_utc(24, 19, 30),
            ended_at=oct_utc(25, 8, 0),
            outcome="missed",
            reason="the terminal was off at the time",
        ),
        make_record(
            6,
            course_id="apple",
            title="Apple trees in winter",
            trigger="admin",
            started_at=oct_utc(28, 15, 0),
            ended_at=oct_utc(28, 15, 5),
            played_seconds=300,
            media_duration=1800,
            completion=0.17,
            outcome="stopped",
            reason="stopped by admin",
        ),
        # This month, around now: one shown an hour ago, one failed two hours ago.
        make_record(
            7,
            course_id="pig-1",
            title="生猪养殖技术（一）",
            planned_start=utc_text(now - 3600),
            started_at=utc_text(now - 3600),
            ended_at=utc_text(now - 1200),
            played_seconds=2400,
            media_duration=2400,
            completion=1.0,
            outcome="completed",
        ),
        make_record(
            8,
            course_id="broken",
            title="Damaged video",
            media="broken.wav",
            planned_start=utc_text(now - 7200),
            ended_at=utc_text(now - 7200),
            outcome="skipped",
            reason="media file broken.wav is damaged or wrong",
        ),
    ]
    with store.transaction() as conn:
        for r in recs:
            store.insert_record(r, conn)
        store.add_event(
            "info",
            "agent_started",
            "Agent started (clock unsynced)",
            {"boot_id": "boot-1", "pid": 999999},
            ts=utc_text(now - 86400 * 2),
            conn=conn,
        )
        store.add_event(
            "warning",
            "missed",
            "茶叶种植 at 2026-10-24 was missed: the terminal was off",
            {"record_id": recs[4].record_id},
            ts=utc_text(now - 86400),
            conn=conn,
        )
        store.add_event(
            "info",
            "record_completed",
            "生猪养殖技术（一）: completed",
            {"record_id": recs[6].record_id},
            ts=utc_text(now - 1200),
            conn=conn,
        )
        store.add_event(
            "error",
            "record_skipped",
            "Damaged video: skipped (damaged)",
            {"record_id": recs[7].record_id},
            ts=utc_text(now - 7200),
            conn=conn,
        )
        alarm = {"name": "link_down", "state": "raised", "severity": "critical"}
        store.add_event(
            "error", "alarm", "link_down raised", alarm, ts=utc_text(now - 3 * 3600), conn=conn
        )
        store.add_event("info", "agent_stopped", "Agent stopped", ts=utc_text(now - 600), conn=conn)
        conn.execute(
            "INSERT INTO alarms(name, severity, raised_at, cleared_at, detail) VALUES(?,?,?,?,?)",
            ("disk_low", "warning", utc_text(now - 5 * 86400), utc_text(now - 4 * 86400), "{}"),
        )
        conn.execute(
            "INSERT INTO alarms(name, severity, raised_at, cleared_at, detail) VALUES(?,?,?,?,?)",
            ("link_down", "critical", utc_text(now - 3 * 3600), None, json.dumps({"targets": {}})),
        )
        for r in (recs[5], recs[6]):
            store.enqueue("record", r.record_id, "record", r.to_dict(), conn=conn)
        conn.execute(
            "UPDATE outbox SET created_at=? WHERE msg_id=?",
            (utc_text(now - 2 * 86400), recs[5].record_id),
        )
    store.close()
    return cfg
