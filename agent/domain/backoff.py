"""Reconnect delays: full jitter over a window that follows how long the trouble has lasted.

paho's own reconnect doubles 1 s -> 120 s with no jitter, so after a county broker restart every
terminal comes back in the same second, again and again. Here each attempt waits a uniformly
random time in ``[0, window)`` ("full jitter"), with

    window = min(cap, max(base, 2 x seconds since the link was last known good))

The window grows like an exponential back-off while the broker stays away (each wait is on
average as long as the trouble so far, so attempts grow only with the logarithm of the outage),
but, unlike a per-attempt doubling, every terminal of the fleet has the same window: one that was
unlucky early in a short outage is not left with a long wait after the broker is back. After a
restart of a few seconds the fleet returns spread evenly over ``base`` seconds; after an outage of
T seconds, over about 2T (at most ``cap``). Measured in docs/performance.md.

"Last known good" is the end of the last connection that stayed up long enough
(``stable_after_seconds``): a connection the broker drops right after accepting it (two terminals
with one client id) does not reset the window, so such a pair backs off instead of fighting.

Pure: the random source is injected, time is passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, base: float, cap: float, rand: Callable[[], float] = random.random) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.rand = rand
        self.attempt = 0  # attempts since the link was last good (a statistic)
        self.last_window = base

    def window(self, trouble_s: float) -> float:
        return min(self.cap, max(self.base, 2.0 * max(0.0, trouble_s)))

    def next_delay(self, trouble_s: float) -> float:
        """The wait before the next attempt, ``trouble_s`` after the link was last good."""
        self.last_window = self.window(trouble_s)
        self.attempt += 1
        return self.rand() * self.last_window

    def reset(self) -> None:
        self.attempt = 0
        self.last_window = self.base
