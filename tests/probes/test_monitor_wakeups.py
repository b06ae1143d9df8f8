"""The monitor's scheduler sleeps until it has work: the next probe turn, a result, a cycle
leaving the link window, or ``stop``. It never wakes on a timer with nothing to do."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

from agent.monitoring.monitor import Monitor
from agent.monitoring.probes import ProbesConfig
from agent.monitoring.probes.base import Sample
from agent.monitoring.probes.tcp import TcpProbe, TcpProbeConfig

IDLE_S = 3.0


class SlowCadenceProbe:
    """A probe on the default 60 s interval."""

    def __init__(self, name: str) -> None:
        self.name, self.interval, self.timeout = name, 60.0, 0.5
        self.runs = 0

    def collect(self, deadline: float) -> Sample:
        self.runs += 1
        return Sample(at=time.time())


class CountingResults:
    """Stands in for the scheduler's wake-up queue and records each blocking wait's timeout."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.waits: list[float | None] = []

    def put(self, item: Any) -> None:
        self._q.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self.waits.append(timeout)
        return self._q.get(block, timeout)

    def get_nowait(self) -> Any:
        return self._q.get_nowait()


def voluntary_switches(thread: threading.Thread) -> int | None:
    """The kernel's count of times the thread went to sleep (None where /proc is not Linux's)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def settle(predicate: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "the monitor did not get there in time"
        time.sleep(0.01)


def idle_monitor(**cfg: Any) -> tuple[Monitor, CountingResults, list[SlowCadenceProbe]]:
    probes = [SlowCadenceProbe("a"), SlowCadenceProbe("b"), SlowCadenceProbe("c")]
    c = ProbesConfig(workers=2)
    for key, value in cfg.items():
        setattr(c, key, value)
    m = Monitor(c, None, None, probes=probes)
    results = CountingResults()
    m._wakeups = results  # type: ignore[assignment]
    return m, results, probes


def test_an_idle_monitor_sleeps_until_the_next_probe_is_due() -> None:
    m, results, probes = idle_monitor()
    m.start()
    try:
        settle(lambda: all(m.latest(p.name) is not None for p in probes))
        settle(lambda: results.waits and results.waits[-1] is not None and results.waits[-1] > 1)
        thread = m._thread
        assert thread is not None
        waits_before, switches_before = len(results.waits), voluntary_switches(thread)
        time.sleep(IDLE_S)
        waits_after, switches_after = len(results.waits), voluntary_switches(thread)
    finally:
        m.stop()
    # First turn: at most one wait per result, then one long sleep until the next turn.
    assert waits_before <= 1 + len(probes)
    assert waits_after == waits_before, results.waits
    # The sleep is the exact time to the next turn, not a capped poll.
    assert 60.0 - IDLE_S - 1.0 < results.waits[-1] <= 60.0, results.waits
    assert [p.runs for p in probes] == [1, 1, 1]
    if switches_before is not None and switches_after is not None:
        assert switches_after - switches_before <= 1, (switches_before, switches_after)


def test_stop_wakes_the_sleeping_scheduler_at_once() -> None:
    m, results, probes = idle_monitor()
    m.start()
    settle(lambda: results.waits and results.waits[-1] is not None and results.waits[-1] > 1)
    thread = m._thread
    assert thread is not None
    t0 = time.monotonic()
    m.stop()
    assert time.monotonic() - t0 < 0.5
    assert not thread.is_alive()


def test_the_scheduler_wakes_for_each_turn_of_a_fast_probe_and_no_more() -> None:
    probes = [SlowCadenceProbe("slow"), SlowCadenceProbe("fast")]
    probes[1].interval = 0.25
    m = Monitor(ProbesConfig(workers=1), None, None, probes=probes)
    results = CountingResults()
    m._wakeups = results  # type: ignore[assignment]
    m.start()
    time.sleep(IDLE_S)
    m.stop()
    turns = probes[1].runs
    assert IDLE_S / 0.25 - 2 <= turns <= IDLE_S / 0.25 + 2
    assert probes[0].runs == 1
    # Each turn costs a wait for the turn and a wait for its result; nothing in between.
    assert len(results.waits) <= 2 * turns + 3, (turns, len(results.waits))


def test_a_cycle_leaving_the_link_window_wakes_the_scheduler(listening_port: int) -> None:
    """With the link probe at 60 s, the window's figures still drop the old cycle on time."""
    c = ProbesConfig(workers=1, emit_samples=False)
    c.window_minutes = 0.01  # 0.6 s
    tcp = TcpProbe(TcpProbeConfig(targets=[f"127.0.0.1:{listening_port}"]))
    tcp.interval = 60.0
    m = Monitor(c, None, None, probes=[tcp])
    results = CountingResults()
    m._wakeups = results  # type: ignore[assignment]
    m.start()
    try:
        settle(lambda: m.view.window.cycles == 1)
        seen = time.monotonic()
        settle(lambda: m.view.window.cycles == 0, timeout=3.0)
        assert time.monotonic() - seen < 0.6 + 0.3
    finally:
        m.stop()
    assert tcp.interval == 60.0 and m.view.runner["tcp"]["runs"] == 1


def test_the_summary_is_flushed_on_time_while_idle(listening_port: int) -> None:
    c = ProbesConfig(workers=1, emit_samples=False)
    c.summary_minutes = 0.01  # 0.6 s
    tcp = TcpProbe(TcpProbeConfig(targets=[f"127.0.0.1:{listening_port}"]))
    tcp.interval = 60.0
    emitted: list[tuple[str, float]] = []
    m = Monitor(c, None, lambda kind, p: emitted.append((kind, time.monotonic())), probes=[tcp])
    t0 = time.monotonic()
    m.start()
    try:
        settle(lambda: any(kind == "link_summary" for kind, _ in emitted), timeout=3.0)
    finally:
        m.stop()
    (at,) = [t for kind, t in emitted if kind == "link_summary"][:1]
    assert 0.6 - 0.05 <= at - t0 < 0.6 + 0.3
