"""An idle monitor wakes once per probe turn and no more: quick probes run on its own thread (no
worker woken, no result handed back), workers start only for probes that can block, turns due
close together share one wake-up, and a cycle about to leave the link window goes in it too."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from agent.monitoring import pool
from agent.monitoring.monitor import Monitor
from agent.monitoring.probes import ProbesConfig, Roots, build_probes
from agent.monitoring.probes.base import Sample
from agent.monitoring.probes.tcp import TcpResult, TcpSample
from tests.probes.test_monitor_wakeups import CountingResults, settle, voluntary_switches


class ThreadProbe:
    """Records the thread and the (monotonic) time of each run."""

    def __init__(self, name: str, interval: float, *, quick: bool, sleep: float = 0.0) -> None:
        self.name, self.interval, self.timeout, self.quick = name, interval, 0.5, quick
        self.sleep = sleep
        self.threads: list[str] = []
        self.times: list[float] = []

    def collect(self, deadline: float) -> Sample:
        self.threads.append(threading.current_thread().name)
        self.times.append(time.monotonic())
        if self.sleep:
            time.sleep(self.sleep)
        return Sample(at=time.time())


class QuickLinkProbe:
    """A link probe (the name the link plan reads cycles from); its first run takes ``sleep`` s,
    the others answer at once."""

    name, timeout, quick = "tcp", 0.5, True
    targets = ["127.0.0.1:1"]

    def __init__(self, interval: float, sleep: float) -> None:
        self.interval, self.sleep = interval, sleep
        self.runs = 0

    def collect(self, deadline: float) -> TcpSample:
        self.runs += 1
        if self.runs == 1:
            time.sleep(self.sleep)
        return TcpSample(at=time.time(), results=[TcpResult("127.0.0.1:1", "open", 1.0)])


def monitor(probes: list[Any], **cfg: Any) -> tuple[Monitor, CountingResults]:
    c = ProbesConfig(workers=3)
    for key, value in cfg.items():
        setattr(c, key, value)
    m = Monitor(c, None, None, probes=probes)
    results = CountingResults()
    m._wakeups = results  # type: ignore[assignment]
    return m, results


def test_quick_probes_run_on_the_monitor_thread_and_start_no_worker() -> None:
    probes = [ThreadProbe("a", 60.0, quick=True), ThreadProbe("b", 60.0, quick=True)]
    m, results = monitor(probes)
    m.start()
    try:
        settle(lambda: all(m.latest(p.name) is not None for p in probes))
        settle(lambda: results.waits and (results.waits[-1] or 0) > 1)
        thread = m._thread
        assert thread is not None
        before = voluntary_switches(thread)
        time.sleep(2.0)
        after = voluntary_switches(thread)
    finally:
        m.stop()
    assert [p.threads for p in probes] == [["probe-monitor"], ["probe-monitor"]]
    assert m.workers == []
    assert not [t for t in threading.enumerate() if t.name.startswith("probe-worker")]
    # One sleep until the next turn: no wait for a result handed back by a worker.
    assert len(results.waits) == 1, results.waits
    if before is not None and after is not None:
        assert after - before <= 1


def test_a_probe_that_can_block_runs_on_a_worker_and_only_one_is_started() -> None:
    quick, blocking = ThreadProbe("quick", 60.0, quick=True), ThreadProbe("net", 60.0, quick=False)
    m, _ = monitor([quick, blocking])
    m.start()
    try:
        settle(lambda: m.latest("quick") is not None and m.latest("net") is not None)
    finally:
        m.stop()
    assert quick.threads == ["probe-monitor"]
    assert blocking.threads == ["probe-worker-0"]
    assert [t.name for t in m.workers] == ["probe-worker-0"]  # not cfg.workers (3) of them


def test_a_quick_probe_that_overruns_moves_to_a_worker() -> None:
    slow = ThreadProbe("slow", 0.3, quick=True, sleep=0.0)
    slow.timeout = 0.1
    slow.sleep = 0.25  # longer than its timeout, on the monitor thread
    m, _ = monitor([slow])
    m.start()
    try:
        settle(lambda: len(slow.threads) >= 1)
        slow.sleep = 0.0
        settle(lambda: len(slow.threads) >= 3, timeout=5.0)
    finally:
        m.stop()
    assert slow.threads[0] == "probe-monitor"
    assert set(slow.threads[1:]) == {"probe-worker-0"}, slow.threads


def test_turns_due_close_together_share_one_wake_up() -> None:
    # Both run at the start; next, "a" is due after 1.0 s and "b" 40 ms later, inside b's
    # alignment (5 % of its interval): both run in the wake-up for "a".
    a, b = ThreadProbe("a", 1.0, quick=True), ThreadProbe("b", 1.04, quick=True)
    m, results = monitor([a, b])
    m.start()
    try:
        settle(lambda: len(a.times) >= 2 and len(b.times) >= 2, timeout=5.0)
    finally:
        m.stop()
    assert abs(b.times[1] - a.times[1]) < 0.02, (a.times, b.times)
    assert len(results.waits) <= 3, results.waits  # start, the shared turn, (stop)


def test_turns_keep_their_cadence_when_taken_early() -> None:
    a, b = ThreadProbe("a", 1.0, quick=True), ThreadProbe("b", 1.04, quick=True)
    m, _ = monitor([a, b])
    m.start()
    try:
        settle(lambda: len(b.times) >= 4, timeout=8.0)
    finally:
        m.stop()
    # Taken early once, "b" still runs about every 1.04 s, not every 1.0 s.
    span = b.times[3] - b.times[0]
    assert 3 * 1.04 - 0.1 <= span <= 3 * 1.04 + 0.3, b.times


def test_a_cycle_about_to_leave_the_window_goes_in_the_probe_turn_not_a_wake_of_its_own() -> None:
    # The link window is as long as the link probe's interval, and the first run took 60 ms: its
    # cycle leaves the window 60 ms after the second turn, inside the 120 ms (1 % of the window)
    # a cycle may leave early. One wake-up for that turn, not a second one 60 ms later.
    link = QuickLinkProbe(interval=12.0, sleep=0.06)
    m, results = monitor([link], window_minutes=12.0 / 60)
    m.start()
    try:
        settle(lambda: link.runs >= 2, timeout=20.0)
        settle(lambda: len(results.waits) >= 2 and (results.waits[-1] or 0) > 1)
        cycles = m.view.window.cycles
    finally:
        m.stop()
    assert cycles == 1  # the first turn's cycle left in the second turn's wake-up
    assert len(results.waits) == link.runs == 2, results.waits


def test_the_shipped_quick_probes_are_those_that_only_read_kernel_files(tmp_path: Path) -> None:
    cfg = ProbesConfig()
    cfg.gateway.tcp_port = 0
    roots = Roots(sysfs=tmp_path / "sys", procfs=tmp_path / "proc", dev=tmp_path / "dev")
    quick = {p.name for p in build_probes(cfg, roots) if getattr(p, "quick", False)}
    assert quick == {"clocksync", "display", "netif", "storage_wear", "system", "thermal"}


def test_a_turns_jobs_wake_one_worker_and_the_monitor_once(monkeypatch: Any) -> None:
    monkeypatch.setattr(pool, "HANDOFF_S", 1.0)  # a loaded box may take 0.1 s to start a thread
    probes = [ThreadProbe(f"net{i}", 60.0, quick=False) for i in range(4)]
    m, results = monitor(probes)
    m.start()
    try:
        settle(lambda: all(m.latest(p.name) is not None for p in probes))
        settle(lambda: results.waits and (results.waits[-1] or 0) > 1)
    finally:
        m.stop()
    assert {t for p in probes for t in p.threads} == {"probe-worker-0"}
    # The monitor's wake-ups: once for the end of the turn's jobs, then the long sleep.
    assert len(results.waits) <= 2, results.waits


def test_jobs_behind_a_slow_one_get_another_worker() -> None:
    slow = ThreadProbe("slow", 60.0, quick=False, sleep=1.0)
    slow.timeout = 2.0
    fast = ThreadProbe("fast", 60.0, quick=False)
    m, _ = monitor([slow, fast])
    t0 = time.monotonic()
    m.start()
    try:
        settle(lambda: m.latest("fast") is not None and m.latest("slow") is not None)
    finally:
        m.stop()
    assert slow.threads == ["probe-worker-0"] and fast.threads == ["probe-worker-1"]
    assert fast.times[0] - t0 < 0.6, "the fast probe waited for the slow one"
