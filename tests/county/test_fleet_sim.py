"""The fleet simulator against a private Mosquitto and the PostgreSQL collector (a subprocess,
``countyctl collect``), one small fleet per scenario through the real command line: every record
the terminals made is in the database once, with its newest ``rev``; every terminal is online at
the end (also in the broker's retained ``state``); the broker restart and the collector outage
really happened and were recovered from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.county.simulate.outbox import MemOutbox
from agent.domain.outbox import OutboxPolicy
from tests.helpers import ROOT

TERMINALS = 100
FAST = [
    "--terminals", str(TERMINALS), "--ramp", "3", "--duration", "8", "--record-every", "3",
    "--heartbeat", "5", "--flap-every", "120", "--ack-timeout", "6", "--backoff-min", "1",
    "--backoff-max", "10", "--stable-after", "2", "--drain-timeout", "60",
]  # fmt: skip


def simulate(scenario: str, pg_url: str, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "report.json"
    env = {**os.environ, "COUNTYCTL_PYTHON": sys.executable}
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / "scripts" / "fleet-sim"), scenario, "--db", pg_url, *FAST, *extra,
         "--workdir", str(tmp_path / "run"), "--report-json", str(out), "--validate-all"],
        capture_output=True, text=True, env=env, timeout=150,
    )  # fmt: skip
    assert out.exists(), f"no report after {time.monotonic() - t0:.0f} s: {proc.stderr[-3000:]}"
    report = json.loads(out.read_text())
    print(proc.stdout)
    assert proc.returncode == (0 if report["passed"] else 1), proc.stderr[-2000:]
    db = report["database"]
    assert db["made"] > TERMINALS, report
    assert (db["lost"], db["stored_twice"], db["older_rev"], db["not_made"]) == (0, 0, 0, 0), db
    assert db["stored"] == db["made"]
    assert report["counts"]["revised"] > 0
    assert report["online_end"] == TERMINALS
    assert report["online_end_broker_view"] == TERMINALS
    assert report["schedule_acked"] == TERMINALS
    assert report["latency_s"]["n"] >= db["made"]
    assert report["passed"], report["failures"]
    return report


def test_steady_day(pg_url: str, tmp_path: Path) -> None:
    report = simulate("steady", pg_url, tmp_path)
    assert report["counts"]["heartbeats"] > TERMINALS
    assert report["collector"]["rows_per_s_peak_5s"] > 0
    assert report["broker"]["rss_mb_peak"] > 0


def test_broker_restart_brings_everyone_back(pg_url: str, tmp_path: Path) -> None:
    report = simulate("broker-restart", pg_url, tmp_path, "--down", "3")
    assert "restart_all_back_s" in report["events"]
    # every terminal connected again after the restart: at least two connects each
    assert report["counts"]["connects"] >= 2 * TERMINALS


def test_outage_backlog_flushes(pg_url: str, tmp_path: Path) -> None:
    report = simulate("outage", pg_url, tmp_path, "--outage", "10")
    col = report["collector"]
    assert col["starts"] == 2
    assert col["backlog_records"] > TERMINALS / 2  # records waited in the outboxes
    assert col["flush_s"] is not None and col["flush_s"] < 60


def test_a_revision_outlives_the_ack_of_the_older_rev() -> None:
    box = MemOutbox(OutboxPolicy(ack_timeout=5.0))
    box.add("record", "r-00000001", "record", "{}", 0.0, rev=1)
    box.add("record", "r-00000001", "record", "{}", 1.0, rev=2)
    assert box.on_record_ack([("r-00000001", 1)]) == [0.0]
    assert box.records() == 1
    assert box.on_record_ack([("r-00000001", 2)]) == [1.0]
    assert len(box) == 0


@pytest.mark.parametrize(
    "bad", [["--terminals", "0"], ["--backoff-min", "5", "--backoff-max", "1"]]
)
def test_bad_options_are_refused(bad: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.county", "simulate", "steady", "--db",
         str(tmp_path / "x.db"), *bad],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "must" in proc.stderr
