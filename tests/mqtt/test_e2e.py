"""End to end: countyctl pushes a schedule, the real agent (real VLC, dummy outputs) acks and
plays it, the durable collector stores the record and acks it, and the agent's outbox empties."""

from __future__ import annotations

import json
import time

from agent.testing.media import write_wav
from tests.helpers import one_off, schedule
from tests.mqtt.conftest import (
    COUNTY,
    TERMINAL,
    agent_config,
    countyctl,
    db_rows,
    online,
    start_collector,
    wait_rows,
)


def test_push_play_collect_ack(tmp_path, broker, spy, agents):
    cfg = agent_config(tmp_path, broker)
    write_wav(tmp_path / "content" / "lesson.wav", 2)
    coll_db = tmp_path / "county.db"
    collector = start_collector(broker, coll_db, tmp_path / "collector.log")
    agent = agents(cfg).start()
    try:
        online(spy)
        doc = schedule(
            7,
            [one_off("i1", time.time() + 4, "lesson.wav", course_id="PH-01", title="党史 第一讲")],
        )
        (tmp_path / "sched.json").write_text(json.dumps(doc, ensure_ascii=False))
        res = countyctl(
            broker, "push-schedule", str(tmp_path / "sched.json"),
            "--county", COUNTY, "--terminal", TERMINAL, "--wait", "15",
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"{TERMINAL}: applied" in res.stdout
        # the technician's other views: the fleet table and a command round trip
        res = countyctl(broker, "watch", "--county", COUNTY, "--once", "--wait", "3", "--json")
        assert res.returncode == 0, res.stderr
        (row,) = json.loads(res.stdout.strip().splitlines()[-1])
        assert row["terminal"] == TERMINAL and row["online"] is True
        assert row["schedule_versions"] == {"terminal": 7}
        res = countyctl(broker, "cmd", TERMINAL, "ping", "--county", COUNTY, "--wait", "10")
        assert res.returncode == 0 and json.loads(res.stdout)["status"] == "ok", res.stderr

        rows = wait_rows(
            coll_db, "SELECT record_id, course_id, outcome, deliveries FROM records", 1, 25
        )
        assert rows[0][1] == "PH-01" and rows[0][2] == "completed"
        rid = rows[0][0]
        ack = spy.wait(
            lambda s: any(r["record_id"] == rid for r in s.obj["records"]),
            10,
            "record/ack",
            suffix="record/ack",
        )
        # the outbox empties: a heartbeat after the ack reports 0, and the table agrees
        spy.wait(
            lambda s: s.at > ack.at and s.obj["outbox"] == 0, 10, "outbox 0", suffix="heartbeat"
        )
        state_db = tmp_path / "state" / "agent.db"
        assert db_rows(state_db, "SELECT COUNT(*) FROM outbox")[0][0] == 0
        mine = db_rows(state_db, "SELECT record_id, outcome FROM records")
        assert mine == [(rid, "completed")]
        assert agent.stop() == 0
        last = spy.messages("state")[-1].obj
        assert last["state"] == "offline" and last["reason"] == "shutdown"
        # every message the terminal sent matches the protocol
        from agent.domain import protocol as p

        for s in spy.messages():
            kind = p.KIND_BY_SUFFIX.get(s.suffix)
            if kind and s.suffix not in ("cmd", "record/ack") and s.payload:
                assert p.validate(kind, s.obj) == [], (s.topic, s.obj)
        csv_path = tmp_path / "out.csv"
        collector.terminate()
        collector.wait(10)
        res = countyctl(broker, "collect", "--db", str(coll_db), "--export", str(csv_path))
        assert res.returncode == 0, res.stderr
        text = csv_path.read_text(encoding="utf-8")
        assert rid in text and "党史 第一讲" in text
    finally:
        if collector.poll() is None:
            collector.kill()


def test_county_layer_push_reports_silence_and_retained_copy_is_not_reapplied(
    tmp_path, broker, spy, agents
):
    agent = agents(agent_config(tmp_path, broker)).start()
    online(spy)
    weekly = {"days": ["mon"], "time": "19:30"}
    doc = schedule(
        4, [{"id": "w", "weekly": weekly, "course": {"id": "C", "title": "T", "media": "c.wav"}}]
    )
    path = tmp_path / "county.json"
    path.write_text(json.dumps(doc))
    res = countyctl(
        broker, "push-schedule", str(path), "--county", COUNTY,
        "--expect", "t-404", "--wait", "3",
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"{TERMINAL}: applied" in res.stdout  # online, so expected without being named
    assert "t-404: no answer" in res.stdout
    acks = len(spy.messages("schedule/ack"))
    # a restart: the broker hands the retained county schedule over again; it is the applied
    # one, so it is neither applied again nor answered again
    assert agent.stop() == 0
    t0 = time.monotonic()
    agent.start()
    online(spy, after=t0)
    time.sleep(2)
    assert len(spy.messages("schedule/ack")) == acks
    assert "schedule_stale" not in agent.log_text()
    assert agent.log_text().count("schedule_applied") == 1
    # a document that fails the agent's own validation never leaves the county
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(schedule(5, [{"id": "x", "course": {"id": "C"}}])))
    res = countyctl(broker, "push-schedule", str(bad), "--county", COUNTY)
    assert res.returncode == 2 and "not valid" in res.stderr
    assert "items[0]" in res.stderr
