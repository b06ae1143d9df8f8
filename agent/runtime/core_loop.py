"""The core thread: one event at a time from a queue; between events it sleeps.

Adapters (player, MQTT, probes, control socket) only ever *post* to the queue, from any thread;
each post also wakes the loop's :class:`~agent.adapters.timerfd.LoopWaiter`. With nothing
queued, the loop sleeps until the next real deadline (a slot's preroll or start, the idle
player's unload, its own housekeeping: see ``agent.runtime.wakeups``), at most ``max_sleep``
seconds (the watchdog wants a sign of life), and the kernel wakes it when the wall clock is set
(a timerfd armed with ``TFD_TIMER_CANCEL_ON_SET``), so a jump is judged at once, not at the next
poll. Wall and monotonic deltas are still compared on every pass: the timer cannot see a set
that lands between two waits, and a clock that is not the kernel's (a test's) is polled each
second instead.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from agent.adapters.kernel_clock import kernel_clock_synced
from agent.adapters.timerfd import LoopWaiter
from agent.domain import core as c
from agent.runtime.executor import Executor
from agent.runtime.host import Host
from agent.runtime.housekeeping import Housekeeping
from agent.runtime.wakeups import plan_sleep

log = logging.getLogger("agent")

JUMP_THRESHOLD_S = 2.0
# With no watchdog, the longest sleep; a watchdog asks for less (``keep_alive``).
MAX_SLEEP_S = 15.0
# Under a steady stream of events the loop never sleeps: it still ticks at least this often.
BUSY_TICK_S = 1.0


@dataclass
class Submitted:
    event: object
    future: Future[list[c.Action]]


@dataclass
class Call:
    fn: Callable[[], Any]
    future: Future[Any]


class CoreLoop:
    def __init__(self, host: Host, executor: Executor, housekeeping: Housekeeping) -> None:
        self.host = host
        self.executor = executor
        self.housekeeping = housekeeping
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.max_sleep = MAX_SLEEP_S
        self.iterations = 0
        self._waiter: LoopWaiter | None = None
        self._waiter_lock = threading.Lock()  # a wake never writes to a closed (reused) fd
        self._last_wall = 0.0
        self._last_mono = 0.0
        self._last_tick_mono = -1e9
        self._untick = False  # an event was handled since the last Tick

    # -- any thread ------------------------------------------------------------------------

    def put(self, event: object) -> None:
        self.events.put(event)
        with self._waiter_lock:
            if self._waiter is not None:
                self._waiter.wake()

    def submit(self, event: object, timeout: float) -> list[c.Action]:
        """Hand a command to the core thread and wait for its actions (see ``Runtime.submit``)."""
        fut: Future[list[c.Action]] = Future()
        self.put(Submitted(event, fut))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            if fut.cancel():
                raise TimeoutError(
                    f"the agent did not take the command within {timeout:.0f} s; nothing was done"
                ) from None
            # Begun: its result is the truth, however long the step takes (a core that hangs
            # is the watchdog's business, not a reason to tell the caller it failed).
            return fut.result()

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        self.put(Call(fn, fut))
        return fut

    # -- the core thread -------------------------------------------------------------------

    def mark_clock(self) -> None:
        """Take the wall/monotonic pair later passes compare with to see a jump."""
        self._last_wall, self._last_mono = self.host.clock.wall(), self.host.clock.monotonic()

    def run(self, duration: float | None, ready: threading.Event) -> None:
        host = self.host
        stop_at = None if duration is None else host.clock.monotonic() + duration
        with self._waiter_lock:
            self._waiter = LoopWaiter()
        ready.set()
        self.step(c.Tick())
        while not host.stop_requested.is_set():
            if stop_at is not None and host.clock.monotonic() >= stop_at:
                break
            core_at = self._core_deadline()
            ev = self._next_event(core_at, stop_at)
            self.step(ev)
            # A steady stream of adapter events must not starve the timers: tick anyway
            # when a deadline has passed or a while went by without a tick.
            if not isinstance(ev, c.Tick) and (
                host.clock.wall() >= core_at
                or host.clock.monotonic() - self._last_tick_mono >= BUSY_TICK_S
                or self.housekeeping.due_in() <= 0.0
            ):
                self.step(c.Tick())
            self.iterations += 1

    def close(self) -> None:
        with self._waiter_lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.close()

    def _core_deadline(self) -> float:
        core = self.host.core
        assert core is not None
        return core.next_deadline()

    def _next_event(self, core_at: float, stop_at: float | None) -> object:
        try:
            return self.events.get_nowait()
        except queue.Empty:
            pass
        if self._untick:
            # Never sleep on unticked work: the hooks (the MQTT link's outbox check) look at
            # what the last events wrote, now rather than at the next deadline.
            return c.Tick()
        waiter = self._waiter
        assert waiter is not None
        clock = self.host.clock
        cap = self.max_sleep
        if stop_at is not None:
            cap = min(cap, max(0.0, stop_at - clock.monotonic()))
        sleep = plan_sleep(clock, core_at, self.housekeeping.due_in(), cap, time.time())
        woke = waiter.wait(sleep.deadline, sleep.max_sleep)
        if woke.clock_set:
            log.debug("the kernel says the wall clock was set")
        try:
            return self.events.get_nowait()
        except queue.Empty:
            return c.Tick()

    def step(self, ev: object) -> None:
        core = self.host.core
        assert core is not None
        self.check_jump()
        self._untick = not isinstance(ev, c.Tick)
        if isinstance(ev, Call):
            self.serve_call(ev)
            return
        if isinstance(ev, Submitted):
            if not ev.future.set_running_or_notify_cancel():
                log.warning(
                    "command %s dropped: its caller gave up waiting", type(ev.event).__name__
                )
                return
            try:
                actions = core.handle(ev.event)
                self.executor.execute(actions)
                ev.future.set_result(actions)
            except Exception as exc:  # a bad command must never kill the core
                log.exception("command failed")
                ev.future.set_exception(exc)
            return
        if isinstance(ev, c.Tick):
            self._last_tick_mono = self.host.clock.monotonic()
        self.executor.execute(core.handle(ev))
        self.housekeeping.run()

    def check_jump(self) -> None:
        core = self.host.core
        assert core is not None
        wall, mono = self.host.clock.wall(), self.host.clock.monotonic()
        drift = (wall - self._last_wall) - (mono - self._last_mono)
        self._last_wall, self._last_mono = wall, mono
        if abs(drift) > JUMP_THRESHOLD_S:
            log.warning("wall clock jumped by %+.1f s", drift)
            # The kernel's sync state decides how the jump is judged: read it now, not later.
            self.executor.execute(core.handle(c.ClockSync(kernel_clock_synced())))
            self.executor.execute(core.handle(c.ClockJump(drift)))

    def serve_call(self, ev: Call) -> None:
        if not ev.future.set_running_or_notify_cancel():
            return
        try:
            ev.future.set_result(ev.fn())
        except Exception as exc:
            log.exception("core-thread call failed")
            ev.future.set_exception(exc)

    def refuse(self, ev: object) -> None:
        """While stopping: a command is refused (it never runs); a call is still served."""
        if isinstance(ev, Call):
            self.serve_call(ev)
        elif isinstance(ev, Submitted) and ev.future.set_running_or_notify_cancel():
            ev.future.set_exception(RuntimeError("the agent is stopping; nothing was done"))
