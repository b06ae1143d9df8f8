"""stationctl's read model: every query its screens run, against a real SQLite file."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.adapters.sqlite import attendance, read_model
from agent.adapters.sqlite.store import Store
from tests.helpers import a_record

TZ = ZoneInfo("Asia/Shanghai")


def month(text: str) -> tuple[str, str]:
    from agent.cli.stationctl.summary import month_bounds

    return month_bounds(text, TZ)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state/agent.db")
    yield s
    s.close()


def test_events_filter_by_level_kind_since_and_keep_the_newest_when_limited(
    store: Store,
) -> None:
    store.add_event("info", "a", "one", ts="2026-01-01T00:00:00.000Z")
    store.add_event("warning", "b", "two", ts="2026-01-02T00:00:00.000Z")
    store.add_event("error", "b", "three", ts="2026-01-03T00:00:00.000Z")
    store.add_event("info", "a", "four", ts="2026-01-04T00:00:00.000Z")
    db = store.db
    every = ["info", "warning", "error"]
    assert [r["message"] for r in read_model.events(db, levels=every)] == [
        "one",
        "two",
        "three",
        "four",
    ]
    assert [r["message"] for r in read_model.events(db, levels=["warning", "error"])] == [
        "two",
        "three",
    ]
    assert [r["message"] for r in read_model.events(db, levels=every, kind="b")] == [
        "two",
        "three",
    ]
    since = read_model.events(db, levels=every, since="2026-01-03T00:00:00.000Z")
    assert [r["message"] for r in since] == ["three", "four"]
    assert [r["message"] for r in read_model.events(db, levels=every, limit=2)] == [
        "three",
        "four",
    ]
    last = read_model.last_event_id(db)
    assert read_model.events(db, levels=every, after_id=last) == []
    assert read_model.last_event_id(db) == 4


def test_lifecycle_names_the_latest_start_or_stop_its_pid_and_the_last_event(
    store: Store,
) -> None:
    assert read_model.lifecycle(store.db) == {
        "kind": None,
        "ts": None,
        "pid": None,
        "last_event": None,
    }
    store.add_event("info", "agent_started", "up", {"pid": 42}, ts="2026-01-01T00:00:00.000Z")
    store.add_event("info", "attendance", "x", ts="2026-01-01T01:00:00.000Z")
    life = read_model.lifecycle(store.db)
    assert life == {
        "kind": "agent_started",
        "ts": "2026-01-01T00:00:00.000Z",
        "pid": 42,
        "last_event": "2026-01-01T01:00:00.000Z",
    }
    store.add_event("info", "agent_stopped", "down", ts="2026-01-01T02:00:00.000Z")
    assert read_model.lifecycle(store.db)["kind"] == "agent_stopped"
    assert read_model.lifecycle(store.db)["pid"] is None


def test_records_of_a_local_month_a_course_or_the_newest(store: Store) -> None:
    # 2026-02-01 00:30 in Shanghai is still January in UTC: it belongs to February.
    feb_first = dt.datetime(2026, 2, 1, 0, 30, tzinfo=TZ).timestamp()
    from agent.domain.records import utc_text

    store.insert_record(a_record(1, started_at="2026-01-15T08:00:00.000Z"))
    store.insert_record(a_record(2, course_id="x", planned_start=utc_text(feb_first)))
    store.insert_record(a_record(3, ended_at="2026-02-10T08:00:00.000Z"))
    store.insert_record(a_record(4, started_at="2026-03-01T08:00:00.000Z"))
    db = store.db
    assert [r.seq for r in read_model.records(db, month=month("2026-02"))] == [2, 3]
    assert [r.seq for r in read_model.records(db, month=month("2026-01"))] == [1]
    assert [r.seq for r in read_model.records(db, course_id="x")] == [2]
    assert [r.seq for r in read_model.records(db, limit=2)] == [3, 4]
    assert [r.seq for r in read_model.records(db)] == [1, 2, 3, 4]


def test_month_counts_group_outcomes_and_count_sessions_people_and_forgotten_counts(
    store: Store,
) -> None:
    shown = "2026-02-10T08:00:00.000Z"
    store.insert_record(a_record(1, started_at=shown, outcome="completed", attendance=12))
    store.insert_record(a_record(2, started_at=shown, outcome="completed"))
    store.insert_record(a_record(3, planned_start=shown, outcome="missed", reason="off"))
    store.insert_record(a_record(4, started_at=shown, outcome="stopped", completion=0.6))
    rows = sorted(read_model.month_counts(store.db, month("2026-02")), key=str)
    assert rows == sorted(
        [
            ("completed", None, "c", 2, 1, 12, 1),
            ("missed", "off", "c", 1, 0, 0, 0),
            ("stopped", None, "c", 1, None, 0, 1),  # SUM of NULLs: the summary reads it as 0
        ],
        key=str,
    )
    assert read_model.month_counts(store.db, month("2026-02"), "other") == []


def test_alarms_unsent_records_last_failure_and_check(store: Store) -> None:
    store.db.execute(
        "INSERT INTO alarms(name, severity, raised_at, cleared_at) VALUES"
        " ('a', 'warning', '2026-01-02T00:00:00.000Z', NULL),"
        " ('b', 'critical', '2026-01-01T00:00:00.000Z', NULL),"
        " ('c', 'info', '2026-01-01T00:00:00.000Z', '2026-01-03T00:00:00.000Z')"
    )
    active, recent = read_model.alarms(store.db)
    assert [a["name"] for a in active] == ["b", "a"]
    assert [a["name"] for a in recent] == ["c", "b", "a"]
    assert set(active[0]) == {"name", "severity", "raised_at", "cleared_at"}

    assert read_model.unsent_records(store.db) == {"count": 0, "oldest": None}
    store.enqueue("record", "r-1", "record", {})
    store.enqueue("event", "e-1", "event", {})
    unsent = read_model.unsent_records(store.db)
    assert unsent["count"] == 1 and unsent["oldest"] is not None

    assert read_model.last_failure(store.db) is None
    store.insert_record(
        a_record(1, outcome="skipped", reason="missing", ended_at="2026-01-05T00:00:00.000Z")
    )
    store.insert_record(a_record(2, outcome="completed", started_at="2026-01-06T00:00:00.000Z"))
    failure = read_model.last_failure(store.db)
    assert failure is not None
    assert (failure["seq"], failure["outcome"], failure["at"]) == (
        1,
        "skipped",
        "2026-01-05T00:00:00.000Z",
    )
    assert read_model.check(store.db) == ("ok", 2)


def test_open_readonly_reads_a_stopped_agents_store_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    writer = Store(path)
    writer.insert_record(a_record(1))
    writer.close()
    reader = read_model.open_readonly(path)
    try:
        assert read_model.check(reader.db) == ("ok", 1)
        with pytest.raises(Exception):  # noqa: B017 - read-only: any write is refused
            reader.db.execute("DELETE FROM records")
    finally:
        reader.close()


def test_attendance_lookups_by_latest_seq_id_and_prefix(store: Store) -> None:
    store.insert_record(a_record(1, record_id="abcd-1111", started_at="2026-01-01T00:00:00.000Z"))
    store.insert_record(a_record(2, record_id="abcd-2222", started_at="2026-01-02T00:00:00.000Z"))
    store.insert_record(a_record(3, record_id="ffff-3333"))
    db = store.db
    latest = attendance.latest_shown(db)
    assert latest is not None and latest.seq == 2
    assert attendance.by_seq(db, 3) is not None and attendance.by_seq(db, 9) is None
    assert attendance.by_id(db, "ffff-3333") is not None
    assert [r.seq for r in attendance.by_prefix(db, "ABCD")] == [1, 2]
    assert [r.seq for r in attendance.by_prefix(db, "ffff")] == [3]
    with store.transaction() as conn:
        attendance.set_attendance(conn, "abcd-1111", 7, 2)
    rec = attendance.by_id(db, "abcd-1111")
    assert rec is not None and (rec.attendance, rec.rev) == (7, 2)
    assert json.loads(json.dumps(rec.to_dict()))["attendance"] == 7
