"""Store-and-forward: records survive a broker outage, a killed agent and a killed collector;
none is lost and none is stored twice by the collector."""

from __future__ import annotations

import json
import signal
import time

import pytest

from agent.cli.county.broker import PrivateBroker
from agent.cli.county.client import CountyClient
from agent.domain import topics as t
from agent.testing.media import write_wav
from tests.helpers import one_off, schedule
from tests.mqtt.conftest import (
    COUNTY,
    TERMINAL,
    agent_config,
    county_cfg,
    db_rows,
    enqueue_records,
    online,
    outbox_count,
    start_collector,
    wait_until,
)

RECORDS_SQL = "SELECT record_id, deliveries FROM records"


def collected(db) -> dict[str, int]:
    return dict(db_rows(db, RECORDS_SQL))


@pytest.mark.mosquitto_only("a persistent Mosquitto of its own")
def test_broker_down_30s_while_courses_finish(tmp_path, agents):
    broker = PrivateBroker(tmp_path / "broker", persistence=True).start()
    coll_db = tmp_path / "county.db"
    collector = start_collector(broker, coll_db, tmp_path / "collector.log")
    try:
        cfg = agent_config(tmp_path, broker)
        for i in range(3):
            write_wav(tmp_path / "content" / f"c{i}.wav", 2)
        agent = agents(cfg).start()
        cc = CountyClient(county_cfg(broker), "pusher")
        cc.connect()
        cc.subscribe([t.topic(COUNTY, TERMINAL, t.STATE)])
        wait_until(lambda: _online(cc), 15, "agent online")
        now = time.time()
        doc = schedule(3, [one_off(f"i{i}", now + 5 + 6 * i, f"c{i}.wav") for i in range(3)])
        cc.publish(t.topic(COUNTY, TERMINAL, t.SCHEDULE), json.dumps(doc).encode(), retain=True)
        cc.close()
        wait_until(lambda: (tmp_path / "state/schedule/terminal.json").exists(), 10, "applied")

        broker.stop()  # the county broker goes away for 30 s
        down_at = time.monotonic()
        synthetic = enqueue_records(tmp_path / "state", 100, start_seq=1000)
        wait_until(
            lambda: len(db_rows(tmp_path / "state/agent.db", "SELECT 1 FROM records WHERE "
                               "outcome='completed' AND media LIKE 'c%'")) == 3,
            30, "three courses finished while the broker was down",
        )  # fmt: skip
        assert outbox_count(tmp_path / "state") == 103  # all queued, nothing dropped
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        broker.start()

        wait_until(lambda: len(collected(coll_db)) >= 103, 30, "all records at the collector")
        wait_until(lambda: outbox_count(tmp_path / "state") == 0, 20, "the outbox to empty")
        got = collected(coll_db)
        assert len(got) == 103
        assert set(synthetic) <= set(got)
        mine = db_rows(tmp_path / "state/agent.db", "SELECT record_id FROM records")
        assert {r[0] for r in mine} == set(got)
        total = db_rows(coll_db, "SELECT COUNT(*), COUNT(DISTINCT record_id) FROM records")[0]
        assert total[0] == total[1] == 103
        assert agent.stop() == 0
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(10)
        broker.stop()


def _online(cc: CountyClient) -> bool:
    while not cc.messages.empty():
        msg = cc.messages.get()
        if json.loads(msg.payload).get("state") == "online":
            return True
    return False


def test_sigkill_agent_with_records_unsent_then_restart(tmp_path, broker, spy, agents):
    state = tmp_path / "state"
    cfg = agent_config(tmp_path, broker)
    ids = enqueue_records(state, 200)
    agent = agents(cfg).start()
    online(spy)
    # published (the spy sees them) but no collector: nothing confirms them
    wait_until(lambda: len(spy.messages("record")) >= 200, 15, "records published")
    agent.kill(signal.SIGKILL)
    agent.proc.wait(5)
    assert outbox_count(state) == 200

    coll_db = tmp_path / "county.db"
    collector = start_collector(broker, coll_db, tmp_path / "collector.log")
    try:
        wait_until(lambda: coll_db.exists(), 10, "collector up")
        time.sleep(0.5)
        agents(cfg, "agent2").start()
        wait_until(lambda: len(collected(coll_db)) >= 200, 20, "records at the collector")
        wait_until(lambda: outbox_count(state) == 0, 15, "the outbox to empty")
        assert set(collected(coll_db)) == set(ids)
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(10)


def test_sigkill_collector_loses_nothing(tmp_path, broker, agents):
    state = tmp_path / "state"
    coll_db = tmp_path / "county.db"
    log = tmp_path / "collector.log"
    collector = start_collector(broker, coll_db, log)
    agents(agent_config(tmp_path, broker)).start()
    try:
        wait_until(lambda: coll_db.exists(), 10, "collector up")
        first = enqueue_records(state, 400, start_seq=1)
        wait_until(lambda: len(collected(coll_db)) >= 20, 15, "collector storing")
        collector.send_signal(signal.SIGKILL)  # in the middle of the stream
        collector.wait(5)
        second = enqueue_records(state, 300, start_seq=401)
        time.sleep(1.0)  # published while no collector runs: the broker queues them
        collector = start_collector(broker, coll_db, log)
        wait_until(lambda: len(collected(coll_db)) >= 700, 30, "all 700 records collected")
        wait_until(lambda: outbox_count(state) == 0, 20, "the outbox to empty")
        got = collected(coll_db)
        assert set(got) == set(first) | set(second)
        total = db_rows(coll_db, "SELECT COUNT(*), COUNT(DISTINCT record_id) FROM records")[0]
        assert total[0] == total[1] == 700
        assert db_rows(coll_db, "PRAGMA integrity_check")[0][0] == "ok"
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(10)
