"""Reconnect delays: exponential growth with full jitter.

paho's own reconnect doubles 1 s -> 120 s with no jitter, so after a county broker restart every
terminal comes back in the same second, again and again. Here attempt ``n`` waits a uniformly
random time in ``[0, min(cap, base * 2**n))`` ("full jitter"): the fleet spreads over the whole
window, and the window grows while the broker stays away. Pure: the random source is injected.
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
        self.attempt = 0

    def window(self, attempt: int | None = None) -> float:
        n = self.attempt if attempt is None else attempt
        return min(self.cap, self.base * (2.0 ** min(n, 60)))

    def next_delay(self) -> float:
        """The wait before the next attempt; each call widens the window for the one after."""
        delay = self.rand() * self.window()
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
