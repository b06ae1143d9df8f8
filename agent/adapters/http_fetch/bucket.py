"""A token bucket that caps the average receive rate (pure: the caller passes the time).

Why a debt model (tokens may go negative, the caller sleeps the debt off): reads arrive in
chunks of any size, so paying after each read keeps the long-run average at the cap exactly,
whatever the chunk size; ``burst`` bounds how far an idle spell lets the rate run over it.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` bytes per second; ``take(n, now)`` returns how long to wait before the next read."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0:
            raise ValueError(f"token bucket: rate must be > 0 bytes/s, got {rate!r}")
        self.rate = rate
        self.burst = max(0.0, burst)
        self.tokens = 0.0
        self.stamp = now

    def take(self, n: int, now: float) -> float:
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate) - n
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


def kbps_to_bytes(kbps: float) -> float:
    """1 kbps = 1000 bits/s = 125 bytes/s (network units, not KiB)."""
    return kbps * 125.0
