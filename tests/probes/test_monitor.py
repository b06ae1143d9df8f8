"""The runner: deadlines, hung probes, real loopback link checks end to end through ``emit``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from agent.monitoring.monitor import Monitor
from agent.monitoring.probes import ProbesConfig, Roots, build_probes
from agent.monitoring.probes.base import Sample
from agent.monitoring.probes.tcp import TcpProbe, TcpProbeConfig


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], str]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, payload, threading.current_thread().name))

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for k, p, _ in self.events if k == kind]

    def wait_for(self, pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            time.sleep(0.02)
        return False


class CountingProbe:
    def __init__(self, name: str = "fast", interval: float = 0.1) -> None:
        self.name, self.interval, self.timeout = name, interval, 0.5
        self.runs = 0

    def collect(self, deadline: float) -> Sample:
        self.runs += 1
        return Sample(at=time.time())


class HangingProbe:
    """Ignores its deadline, as a buggy probe or a stuck syscall would."""

    def __init__(self) -> None:
        self.name, self.interval, self.timeout = "hang", 0.1, 0.2
        self.release = threading.Event()
        self.calls = 0

    def collect(self, deadline: float) -> Sample:
        self.calls += 1
        self.release.wait(10)
        return Sample(at=time.time())


class CrashingProbe:
    name, interval, timeout = "crash", 0.1, 0.5

    def collect(self, deadline: float) -> Sample:
        raise RuntimeError("driver went away")


def cfg(**kw: Any) -> ProbesConfig:
    c = ProbesConfig(workers=1, emit_samples=True)
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_a_hung_probe_blocks_neither_the_others_nor_the_caller() -> None:
    rec, fast, hang = Recorder(), CountingProbe(), HangingProbe()
    m = Monitor(
        cfg(), None, rec, probes=[hang, fast]
    )  # one worker only: the hang must be routed around
    t0 = time.monotonic()
    m.start()
    assert time.monotonic() - t0 < 0.2
    try:
        assert rec.wait_for(lambda: fast.runs >= 8, timeout=3)
        failed = [p for p in rec.of("sample") if p["probe"] == "hang"]
        assert failed and "deadline" in failed[0]["sample"]["error"]
        assert hang.calls == 1  # not restarted while the stuck call has not returned
        assert m.snapshot()["runner"]["stats"]["hang"]["timeouts"] == 1
    finally:
        t1 = time.monotonic()
        m.stop()
        assert time.monotonic() - t1 < 0.5  # stop never waits on the hung call
        hang.release.set()


def test_intervals_are_kept_not_hammered() -> None:
    fast = CountingProbe(interval=0.2)
    m = Monitor(cfg(), None, Recorder(), probes=[fast])
    m.start()
    time.sleep(1.05)
    m.stop()
    assert 5 <= fast.runs <= 7


def test_probe_exceptions_become_error_samples() -> None:
    rec, fast = Recorder(), CountingProbe()
    m = Monitor(cfg(), None, rec, probes=[CrashingProbe(), fast])
    m.start()
    try:
        assert rec.wait_for(lambda: fast.runs >= 3 and m.latest("crash") is not None)
        crash = m.latest("crash")
        assert crash is not None and not crash.ok and "driver went away" in (crash.error or "")
    finally:
        m.stop()


def test_emit_runs_on_the_monitor_thread_and_its_errors_are_contained() -> None:
    names: list[str] = []

    def bad_emit(kind: str, payload: dict[str, Any]) -> None:
        names.append(threading.current_thread().name)
        raise ValueError("consumer bug")

    fast = CountingProbe()
    m = Monitor(cfg(), None, bad_emit, probes=[fast])
    m.start()
    time.sleep(0.5)
    m.stop()
    assert fast.runs >= 3 and len(names) >= 3
    assert set(names) == {"probe-monitor"}


def test_link_down_and_back_over_real_loopback(blackhole_port: int, closed_port: int) -> None:
    c = cfg(emit_samples=False)
    c.alarms.link_down.raise_after = 2
    c.alarms.link_down.clear_after = 2
    tcp = TcpProbe(TcpProbeConfig(targets=[f"127.0.0.1:{blackhole_port}"]))
    tcp.interval, tcp.timeout = 0.1, 0.15  # faster than the config allows, for the test
    rec = Recorder()
    m = Monitor(c, None, rec, probes=[tcp])
    m.start()
    try:
        assert rec.wait_for(lambda: rec.of("alarm"), timeout=5)
        (raised,) = rec.of("alarm")
        assert raised["name"] == "link_down" and raised["action"] == "raised"
        assert raised["detail"]["targets"] == {f"127.0.0.1:{blackhole_port}": "timeout"}
        assert m.summary()["link"] == "down"
        tcp.targets = [f"127.0.0.1:{closed_port}"]  # the broker is down, but the path is back
        assert rec.wait_for(lambda: len(rec.of("alarm")) == 2, timeout=5)
        cleared = rec.of("alarm")[1]
        assert cleared["action"] == "cleared" and cleared["raised_at"] == raised["at"]
        assert rec.wait_for(lambda: m.summary()["link"] == "up")
    finally:
        m.stop()
    assert len(rec.of("alarm")) == 2  # exactly one raise and one clear


def test_hourly_summary_and_partial_summary_at_stop(listening_port: int) -> None:
    c = cfg(emit_samples=False)
    c.summary_minutes = 0.01  # 0.6 s, for the test
    tcp = TcpProbe(TcpProbeConfig(targets=[f"127.0.0.1:{listening_port}"]))
    tcp.interval = 0.1
    rec = Recorder()
    m = Monitor(c, None, rec, probes=[tcp])
    m.start()
    try:
        assert rec.wait_for(lambda: rec.of("link_summary"), timeout=5)
    finally:
        m.stop()
    summaries = rec.of("link_summary")
    first = summaries[0]
    assert first["mode"] == "telecom" and first["cycles"] >= 3 and first["availability"] == 1.0
    assert first["rtt_p50_ms"] is not None and first["loss"] == 0.0
    assert first["period_end"] > first["period_start"]
    assert len(summaries) >= 2 and summaries[-1]["period_start"] == summaries[-2]["period_end"]
    assert all(t == "probe-monitor" for k, _, t in rec.events if k == "link_summary")


def test_restored_alarm_is_cleared_not_raised_again(closed_port: int) -> None:
    c = cfg(emit_samples=False)
    tcp = TcpProbe(TcpProbeConfig(targets=[f"127.0.0.1:{closed_port}"]))
    tcp.interval = 0.05
    rec = Recorder()
    m = Monitor(c, None, rec, probes=[tcp], active_alarms={"link_down": 1_700_000_000.0})
    m.start()
    try:
        assert rec.wait_for(lambda: rec.of("alarm"))
    finally:
        m.stop()
    (change,) = rec.of("alarm")
    assert change["action"] == "cleared" and change["raised_at"] == 1_700_000_000.0


def test_full_probe_set_summary_snapshot_and_shutdown_marker(
    tmp_path: Path, listening_port: int
) -> None:
    c = ProbesConfig()
    c.gateway.tcp_port = 0  # never connect to this machine's real gateway from a test
    # fake /proc/net/route so the gateway probe reads a loopback gateway
    (tmp_path / "proc/net").mkdir(parents=True)
    (tmp_path / "proc/net/route").write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "lo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    )
    roots = Roots(procfs=tmp_path / "proc")
    probes = build_probes(
        c,
        roots,
        tcp_targets=[f"127.0.0.1:{listening_port}"],
        dns_names=["localhost"],
        disk_paths=[tmp_path],
    )
    # the system probe needs the real procfs for boot id and uptime
    for p in probes:
        if p.name == "system":
            p.procfs = Path("/proc")  # type: ignore[attr-defined]
    marker = tmp_path / "state/shutdown.json"
    m = Monitor(c, None, Recorder(), probes=probes, shutdown_marker=marker)
    m.start()
    try:
        names = [p.name for p in probes]
        assert Recorder().wait_for(lambda: all(m.latest(n) is not None for n in names), timeout=10)
        summary = m.summary()
        assert (
            summary["link"] == "up" and summary["rtt_ms"] is not None and summary["loss_pct"] == 0.0
        )
        assert summary["disk_free_pct"] is not None and summary["clock"] in ("synced", "unsynced")
        assert len(json.dumps(summary)) < 1024
        snap = m.snapshot()
        assert set(snap["probes"]) == set(names)
        assert snap["probes"]["gateway"]["gateway"] == "127.0.0.1"
        assert snap["probes"]["system"]["last_shutdown"] == "unknown"
        assert json.loads(marker.read_text())["state"] == "running"
        json.dumps(snap)  # the snapshot must be plain JSON
    finally:
        m.stop()
    assert json.loads(marker.read_text())["state"] == "clean"
