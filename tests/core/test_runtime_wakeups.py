"""The idle loop sleeps until the next real deadline, and the core decides exactly as before.

The policy (``agent.runtime.wakeups``) is checked against the loop it replaces: a simulated day
of courses, overlaps, an idle unload and a clock jump, with the core ticked every second (the old
loop) and only at the policy's deadlines (the new one), gives the same records and actions.
Then a real ``Runtime``: asleep when idle, woken at once by a post, kept awake for a watchdog.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from agent.domain import core as c
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from agent.runtime.wakeups import UNWATCHED_CLOCK_POLL_S, plan_sleep
from agent.testing.fakes import FakeClock
from tests.core.test_core import T0, Harness, item
from tests.helpers import apply_schedule, one_off, schedule, wait_for, write_config

MEDIA_S = 40.0


@dataclass
class FakePlayer:
    """Answers the core's player actions with timed reports, as libvlc would."""

    due: list[tuple[float, str, str, float]] = field(default_factory=list)  # (wall, kind, token)

    def take(self, actions: list[c.Action], now: float) -> None:
        for a in actions:
            if isinstance(a, c.Preroll):
                self.due.append((now + 0.2, "ready", a.token, 0.0))
            elif isinstance(a, c.Start | c.Play):
                lag = 0.05 if isinstance(a, c.Start) else 0.3
                self.due.append((now + lag, "playing", a.token, 0.0))
                self.due.append((now + lag + MEDIA_S, "ended", a.token, MEDIA_S))
            elif isinstance(a, c.Stop):
                self.due = [d for d in self.due if d[2] != a.token]
        self.due.sort()


def simulate(
    policy: str, until: float, jump_at: float | None = None, jump_s: float = 0.0
) -> Harness:
    """Run the core to ``until`` (wall), ticked by ``policy``: "every_second" or "deadlines"."""
    items = [
        item("a", 0),
        item("b", 3600),
        item("low", 3600 + 60, priority=1),  # starts while b plays: missed, overlapped
        item("c", 7200, slot=30),
        item("d", 4 * 3600),  # the clock jumps over it
        item("e", 6 * 3600),
    ]
    h = Harness(items, now=T0 - 30, idle_unload_s=600, stall_s=600)
    player = FakePlayer()
    jumped = jump_at is None
    player.take(h.tick(), h.clock.wall())
    while h.clock.wall() < until:
        now = h.clock.wall()
        if policy == "every_second":
            tick_at = h.core.next_wakeup()
        else:
            tick_at = min(h.core.next_deadline(), until)
        event_at = player.due[0][0] if player.due else float("inf")
        jump_due = float("inf") if jumped else jump_at
        at = min(tick_at, event_at, jump_due, until)
        h.clock.advance(max(0.0, at - now))
        if at == jump_due:
            jumped = True
            h.clock.jump(jump_s)
            player.take(h.feed(c.ClockJump(jump_s)), h.clock.wall())
        elif at == event_at:
            _, kind, token, pos = player.due.pop(0)
            player.take(h.player(kind, token, position=pos, length=pos), h.clock.wall())
        else:
            player.take(h.tick(), h.clock.wall())
    return h


def _summary(h: Harness) -> tuple[list, list]:
    records = sorted(
        (r.item_id, r.planned_start, r.outcome, r.reason, r.started_at is not None)
        for r in h.records.values()
    )
    kinds = [
        (type(a).__name__, getattr(a, "name", None), getattr(a, "kind", None))
        for a in h.log
        if not isinstance(a, c.Checkpoint)
    ]
    return records, kinds


def test_sleeping_until_deadlines_decides_as_ticking_every_second() -> None:
    until = T0 + 8 * 3600
    jump_at, jump_s = T0 + 3 * 3600 + 1800, 3600.0  # idle, an hour forward over d
    old = simulate("every_second", until, jump_at, jump_s)
    new = simulate("deadlines", until, jump_at, jump_s)
    assert _summary(new) == _summary(old)
    outcomes = {r[0]: r[2] for r in _summary(new)[0]}
    assert outcomes == {
        "a": "completed",
        "b": "completed",
        "low": "missed",
        "c": "completed",
        "d": "missed",
        "e": "completed",
    }
    assert len(new.of(c.UnloadPlayer)) == len(old.of(c.UnloadPlayer)) >= 3


def test_an_idle_core_sleeps_until_the_preroll_or_the_unload() -> None:
    h = Harness([item("a", 3600)], now=T0, idle_unload_s=600)
    now, mono = h.clock.wall(), h.clock.monotonic()
    assert h.core.next_deadline() == T0 + 3600 - 5  # its preroll
    h.core.player_loaded = True
    h.core.idle_since_mono = mono - 100
    assert abs(h.core.next_deadline() - (now + 500)) < 0.1  # the unload first


def test_a_busy_or_doubtful_core_keeps_the_one_second_pace() -> None:
    h = Harness([item("a", 0)], now=T0 - 2)
    h.tick()  # prerolled
    assert h.core.prerolled is not None
    assert h.core.next_deadline() <= h.clock.wall() + 1.0
    far = Harness([item("a", 3600)], now=T0, lkg=T0 + 86400, synced=False)
    assert far.core.clock_state() == "implausible"
    assert far.core.next_deadline() <= T0 + 1.0


def test_a_clock_the_kernel_does_not_watch_is_polled_each_second() -> None:
    fake = FakeClock(T0)
    sleep = plan_sleep(fake, T0 + 3600, None, 20.0, real_wall=5000.0)
    assert sleep.max_sleep == UNWATCHED_CLOCK_POLL_S
    assert sleep.deadline == 5000.0 + 3600  # converted to the kernel's clock
    assert plan_sleep(fake, float("inf"), 0.5, 20.0, 5000.0) == type(sleep)(None, 0.5)


# -- a real runtime --------------------------------------------------------------------------


class QuietPlayer:
    busy_since = None

    def preroll(self, token, mrl, start_at=0.0) -> None: ...  # noqa: ANN001
    def play(self, token, mrl, start_at=0.0) -> None: ...  # noqa: ANN001
    def start(self, token) -> None: ...  # noqa: ANN001
    def stop(self, token) -> None: ...  # noqa: ANN001
    def unload(self) -> None: ...
    def shutdown(self, timeout: float = 3.0) -> None: ...


def _idle_runtime(tmp_path) -> Runtime:
    cfg = load_config(write_config(tmp_path, schedule_poll_seconds=60))
    apply_schedule(cfg.state_dir, schedule(1, [one_off("later", time.time() + 3600, "x.wav")]))
    rt = Runtime(cfg, player=QuietPlayer())
    rt.open()
    return rt


def test_an_idle_runtime_sleeps_and_a_post_wakes_it_at_once(tmp_path) -> None:
    rt = _idle_runtime(tmp_path)
    t = threading.Thread(target=rt.run, kwargs={"duration": 30}, daemon=True)
    t.start()
    try:
        wait_for(rt.ready.is_set, 5, 0.02, "the loop to start")
        time.sleep(0.5)
        before = rt.loop.iterations
        time.sleep(2.0)
        assert rt.loop.iterations - before == 0, "an idle loop must not wake by itself"
        for _ in range(5):
            t0 = time.monotonic()
            assert rt.call(lambda: 7, timeout=5) == 7
            assert time.monotonic() - t0 < 0.1, "a call must wake the sleeping loop"
    finally:
        rt.request_stop()
        t.join(10)
    assert not t.is_alive(), "request_stop must wake the sleeping loop"


def test_keep_alive_wakes_an_idle_loop_for_the_watchdog(tmp_path) -> None:
    rt = _idle_runtime(tmp_path)
    ticks: list[float] = []
    rt.hooks_per_tick.append(lambda: ticks.append(time.monotonic()))
    rt.keep_alive(0.25)
    t = threading.Thread(target=rt.run, kwargs={"duration": 30}, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(ticks) >= 6, 5, 0.05, "keep-alive ticks")
        gaps = [b - a for a, b in zip(ticks[1:], ticks[2:], strict=False)]
        assert max(gaps) < 0.5, gaps
    finally:
        rt.request_stop()
        t.join(10)


def test_the_hooks_see_what_a_call_did_before_the_loop_sleeps(tmp_path) -> None:
    """The MQTT link's hook checks the outbox after each Tick: work done in a ``call`` (an
    alarm from the monitor) is ticked at once, not at the next deadline."""
    rt = _idle_runtime(tmp_path)
    seen: list[int] = []
    box = {"n": 0}
    rt.hooks_per_tick.append(lambda: seen.append(box["n"]))
    t = threading.Thread(target=rt.run, kwargs={"duration": 30}, daemon=True)
    t.start()
    try:
        wait_for(rt.ready.is_set, 5, 0.02, "the loop to start")
        time.sleep(0.3)
        rt.call(lambda: box.update(n=1), timeout=5)
        wait_for(lambda: 1 in seen, 0.5, 0.01, "a tick after the call")
    finally:
        rt.request_stop()
        t.join(10)
