"""Outbox drain after reconnect: N queued records to a local broker, records per second.

The agent path is the real one: a ``Runtime`` (SQLite store, core thread; a stand-in player, no
course plays), the ``RuntimeBridge`` (every outbox read and delete hops to the core thread) and
the ``MqttLink``. N finished records are queued in the store first, then the link connects; the
clock runs from CONNACK until the outbox is empty:

- ``puback``: records confirmed by the broker's PUBACK (no subscriber needed);
- ``ack``:    records confirmed by the county collector's ``record/ack`` (``countyctl collect``
              in its own process, committing each batch to its own SQLite before acking).

Beside it, in the same run, a bare paho loop publishes the same payloads at QoS 1 with the same
inflight window (the broker's Receive Maximum) and waits for every PUBACK: the ratio shows what
durability (SQLite, FULL sync) and confirmation cost.

    .venv/bin/python scripts/bench/mqtt_drain.py [--records 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from agent.adapters.mqtt.link import MqttLink  # noqa: E402
from agent.cli.county.broker import PrivateBroker  # noqa: E402
from agent.domain.records import Record  # noqa: E402
from agent.runtime.config import load_config  # noqa: E402
from agent.runtime.loop import Runtime, record_message  # noqa: E402
from tests.helpers import write_config  # noqa: E402

TERMINAL, COUNTY = "t-001", "c-01"


class IdlePlayer:
    """No VLC: nothing is scheduled, the bench only drains the outbox."""

    def preroll(self, *a: object) -> None: ...
    def play(self, *a: object) -> None: ...
    def start(self, *a: object) -> None: ...
    def stop(self, *a: object) -> None: ...
    def unload(self) -> None: ...


def make_records(n: int) -> list[Record]:
    return [
        Record(
            record_id=str(uuid.uuid4()),
            seq=i + 1,
            terminal=TERMINAL,
            course_id=f"PH-{i % 40:02d}",
            title="党史学习 第一讲",
            media="courses/ph-01.mp4",
            trigger="schedule",
            clock_state="unsynced",
            boot_id="bench",
            schedule_layer="terminal",
            schedule_version=7,
            item_id="w1",
            planned_start="2026-11-28T11:30:00.000Z",
            started_at="2026-11-28T11:30:00.004Z",
            ended_at="2026-11-28T12:00:00.210Z",
            played_seconds=1800.2,
            media_duration=1800.0,
            position=1800.0,
            completion=1.0,
            outcome="completed",
        )
        for i in range(n)
    ]


def agent_drain(broker: PrivateBroker, tmp: Path, n: int, mode: str) -> dict[str, float]:
    mqtt_cfg = {"host": broker.host, "port": broker.port, "record_confirmation": mode}
    mqtt_cfg["heartbeat_seconds"] = 3600
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = load_config(write_config(tmp, mqtt=mqtt_cfg))
    runtime = Runtime(cfg, player=IdlePlayer())
    runtime.open()
    store = runtime.store
    assert store is not None
    with store.transaction() as conn:
        for rec in make_records(n):
            store.insert_record(rec, conn)
            store.enqueue("record", rec.record_id, "record", record_message(rec, COUNTY), conn=conn)
    collector = None
    if mode == "ack":
        # The county collector in its own process, as on the county's server.
        log = tmp / "collector.log"
        collector = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.county", "collect", "--db", str(tmp / "county.db")]
            + ["--county", COUNTY, "--host", broker.host, "--port", str(broker.port)]
            + ["--client-id", f"bench-collector-{uuid.uuid4().hex[:6]}"],
            stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 10
        while b"connected" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
    core = threading.Thread(target=runtime.run, daemon=True)
    core.start()
    connected = threading.Event()
    t_conn = [0.0]

    def on_state(s: str) -> None:
        if s == "connected" and not connected.is_set():
            t_conn[0] = time.monotonic()
            connected.set()

    link = MqttLink(cfg, runtime)
    link.on_state = on_state
    link.start()
    connected.wait(10)
    while runtime.call(store.outbox_depth) > 0:
        time.sleep(0.01)
    elapsed = time.monotonic() - t_conn[0]
    window = link.policy.window
    link.stop()
    runtime.request_stop()
    core.join(10)
    out = {
        "records": n,
        "seconds": round(elapsed, 3),
        "per_s": round(n / elapsed),
        "window": window,
    }
    if collector is not None:
        collector.terminate()
        collector.wait(10)
        con = sqlite3.connect(str(tmp / "county.db"))
        out["collector_stored"] = con.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        con.close()
    return out


def bare_paho(broker: PrivateBroker, n: int, window: int) -> dict[str, float]:
    payloads = [
        json.dumps(record_message(r, COUNTY), ensure_ascii=False, separators=(",", ":")).encode()
        for r in make_records(n)
    ]
    done = threading.Event()
    acked = [0]

    def on_publish(*_a: object) -> None:
        acked[0] += 1
        if acked[0] == n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-paho", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(window)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect(broker.host, broker.port, 60)
    c.loop_start()
    time.sleep(0.2)
    topic = f"rde/v1/{COUNTY}/{TERMINAL}/record"
    t0 = time.monotonic()
    for body in payloads:
        c.publish(topic, body, 1)
    done.wait(120)
    elapsed = time.monotonic() - t0
    c.disconnect()
    c.loop_stop()
    return {"records": n, "seconds": round(elapsed, 3), "per_s": round(n / elapsed)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=str(ROOT)) as tmp:  # the real disk, not tmpfs
        broker = PrivateBroker(Path(tmp) / "broker").start()
        try:
            for mode in ("puback", "ack"):
                results[f"agent_{mode}"] = agent_drain(broker, Path(tmp) / mode, args.records, mode)
            window = int(results["agent_puback"]["window"])
            results["bare_paho"] = bare_paho(broker, args.records, window)
        finally:
            broker.stop()
    bare = results["bare_paho"]["per_s"]
    for key in ("agent_puback", "agent_ack"):
        results[key]["ratio_to_bare_paho"] = round(results[key]["per_s"] / bare, 2)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"Outbox drain after reconnect, {args.records} records, local Mosquitto")
    print(f"{'path':<34} {'seconds':>8} {'records/s':>10} {'vs bare':>8}")
    names = {
        "agent_puback": "agent, confirmed by PUBACK",
        "agent_ack": "agent, confirmed by collector ack",
        "bare_paho": "bare paho QoS 1 loop",
    }
    for key, label in names.items():
        r = results[key]
        ratio = r.get("ratio_to_bare_paho", 1.0)
        print(f"{label:<34} {r['seconds']:>8.2f} {r['per_s']:>10} {ratio:>8.2f}")
    print(f"inflight window (broker Receive Maximum): {results['agent_puback']['window']}")


if __name__ == "__main__":
    main()
