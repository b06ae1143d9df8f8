"""A stored schedule that can no longer be read is taken again from the county's retained copy:
after a restart, and while running (the link subscribes to that layer again); the alarm is raised
and cleared, and an older version is still refused."""

from __future__ import annotations

import json
import time

from agent.adapters.schedule_files import ScheduleStore
from agent.cli.county.client import CountyClient
from agent.domain import topics as t
from agent.domain.schedule import ScheduleRejected
from tests.helpers import schedule
from tests.mqtt.conftest import (
    COUNTY,
    TERMINAL,
    agent_config,
    county_cfg,
    db_rows,
    online,
    wait_until,
)

SCHED = t.topic(COUNTY, TERMINAL, t.SCHEDULE)
ALARM = "schedule_unreadable_terminal"


def weekly(version: int) -> bytes:
    item = {
        "id": "w1",
        "weekly": {"days": ["mon"], "time": "19:30"},
        "course": {"id": "PH-01", "title": "党史", "media": "lesson.wav"},
    }
    return json.dumps(schedule(version, [item])).encode()


def stored_version(state) -> int | None:
    try:
        doc = ScheduleStore(state).load("terminal")
    except ScheduleRejected:
        return None
    return doc.version if doc else None


def alarm_rows(state) -> list[tuple]:
    return db_rows(
        state / "agent.db", "SELECT raised_at, cleared_at FROM alarms WHERE name=?", (ALARM,)
    )


def alarm_events(spy) -> list[str]:
    return [s.obj["state"] for s in spy.messages("event") if s.obj.get("name") == ALARM]


def test_retained_layer_is_applied_again_after_restart_and_while_running(
    tmp_path, broker, spy, agents
):
    state = tmp_path / "state"
    agent = agents(agent_config(tmp_path, broker)).start()
    online(spy)
    cc = CountyClient(county_cfg(broker), "county")
    cc.connect()
    try:
        t0 = time.monotonic()
        cc.publish(SCHED, weekly(5), retain=True)
        spy.wait(lambda s: s.obj["status"] == "applied", 10, "applied v5", suffix="schedule/ack")
        assert agent.stop() == 0

        damaged = b'{"version": 5, "items": [\x00'
        (state / "schedule" / "terminal.json").write_bytes(damaged)
        t0 = time.monotonic()
        agent.start()
        online(spy, after=t0)
        wait_until(lambda: stored_version(state) == 5, 10, "the retained copy applied again")
        wait_until(lambda: alarm_events(spy) == ["raised", "cleared"], 10, "alarm raised, cleared")
        assert (state / "schedule" / "terminal.json.unreadable").read_bytes() == damaged

        # damaged while the agent runs: it notices, asks for the layer again, gets it back
        (state / "schedule" / "terminal.json").write_bytes(damaged)
        wait_until(lambda: stored_version(state) == 5, 10, "the layer asked for again")
        wait_until(
            lambda: alarm_events(spy) == ["raised", "cleared"] * 2, 10, "second alarm cleared"
        )
        rows = alarm_rows(state)
        assert len(rows) == 2 and all(cleared for _, cleared in rows), rows

        # the floor still holds: an older version is refused
        t0 = time.monotonic()
        cc.publish(SCHED, weekly(4))
        ack = spy.wait(lambda s: s.at > t0, 10, "ack for v4", suffix="schedule/ack").obj
        assert (ack["status"], ack["version"]) == ("stale", 4), ack
    finally:
        cc.close()
    assert stored_version(state) == 5
