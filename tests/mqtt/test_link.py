"""The link alone (an in-memory stand-in for the agent, a real broker): protocol versions,
confirmation modes, refusals, reconnects with our own back-off, duplicate client ids."""

from __future__ import annotations

import json
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.link import MqttLink
from agent.cli.county.broker import PrivateBroker
from agent.cli.county.collector import Collector
from agent.testing.bridge import MemoryBridge
from tests.mqtt.conftest import COUNTY, TERMINAL, county_cfg, wait_until


def make_link(
    broker: PrivateBroker, terminal: str = TERMINAL, **kw
) -> tuple[MqttLink, MemoryBridge]:
    opts = dict(
        keepalive=4,
        heartbeat_seconds=1,
        backoff_min_seconds=0.2,
        backoff_max_seconds=1.0,
        stable_after_seconds=1,
        ack_timeout_seconds=2,
    )
    opts.update(kw)
    m = MqttConfig(host=broker.host, port=broker.port, **opts)
    bridge = MemoryBridge(terminal, COUNTY)
    link = MqttLink(SimpleNamespace(mqtt=m, terminal=terminal, county=COUNTY), bridge=bridge)
    link.start()
    return link, bridge


def record(seq: int, rev: int = 1, rid: str | None = None) -> dict:
    return {
        "record_id": rid or str(uuid.uuid4()),
        "rev": rev,
        "seq": seq,
        "terminal": TERMINAL,
        "county": COUNTY,
        "course_id": f"C{seq}",
        "title": "t",
        "media": "m.wav",
        "trigger": "schedule",
        "outcome": "completed",
        "reason": None,
        "clock_state": "unsynced",
        "boot_id": "b",
        "planned_start": None,
        "started_at": None,
        "ended_at": None,
        "played_seconds": 1.0,
        "media_duration": None,
        "completion": 1.0,
        "schedule_layer": None,
        "schedule_version": None,
        "item_id": None,
        "ts": "2026-11-28T11:30:00.000Z",
    }


def start_collector(broker, tmp_path, **kw) -> tuple[Collector, threading.Event, threading.Thread]:
    c = Collector(county_cfg(broker, **kw), tmp_path / "county.db", county=COUNTY, retry_max=1)
    stop = threading.Event()
    th = threading.Thread(target=c.run, args=(stop,), daemon=True)
    th.start()
    assert c.ready.wait(10)
    return c, stop, th


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_records_confirmed_by_collector_ack(tmp_path, broker, protocol):
    coll, stop, th = start_collector(broker, tmp_path, protocol=protocol)
    link, bridge = make_link(broker, protocol=protocol)
    try:
        r1 = record(1)
        bridge.enqueue("record", r1["record_id"], "record", r1)
        for i in range(2, 51):
            rec = record(i)
            bridge.enqueue("record", rec["record_id"], "record", rec)
        bridge.enqueue("event", "ev-1", "event", {"ts": "2026-11-28T11:30:00.000Z"})
        wait_until(lambda: bridge.depth() == 0, 10, "outbox empty")
        assert coll.stored == 50
        # attendance added later: the same record with rev 2 replaces the stored one
        bridge.enqueue(
            "record", r1["record_id"], "record", {**record(1, 2, r1["record_id"]), "attendance": 12}
        )
        wait_until(lambda: bridge.depth() == 0, 10, "rev 2 confirmed")
        db = coll.db.db
        wait_until(
            lambda: db.execute("SELECT rev, attendance FROM records WHERE record_id=?",
                               (r1["record_id"],)).fetchone() == (2, 12),
            5, "rev 2 stored",
        )  # fmt: skip
        assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 50
    finally:
        link.stop()
        stop.set()
        th.join(5)


def test_puback_mode_needs_no_collector(broker):
    link, bridge = make_link(broker, record_confirmation="puback")
    try:
        for i in range(20):
            rec = record(i + 1)
            bridge.enqueue("record", rec["record_id"], "record", rec)
        wait_until(lambda: bridge.depth() == 0, 10, "confirmed by PUBACK")
    finally:
        link.stop()


def test_ack_mode_keeps_records_without_collector_and_resends(broker):
    link, bridge = make_link(broker, ack_timeout_seconds=1)
    try:
        rec = record(1)
        bridge.enqueue("record", rec["record_id"], "record", rec)
        wait_until(lambda: link.policy.counters.retried >= 1, 6, "a resend after the ack timeout")
        assert bridge.depth() == 1
    finally:
        link.stop()


@pytest.mark.mosquitto_only("a Mosquitto ACL file")
def test_refused_publish_stays_in_the_outbox(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text(
        f"pattern readwrite rde/v1/{COUNTY}/%c/#\npattern deny rde/v1/{COUNTY}/%c/event\n"
    )
    broker = PrivateBroker(tmp_path / "broker", acl_file=acl).start()
    link, bridge = make_link(broker, ack_timeout_seconds=1)
    try:
        bridge.enqueue("event", "ev-1", "event", {"ts": "2026-11-28T11:30:00.000Z"})
        wait_until(lambda: link.policy.counters.refused >= 1, 10, "MQTT 5 refusal (0x87)")
        time.sleep(1.5)
        assert bridge.depth() == 1  # not dropped; tried again later
        assert link.policy.counters.refused >= 2
    finally:
        link.stop()
        broker.stop()


@pytest.mark.mosquitto_only("a Mosquitto of its own; test_brokers covers every broker")
def test_reconnects_after_broker_restart_with_own_backoff(tmp_path):
    broker = PrivateBroker(tmp_path / "broker").start()
    states: list[tuple[float, str]] = []
    link, bridge = make_link(broker, backoff_min_seconds=0.5, backoff_max_seconds=2)
    link.on_state = lambda s: states.append((time.monotonic(), s))
    try:
        wait_until(lambda: link.state == "connected", 5, "connected")
        first_session = link.session
        broker.stop()
        wait_until(lambda: link.state == "waiting", 10, "link lost")
        for i in range(5):
            rec = record(i + 1)
            bridge.enqueue("record", rec["record_id"], "record", rec)
        time.sleep(3)
        attempts = link.connects
        broker.start()
        wait_until(lambda: link.state == "connected", 10, "reconnected")
        assert link.session > first_session and link.reconnects == 1
        # attempts while the broker was away were spaced by the back-off, not a tight loop
        assert attempts <= 10
        # still unconfirmed (no collector) but republished on the new connection
        wait_until(lambda: link.policy.counters.published >= 5, 5, "republished")
    finally:
        link.stop()
        broker.stop()


def test_duplicate_client_id_backs_off(broker):
    a, _ = make_link(broker, stable_after_seconds=30, backoff_max_seconds=4)
    b, _ = make_link(broker, stable_after_seconds=30, backoff_max_seconds=4)
    try:
        time.sleep(8)
        # Two clients with one id knock each other off. paho's own reconnect makes that a tight
        # loop (81 reconnects in 150 s here); ours keeps backing off, because a connection that
        # lasts less than stable_after_seconds does not reset the back-off.
        assert a.reconnects + b.reconnects >= 2
        assert max(a.backoff.last_window, b.backoff.last_window) >= 4
        assert a.connects + b.connects <= 16
        # The hint needs three short-lived connections in a row on one link; how the broker
        # splits the knock-offs between the two links varies (NATS closes some before CONNACK).
        wait_until(
            lambda: "client id" in (a.hint or "") + (b.hint or ""), 20, "the duplicate-id hint"
        )
    finally:
        a.stop()
        b.stop()


def test_offline_state_on_clean_stop(broker):
    from tests.mqtt.conftest import Spy

    spy = Spy(broker)
    link, _ = make_link(broker)
    try:
        wait_until(lambda: link.state == "connected", 5, "connected")
        link.stop()
        last = spy.wait(lambda s: s.obj["state"] == "offline", 5, "offline", suffix="state")
        assert last.obj["reason"] == "shutdown"
        assert json.loads(last.payload)["session"] == link.session
    finally:
        spy.close()
