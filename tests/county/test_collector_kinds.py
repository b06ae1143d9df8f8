"""The collector through a real broker: every kind of message it keeps, and what it refuses."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agent.adapters.mqtt.config import MqttConfig
from agent.cli.county.broker import PrivateBroker
from agent.cli.county.client import CountyClient
from agent.cli.county.collector import Collector
from agent.cli.county.storage import open_storage
from agent.domain import protocol as p
from agent.domain import topics as t
from tests.county.conftest import COUNTY, event, heartbeat, link_summary, record, state


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_the_collector_keeps_every_kind(tmp_path: Path, broker: PrivateBroker, db_url: str):
    cfg = MqttConfig(host=broker.host, port=broker.port, keepalive=10)
    collector = Collector(cfg, db_url, county=COUNTY, retry_max=1)
    stop = threading.Event()
    th = threading.Thread(target=collector.run, args=(stop,), daemon=True)
    th.start()
    term = CountyClient(cfg, "t-001")
    try:
        assert collector.ready.wait(15)
        term.connect()
        term.subscribe([t.topic(COUNTY, "t-001", t.RECORD_ACK)])
        rec = record("t-001", 1, start="2026-10-03 19:30", attendance=9)
        status = {
            "ts": "2026-10-03T10:00:00.000Z",
            "terminal": "t-001",
            "county": COUNTY,
            "session": 2,
            "version": "0.1.0",
            "uptime_s": 3.0,
            "clock": "synced",
            "playing": None,
            "schedule_versions": {},
            "outbox": 0,
            "records_unsent": 0,
            "open_records": 0,
            "upcoming": [],
            "started_at": "2026-10-03T09:59:00.000Z",
            "boot_id": "b",
            "timezone": "Asia/Shanghai",
            "mqtt": {},
            "v": 1,
            "content": {"readiness": {"needed": 1, "ready": 0}, "files": [], "files_total": 1},
        }
        sends = [
            (t.STATE, state("t-001", "online", 2), 1),
            (t.HEARTBEAT, heartbeat("t-001", 1), 0),
            (t.LINK_SUMMARY, link_summary("t-001", "2026-10-03 10:00"), 1),
            (t.STATUS, status, 1),
            (t.EVENT, event("t-001", "disk_low", "raised", "2026-10-03 10:00"), 1),
            (t.RECORD, rec, 1),
        ]
        for suffix, obj, qos in sends:
            term.publish(t.topic(COUNTY, "t-001", suffix), p.dumps(obj), qos=qos, wait=5)
        term.publish(t.topic(COUNTY, "t-001", t.HEARTBEAT), b'{"seq": "x"}', qos=1, wait=5)
        term.publish(t.topic(COUNTY, "t-001", t.STATE), b"", qos=1, retain=True, wait=5)
        ack = term.messages.get(timeout=15)
        assert p.decode(ack.payload, p.MAX_ACK_BYTES)["records"] == [
            {"record_id": rec["record_id"], "rev": 1}
        ]
        st = open_storage(db_url)
        try:
            tables = ["records", "events", "link_summaries", "state_changes", "heartbeat_hours",
                      "content", "rejected"]  # fmt: skip

            def counts() -> dict[str, int]:
                return {x: st.rows(f"SELECT COUNT(*) AS n FROM {x}")[0]["n"] for x in tables}

            wait_for(lambda: all(counts().values()), 15, f"a row in each table: {counts()}")
            assert counts() == dict.fromkeys(tables, 1)  # the empty retained state is no message
            (why,) = st.rows("SELECT reason FROM rejected")
            assert "heartbeat" in why["reason"]
            assert st.rows("SELECT readiness FROM content")[0]["readiness"] == (
                '{"needed": 1, "ready": 0}'
            )
        finally:
            st.close()
    finally:
        term.close()
        stop.set()
        th.join(10)
