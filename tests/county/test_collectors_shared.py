"""Two collectors share the county's messages (MQTT 5 shared subscription on a private
Mosquitto) into one PostgreSQL database; one is killed (SIGKILL) under load. The terminals,
simulated here as the protocol has them (keep a record until its ``record/ack``, send it again
after a timeout), lose nothing, and nothing is stored twice."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from agent.cli.county.broker import PrivateBroker
from agent.cli.county.client import CountyClient
from agent.domain import protocol as p
from agent.domain import topics as t
from tests.county.conftest import COUNTY, record
from tests.helpers import ROOT

TERMINALS = 20
PER_TERMINAL = 100
RESEND_S = 3.0  # the terminals' ack timeout, short for the test


def start_collector(broker: PrivateBroker, url: str, name: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "COUNTYCTL_PYTHON": sys.executable}
    return subprocess.Popen(
        [
            str(ROOT / "scripts" / "countyctl"),
            "collect",
            "--db",
            url,
            "--county",
            COUNTY,
            "--shared",
            "collectors",
            "--client-id",
            name,
            "--host",
            broker.host,
            "--port",
            str(broker.port),
            "--retry-max",
            "1",
        ],  # fmt: skip
        stdout=open(log, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=env,
    )


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Fleet:
    """Many terminals on one connection: an outbox per record until its ``record/ack``."""

    def __init__(self, broker: PrivateBroker) -> None:
        from agent.adapters.mqtt.config import MqttConfig

        self.cc = CountyClient(MqttConfig(host=broker.host, port=broker.port), "fleet-sim")
        self.cc.connect()
        self.cc.subscribe([t.fleet(COUNTY, t.RECORD_ACK)])
        self.outbox: dict[str, dict] = {}  # record_id -> the newest revision
        self.sent_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.sends = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._acks, daemon=True)
        self.thread.start()

    def send(self, rec: dict) -> None:
        with self.lock:
            self.outbox[rec["record_id"]] = rec
            self.sent_at[rec["record_id"]] = time.monotonic()
        self.cc.publish(t.topic(COUNTY, rec["terminal"], t.RECORD), p.dumps(rec), wait=None)
        self.sends += 1

    def resend_due(self) -> int:
        now = time.monotonic()
        with self.lock:
            due = [r for rid, r in self.outbox.items() if now - self.sent_at[rid] > RESEND_S]
        for rec in due:
            self.send(rec)
        return len(due)

    def waiting(self) -> int:
        with self.lock:
            return len(self.outbox)

    def _acks(self) -> None:
        while not self.stop.is_set():
            try:
                msg = self.cc.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            for pair in p.decode(msg.payload, p.MAX_ACK_BYTES)["records"]:
                with self.lock:
                    rec = self.outbox.get(pair["record_id"])
                    if rec is not None and pair["rev"] >= rec["rev"]:
                        del self.outbox[pair["record_id"]]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.cc.close()


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_killing_one_of_two_collectors_under_load_loses_nothing(
    tmp_path: Path, broker: PrivateBroker, pg_url: str
) -> None:
    logs = {n: tmp_path / f"{n}.log" for n in ("coll-a", "coll-b")}
    procs = {n: start_collector(broker, pg_url, n, log) for n, log in logs.items()}
    fleet = None
    try:
        for name, log in logs.items():
            wait_for(
                lambda log=log: "shared group collectors" in log.read_text(errors="replace"),
                30,
                f"{name} subscribed",
            )
        fleet = Fleet(broker)
        recs = [
            record(f"t-{i % TERMINALS:03d}", i // TERMINALS + 1, start="2026-10-03 19:30")
            for i in range(TERMINALS * PER_TERMINAL)
        ]
        expected = {r["record_id"]: 1 for r in recs}
        killed_at = None
        for i, rec in enumerate(recs):
            fleet.send(rec)
            if i % 10 == 9:  # attendance entered later: a second revision of an earlier record
                older = recs[i - 5]
                fleet.send({**older, "rev": 2, "attendance": 7})
                expected[older["record_id"]] = 2
            if i % 50 == 49:
                time.sleep(0.02)
            if killed_at is None and i >= len(recs) // 3:
                wait_for(
                    lambda: rows(pg_url, "SELECT COUNT(*) FROM records WHERE stored_by='coll-a'")[
                        0
                    ][0],
                    20,
                    "coll-a to store something",
                )
                procs["coll-a"].send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
        assert procs["coll-a"].wait(10) == -signal.SIGKILL

        def settled() -> bool:
            fleet.resend_due()
            return fleet.waiting() == 0

        wait_for(settled, 90, "every record acknowledged")
        stored = dict(rows(pg_url, "SELECT record_id, rev FROM records"))
        assert stored == expected  # nothing lost, the newest revision of each
        dupes = rows(pg_url, "SELECT record_id FROM records GROUP BY record_id HAVING COUNT(*) > 1")
        assert dupes == []
        by = dict(rows(pg_url, "SELECT stored_by, COUNT(*) FROM records GROUP BY stored_by"))
        assert by.get("coll-a", 0) > 0 and by.get("coll-b", 0) > by.get("coll-a", 0), by
        total_deliveries = rows(pg_url, "SELECT SUM(deliveries) FROM records")[0][0]
        assert total_deliveries >= len(expected)
        assert procs["coll-b"].poll() is None, logs["coll-b"].read_text(errors="replace")[-2000:]
    finally:
        if fleet is not None:
            fleet.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
