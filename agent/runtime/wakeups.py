"""When the core thread must next wake: the policy that lets an idle agent sleep.

The core says when it next needs a Tick (``Core.next_deadline()``: a second away while a course
plays, else the next preroll, start or unload, or never). The loop sleeps until the earliest of
that and its own housekeeping (held writes, clock sync check, inbox poll, last-known-good save),
woken early by any event or by the kernel when the wall clock is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.adapters.kernel_clock import SystemClock
from agent.runtime.ports import Clock

# A clock the kernel does not watch (a test's offset file, a fake clock) is polled this often
# for jumps, as before the loop could sleep.
UNWATCHED_CLOCK_POLL_S = 1.0
PAST_STRICT_S = 0.01  # deadlines compared with ">": wake a little after the bound, not on it


def kernel_watches(clock: Clock) -> bool:
    """True when ``clock.wall()`` is the kernel's CLOCK_REALTIME, whose sets a timerfd sees."""
    return type(clock) is SystemClock


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
