"""Hostile and broken input over MQTT: stale, replayed, malformed, oversized and wrong-terminal
schedules and commands are answered with a reason; the running schedule stays untouched; an
executed command id is never run twice, not even after a restart."""

from __future__ import annotations

import json
import time

from agent.cli.county.client import CountyClient
from agent.cli.county.cmd import send_command
from agent.domain import topics as t
from agent.testing.media import write_wav
from tests.helpers import one_off, schedule
from tests.mqtt.conftest import (
    COUNTY,
    TERMINAL,
    agent_config,
    county_cfg,
    db_rows,
    online,
)

SCHED = t.topic(COUNTY, TERMINAL, t.SCHEDULE)


def ack_for(spy, after: float, what: str):
    return spy.wait(lambda s: s.at > after, 10, what, suffix="schedule/ack").obj


def push(cc: CountyClient, spy, payload: bytes, what: str, topic: str = SCHED) -> dict:
    before = time.monotonic()
    cc.publish(topic, payload, retain=False)
    return ack_for(spy, before, what)


def weekly_doc(version: int, **extra) -> dict:
    item = {
        "id": "w1",
        "weekly": {"days": ["mon"], "time": "19:30"},
        "course": {"id": "PH-01", "title": "党史", "media": "lesson.wav"},
    }
    return schedule(version, [item], **extra)


def test_bad_schedules_are_answered_and_change_nothing(tmp_path, broker, spy, agents):
    write_wav(tmp_path / "content" / "lesson.wav", 1)
    agents(agent_config(tmp_path, broker)).start()
    online(spy)
    cc = CountyClient(county_cfg(broker), "hostile-pusher")
    cc.connect()
    applied_file = tmp_path / "state" / "schedule" / "terminal.json"
    try:
        good = json.dumps(weekly_doc(10)).encode()
        a = push(cc, spy, good, "good ack")
        assert (a["status"], a["version"], a["layer"]) == ("applied", 10, "terminal")
        kept = applied_file.read_bytes()

        cases = {
            "stale": json.dumps(weekly_doc(9)).encode(),
            "replayed": good,
            "malformed": b'{"version": 11, "items": [',
            "nan": b'{"version": 12, "items": [], "x": NaN}',
            "duplicate key": b'{"version": 13, "version": 14, "items": []}',
            "oversized": json.dumps(
                {**weekly_doc(15), "description": "x" * (1024 * 1024 + 10)}
            ).encode(),
            "wrong terminal": json.dumps(weekly_doc(16, terminal="t-999")).encode(),
            "wrong layer": json.dumps(weekly_doc(17, layer="county")).encode(),
            "bad item": json.dumps(
                schedule(18, [one_off("x", time.time() + 60, "../../etc/passwd")])
            ).encode(),
            "not an object": b"[1, 2, 3]",
        }
        for name, payload in cases.items():
            ack = push(cc, spy, payload, f"{name} ack")
            want = "stale" if name in ("stale", "replayed") else "rejected"
            assert ack["status"] == want, (name, ack)
            assert ack["reasons"], (name, ack)
            assert ack["applied"]["terminal"] == 10, (name, ack)
            assert applied_file.read_bytes() == kept, name

        # the county layer: a document for another county is refused too
        other = json.dumps({**weekly_doc(5), "county": "c-99"}).encode()
        ack = push(cc, spy, other, "county ack", topic=t.county_schedule(COUNTY))
        assert (ack["layer"], ack["status"]) == ("county", "rejected")
        assert not (tmp_path / "state" / "schedule" / "county.json").exists()
    finally:
        cc.close()
    assert json.loads(applied_file.read_text())["version"] == 10


def test_commands_good_bad_and_replayed(tmp_path, broker, spy, agents):
    write_wav(tmp_path / "content" / "lesson.wav", 30)
    cfg = agent_config(tmp_path, broker)
    from tests.helpers import apply_schedule

    apply_schedule(tmp_path / "state", weekly_doc(3))
    agent = agents(cfg).start()
    online(spy)
    m = county_cfg(broker)

    def cmd(name: str, **kw):
        reply = send_command(m, county=COUNTY, terminal=TERMINAL, cmd=name, wait=10, **kw)
        assert reply is not None, name
        return reply

    r = cmd("ping", cmd_id="c-ping-1")
    assert (r["status"], r["id"]) == ("ok", "c-ping-1") and "uptime_s" in r["data"]
    r = cmd("status")
    assert r["status"] == "ok" and r["data"]["status"]["terminal"] == TERMINAL
    r = cmd("reload")
    assert r["status"] == "ok" and r["data"]["schedule_versions"] == {"terminal": 3}

    r = cmd("play", args={"course_id": "PH-01"}, cmd_id="c-play-1")
    assert r["status"] == "ok", r
    spy.wait(lambda s: s.obj["playing"] is not None, 10, "playing", suffix="heartbeat")
    r = cmd("stop")
    assert r["status"] == "ok" and r["data"]["stopped"]
    # the same id again: not run again, the first reply comes back
    r = cmd("play", args={"course_id": "PH-01"}, cmd_id="c-play-1")
    assert r["status"] == "duplicate" and r["data"]["original"]["status"] == "ok"

    errors = {
        "unknown_command": dict(cmd_id="c-x1", args={}),
        "bad_args": dict(args={"course_id": "PH-01", "priority": "high"}),
        "unknown_course": dict(args={"course_id": "NOPE"}),
    }
    for code, kw in errors.items():
        name = "format-disk" if code == "unknown_command" else "play"
        r = cmd(name, **kw)
        assert (r["status"], r.get("error")) == ("error", code), r

    raw = {
        "malformed": b'{"id": "c-raw1", "cmd": ',
        "malformed ": b'{"cmd": "ping"}',  # no id
        "too_large": json.dumps({"id": "c-big", "cmd": "ping", "pad": "x" * 70000}).encode(),
        "wrong_terminal": json.dumps({"id": "c-wt", "cmd": "stop", "terminal": "t-9"}).encode(),
    }
    for code, payload in raw.items():
        r = cmd("ping", raw=payload)
        assert (r["status"], r.get("error")) == ("error", code.strip()), (code, r)

    plays = db_rows(
        tmp_path / "state/agent.db", "SELECT COUNT(*) FROM records WHERE trigger='remote'"
    )
    assert plays[0][0] == 1  # played once, although asked twice
    # ids are kept on disk: after a restart the replay is still refused
    assert agent.stop() == 0
    t0 = time.monotonic()
    agent.start()
    online(spy, after=t0)
    r = cmd("play", args={"course_id": "PH-01"}, cmd_id="c-play-1")
    assert r["status"] == "duplicate"
    assert agent.stop() == 0
