"""When the core thread must next wake: the policy that lets an idle agent sleep.

The core's own ``next_wakeup()`` answers "at most a second from now": while something plays,
its timers (checkpoints, start timeouts, stalls, retries, the duration cap) need that pace. An
idle core needs none of it: nothing changes until the next slot's preroll or start, the idle
player's unload, or an event. So the loop sleeps until the earliest of those, and until its own
housekeeping (held writes, clock sync check, inbox poll, last-known-good save) is due, woken
early by any event or by the kernel when the wall clock is set.

The one-second pace is kept wherever the core's state may change with time alone in ways not
listed here: a session playing or prerolled, a clock judged implausible (it becomes plausible
again when the wall clock passes the last-known-good time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.adapters.kernel_clock import SystemClock
from agent.domain import core as c
from agent.runtime.ports import Clock

# A clock the kernel does not watch (a test's offset file, a fake clock) is polled this often
# for jumps, as before the loop could sleep.
UNWATCHED_CLOCK_POLL_S = 1.0
UPCOMING_LOOKED_AT = 8  # occurrences looked at for the next deadline (a few may have started)
PAST_STRICT_S = 0.01  # the core compares with ">": wake a little after the bound, not on it


def kernel_watches(clock: Clock) -> bool:
    """True when ``clock.wall()`` is the kernel's CLOCK_REALTIME, whose sets a timerfd sees."""
    return type(clock) is SystemClock


def core_deadline(core: c.Core, now: float, mono: float) -> float:
    """Wall time (``clock.wall()`` scale) at which the core next needs a Tick."""
    soon = core.next_wakeup()
    if core.current is not None or core.prerolled is not None:
        return soon
    if core.clock_state() == "implausible":
        return soon
    best = math.inf
    if core.player_loaded:
        unload_in = core.idle_since_mono + core.s.idle_unload_s - mono
        best = now + max(0.0, unload_in) + PAST_STRICT_S
    for occ in core.upcoming(UPCOMING_LOOKED_AT):
        if occ.start > now:
            preroll = occ.start - core.s.preroll_s
            return min(best, preroll if preroll > now else occ.start)
        # Begun but not handled (on hold, say): the core decides it at its grace or its end.
        for t in (occ.start + core.s.grace_s + PAST_STRICT_S, occ.end + PAST_STRICT_S):
            if t > now:
                best = min(best, t)
    return best


@dataclass(frozen=True)
class Sleep:
    """One wait of the loop: a wall-clock deadline for the timerfd, a cap in monotonic time."""

    deadline: float | None  # time.time() scale; None: no wall-clock deadline
    max_sleep: float  # seconds


def plan_sleep(
    clock: Clock,
    core_at: float,
    housekeeping_in: float | None,
    max_sleep: float,
    real_wall: float,
) -> Sleep:
    """Turn the core's deadline (``clock`` scale) and the housekeeping's (seconds from now) into
    one wait. ``real_wall`` is ``time.time()`` now."""
    cap = max_sleep if housekeeping_in is None else min(max_sleep, max(0.0, housekeeping_in))
    if math.isinf(core_at):
        deadline = None
    elif kernel_watches(clock):
        deadline = core_at
    else:
        deadline = real_wall + max(0.0, core_at - clock.wall())
    if not kernel_watches(clock):
        cap = min(cap, UNWATCHED_CLOCK_POLL_S)
    return Sleep(deadline, cap)
