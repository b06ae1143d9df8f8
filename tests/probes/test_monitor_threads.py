"""The monitor's state has one owner (its thread); the core thread reads published snapshots.

The reader here plays the core thread (heartbeat summary, status snapshot) while the monitor
thread appends to and trims its link window as fast as a probe can feed it.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections.abc import Iterator

import pytest

from agent.domain.linkstats import WindowStats
from agent.monitoring.monitor import Monitor
from agent.monitoring.probes import ProbesConfig
from agent.monitoring.probes.tcp import TcpResult, TcpSample

HAMMER_SECONDS = 1.5


class BusyTcpProbe:
    """A link probe with many attempts per cycle and no pause between cycles."""

    name, interval, timeout = "tcp", 0.0005, 1.0
    targets = ["127.0.0.1:1"]

    def __init__(self) -> None:
        self.rng = random.Random(9)
        self.runs = 0

    def collect(self, deadline: float) -> TcpSample:
        self.runs += 1
        results = [
            TcpResult("127.0.0.1:1", "open", self.rng.uniform(1, 50))
            if self.rng.random() < 0.8
            else TcpResult("127.0.0.1:1", "timeout")
            for _ in range(40)
        ]
        return TcpSample(at=time.time(), results=results)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads often, as a loaded two-core box does, so interleavings actually happen."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def test_core_thread_reads_while_the_monitor_thread_writes(fast_switching: None) -> None:
    cfg = ProbesConfig(workers=2)
    cfg.window_minutes = 0.01  # 0.6 s: the monitor thread trims the window all the time
    probe = BusyTcpProbe()
    monitor = Monitor(cfg, None, None, probes=[probe])
    errors: list[BaseException] = []
    reads = 0
    monitor.start()
    try:
        end = time.monotonic() + HAMMER_SECONDS
        while time.monotonic() < end:
            try:
                summary, snap = monitor.summary(), monitor.snapshot()
            except Exception as exc:  # noqa: BLE001 - the failure this test looks for
                errors.append(exc)
                continue
            reads += 1
            assert summary["link"] in ("up", "down", "unknown")
            assert snap["link_window"]["cycles"] >= 0
        runs_before = probe.runs
        time.sleep(0.2)
        monitor_alive = monitor._thread is not None and monitor._thread.is_alive()
        still_running = probe.runs > runs_before
    finally:
        monitor.stop()
    assert not errors, f"{len(errors)} reads failed, first: {errors[0]!r}"
    assert reads > 100 and probe.runs > 100
    assert monitor_alive and still_running, "the monitor thread died"


def test_published_snapshot_is_immutable_and_not_shared() -> None:
    cfg = ProbesConfig(workers=1)
    probe = BusyTcpProbe()
    monitor = Monitor(cfg, None, None, probes=[probe])
    monitor.start()
    try:
        deadline = time.monotonic() + 5
        while monitor.snapshot()["link_window"]["cycles"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        view = monitor.view
        assert view.window.cycles >= 3
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.window.cycles = 0  # type: ignore[misc]
        with pytest.raises(TypeError):
            view.latest["tcp"] = None  # type: ignore[index]
        with pytest.raises(TypeError):
            view.alarms["link_down"] = 0.0  # type: ignore[index]
        snap = monitor.snapshot()
        snap["runner"]["stats"]["tcp"]["runs"] = -1  # a caller's copy, not the monitor's state
        assert monitor.snapshot()["runner"]["stats"]["tcp"]["runs"] >= 0
    finally:
        monitor.stop()
    assert isinstance(view.window, WindowStats)


def test_restored_alarms_are_visible_before_the_first_cycle() -> None:
    monitor = Monitor(
        ProbesConfig(workers=1), None, None, probes=[], active_alarms={"link_down": 123.0}
    )
    assert monitor.summary()["alarms"] == ["link_down"]
    assert monitor.summary()["link"] == "down"
    assert monitor.snapshot()["alarms"] == {"link_down": 123.0}
