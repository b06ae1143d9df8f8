"""Alarm and summary persistence in a real SQLite file through agent.adapters.sqlite.store.Store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.adapters.sqlite.alarms import (
    active_alarms,
    alarm_msg_id,
    parse_utc,
    persist_alarm_change,
    persist_link_summary,
)
from agent.adapters.sqlite.store import Store
from agent.domain.health import AlarmChange
from agent.domain.records import utc_text

T0 = 1_800_000_000.25


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "state/agent.db")
    yield s
    s.close()


def rows(store: Store, sql: str) -> list[dict]:
    return [dict(r) for r in store.db.execute(sql)]


def test_raise_then_clear_writes_alarm_row_events_and_outbox(store: Store) -> None:
    raised = AlarmChange(
        "link_down", "raised", T0, "critical", {"targets": {"broker:8883": "timeout"}}
    )
    persist_alarm_change(store, raised, "t-001", "c-42", clock_state="unsynced")
    (alarm,) = rows(store, "SELECT * FROM alarms")
    assert alarm["name"] == "link_down" and alarm["severity"] == "critical"
    assert alarm["raised_at"] == utc_text(T0) and alarm["cleared_at"] is None
    assert json.loads(alarm["detail"]) == {"targets": {"broker:8883": "timeout"}}
    (msg,) = rows(store, "SELECT * FROM outbox")
    assert (msg["kind"], msg["topic"], msg["qos"]) == ("event", "event", 1)
    payload = json.loads(msg["payload"])
    assert payload["ts"] == "2027-01-15T08:00:00.250Z"
    assert (
        payload["name"] == "link_down"
        and payload["state"] == "raised"
        and payload["clock"] == "unsynced"
    )
    assert (
        payload["terminal"] == "t-001"
        and payload["county"] == "c-42"
        and payload["raised_at"] == payload["ts"]
    )

    cleared = AlarmChange("link_down", "cleared", T0 + 600, "critical", {}, raised_at=T0)
    persist_alarm_change(
        store, cleared.to_dict(), "t-001", "c-42"
    )  # the dict form the monitor emits
    (alarm,) = rows(store, "SELECT * FROM alarms")
    assert alarm["cleared_at"] == utc_text(T0 + 600)
    outbox = rows(store, "SELECT * FROM outbox ORDER BY id")
    end = json.loads(outbox[1]["payload"])
    assert (
        end["state"] == "cleared"
        and end["raised_at"] == utc_text(T0)
        and end["cleared_at"] == utc_text(T0 + 600)
    )
    events = rows(store, "SELECT * FROM events ORDER BY id")
    assert [(e["kind"], e["message"], e["level"]) for e in events] == [
        ("alarm", "link_down raised", "error"),
        ("alarm", "link_down cleared", "info"),
    ]
    assert active_alarms(store) == {}


def test_one_row_per_raise_and_a_second_episode_gets_a_new_row(store: Store) -> None:
    for k in range(2):
        base = T0 + k * 1000
        persist_alarm_change(store, AlarmChange("disk_low", "raised", base, "warning"), "t", "c")
        persist_alarm_change(
            store,
            AlarmChange("disk_low", "cleared", base + 10, "warning", raised_at=base),
            "t",
            "c",
        )
    alarms = rows(store, "SELECT raised_at, cleared_at FROM alarms ORDER BY id")
    assert alarms == [
        {"raised_at": utc_text(T0), "cleared_at": utc_text(T0 + 10)},
        {"raised_at": utc_text(T0 + 1000), "cleared_at": utc_text(T0 + 1010)},
    ]


def test_duplicate_raise_after_restart_keeps_the_original_row(store: Store) -> None:
    persist_alarm_change(
        store, AlarmChange("overheat", "raised", T0, "warning", {"max_c": 83.0}), "t", "c"
    )
    persist_alarm_change(
        store, AlarmChange("overheat", "raised", T0 + 300, "warning", {"max_c": 84.0}), "t", "c"
    )
    (alarm,) = rows(store, "SELECT * FROM alarms")
    assert alarm["raised_at"] == utc_text(T0)
    # a clear without raised_at takes the start time from the open row
    persist_alarm_change(store, AlarmChange("overheat", "cleared", T0 + 900, "warning"), "t", "c")
    last = json.loads(
        rows(store, "SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")[0]["payload"]
    )
    assert last["raised_at"] == utc_text(T0)


def test_active_alarms_round_trip_for_restore(store: Store) -> None:
    persist_alarm_change(store, AlarmChange("tv_off", "raised", T0, "info"), "t", "c")
    persist_alarm_change(
        store, AlarmChange("clock_unsynced", "raised", T0 + 5, "warning"), "t", "c"
    )
    assert active_alarms(store) == {
        "tv_off": pytest.approx(T0),
        "clock_unsynced": pytest.approx(T0 + 5),
    }
    assert parse_utc(utc_text(T0)) == pytest.approx(T0)


def test_msg_ids_are_stable_and_distinct() -> None:
    a = AlarmChange("link_down", "raised", T0, "critical")
    assert alarm_msg_id("t", a) == alarm_msg_id(
        "t", AlarmChange("link_down", "raised", T0, "critical", {"x": 1})
    )
    assert alarm_msg_id("t", a) != alarm_msg_id(
        "t", AlarmChange("link_down", "cleared", T0, "critical")
    )
    assert alarm_msg_id("t", a) != alarm_msg_id("u", a)


def test_all_or_nothing(store: Store) -> None:
    """If the outbox write fails, neither the alarm row nor the event may stay behind."""
    bad = AlarmChange("link_down", "raised", T0, "critical", {"oops": {1, 2}})  # a set is not JSON
    with pytest.raises(TypeError):
        persist_alarm_change(store, bad, "t", "c")
    assert rows(store, "SELECT * FROM alarms") == []
    assert rows(store, "SELECT * FROM events") == []
    assert rows(store, "SELECT * FROM outbox") == []


def test_link_summary_is_stored_and_queued(store: Store, tmp_path: Path) -> None:
    summary = {
        "mode": "satellite",
        "period_start": T0,
        "period_end": T0 + 3600,
        "cycles": 60,
        "lock_fraction": 0.97,
    }
    persist_link_summary(store, summary, "t-001", "c-42")
    persist_link_summary(store, summary, "t-001", "c-42")  # a retry after a crash: same msg_id
    outbox = rows(store, "SELECT * FROM outbox ORDER BY id")
    assert [m["kind"] for m in outbox] == ["link_summary", "link_summary"]
    assert outbox[0]["topic"] == "link/summary" and outbox[0]["msg_id"] == outbox[1]["msg_id"]
    payload = json.loads(outbox[0]["payload"])
    assert payload["period_start"] == utc_text(T0) and payload["ts"] == utc_text(T0 + 3600)
    assert payload["lock_fraction"] == 0.97 and payload["terminal"] == "t-001"
    (event, _) = rows(store, "SELECT * FROM events")
    assert event["kind"] == "link_summary" and json.loads(event["data"])["cycles"] == 60
    # durable: a second handle on the same file sees everything
    other = Store(tmp_path / "state/agent.db", readonly=True)
    try:
        assert other.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 2
        assert other.integrity_check() == "ok"
    finally:
        other.close()
