"""Link quality over a sliding window, and the hourly summary the county sees.

The window answers "how is the link now?" for the heartbeat and the link_degraded alarm:
availability (share of probe cycles in which the link was up), loss (share of individual attempts
that failed), RTT p50/p95 (nearest rank) and jitter (mean absolute difference between consecutive
RTTs, as RFC 3550 does before smoothing). The summary answers "how did the link behave while we
could not see the terminal?": the same figures per hour, plus lock time and signal for satellite.
Everything here is pure: callers pass monotonic times in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

MAX_SUMMARY_RTTS = 4096  # a summary period keeps at most this many RTTs (bounded memory)


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def jitter(rtts: list[float]) -> float | None:
    if len(rtts) < 2:
        return None
    return sum(abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False)) / (len(rtts) - 1)


@dataclass(frozen=True)
class WindowStats:
    """The window's figures at one moment; frozen, so it can be handed to other threads."""

    cycles: int = 0
    up_cycles: int = 0
    attempts: int = 0
    failures: int = 0
    availability: float | None = None
    loss: float | None = None
    rtt_p50_ms: float | None = None
    rtt_p95_ms: float | None = None
    jitter_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LinkWindow:
    """Attempts and cycles from the last ``seconds`` (monotonic), oldest dropped first.

    Owned by one thread (the monitor's); others read the frozen ``WindowStats`` it publishes.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._attempts: deque[tuple[float, bool, float | None]] = deque()
        self._cycles: deque[tuple[float, bool]] = deque()

    def add_cycle(self, mono: float, up: bool, attempts: list[tuple[bool, float | None]]) -> None:
        self._cycles.append((mono, up))
        for ok, rtt in attempts:
            self._attempts.append((mono, ok, rtt))
        self.expire(mono)

    def expire(self, mono: float) -> bool:
        """Drop what has left the window; True when anything did (the figures changed)."""
        limit = mono - self.seconds
        dropped = False
        while self._cycles and self._cycles[0][0] < limit:
            self._cycles.popleft()
            dropped = True
        while self._attempts and self._attempts[0][0] < limit:
            self._attempts.popleft()
            dropped = True
        return dropped

    def stats(self, mono: float) -> WindowStats:
        """Figures over the window ending at ``mono``. Not thread-safe: call from the owner only."""
        self.expire(mono)
        cycles = len(self._cycles)
        up_cycles = sum(1 for _, up in self._cycles if up)
        attempts = len(self._attempts)
        failures = sum(1 for _, ok, _ in self._attempts if not ok)
        rtts = [r for _, ok, r in self._attempts if ok and r is not None]
        ordered = sorted(rtts)
        return WindowStats(
            cycles=cycles,
            up_cycles=up_cycles,
            attempts=attempts,
            failures=failures,
            availability=up_cycles / cycles if cycles else None,
            loss=failures / attempts if attempts else None,
            rtt_p50_ms=percentile(ordered, 50),
            rtt_p95_ms=percentile(ordered, 95),
            jitter_ms=jitter(rtts),
        )


class SummaryBuilder:
    """Accumulates one summary period (an hour by default); ``build`` returns a plain dict.

    Satellite lock time is time-weighted: each DVB sample's lock state holds until the next
    sample, but never for more than ``hold_cap`` seconds, so a gap in sampling (agent down) is
    counted as unknown rather than as locked or unlocked.
    """

    def __init__(
        self, mode: str, start_wall: float, start_mono: float, hold_cap: float = 300.0
    ) -> None:
        self.mode = mode
        self.start_wall = start_wall
        self.start_mono = start_mono
        self.hold_cap = hold_cap
        self.cycles = 0
        self.up_cycles = 0
        self.attempts = 0
        self.failures = 0
        self.rtts: list[float] = []
        self.rtt_max: float | None = None
        self.outage_started: float | None = None
        self.longest_outage_s = 0.0
        self.lock_s = 0.0
        self.unlock_s = 0.0
        self.lock_samples = 0
        self._last_lock: tuple[float, bool] | None = None
        self.signal_dbm: list[float] = []
        self.signal_pct: list[float] = []
        self.cnr_db: list[float] = []
        self.post_ber_max: float | None = None
        self.datacast_rx_bytes = 0
        self.datacast_rx_errors = 0

    def add_cycle(self, mono: float, up: bool, attempts: list[tuple[bool, float | None]]) -> None:
        self.cycles += 1
        self.up_cycles += int(up)
        if not up and self.outage_started is None:
            self.outage_started = mono
        if up and self.outage_started is not None:
            self.longest_outage_s = max(self.longest_outage_s, mono - self.outage_started)
            self.outage_started = None
        for ok, rtt in attempts:
            self.attempts += 1
            if not ok:
                self.failures += 1
            elif rtt is not None:
                if len(self.rtts) < MAX_SUMMARY_RTTS:
                    self.rtts.append(rtt)
                self.rtt_max = rtt if self.rtt_max is None else max(self.rtt_max, rtt)

    def add_lock(self, mono: float, locked: bool | None) -> None:
        if self._last_lock is not None:
            then, was_locked = self._last_lock
            held = min(max(0.0, mono - then), self.hold_cap)
            if was_locked:
                self.lock_s += held
            else:
                self.unlock_s += held
        self._last_lock = (mono, bool(locked)) if locked is not None else None
        if locked is not None:
            self.lock_samples += 1

    def add_signal(
        self, dbm: float | None, pct: float | None, cnr_db: float | None, post_ber: float | None
    ) -> None:
        if dbm is not None:
            self.signal_dbm.append(dbm)
        if pct is not None:
            self.signal_pct.append(pct)
        if cnr_db is not None:
            self.cnr_db.append(cnr_db)
        if post_ber is not None:
            self.post_ber_max = (
                post_ber if self.post_ber_max is None else max(self.post_ber_max, post_ber)
            )

    def add_datacast(self, rx_bytes: int | None, rx_errors: int | None) -> None:
        self.datacast_rx_bytes += rx_bytes or 0
        self.datacast_rx_errors += rx_errors or 0

    def build(self, end_wall: float, end_mono: float) -> dict[str, Any]:
        self.add_lock(end_mono, None)  # close the last hold interval
        ordered = sorted(self.rtts)
        longest = self.longest_outage_s
        if self.outage_started is not None:
            longest = max(longest, end_mono - self.outage_started)
        out: dict[str, Any] = {
            "mode": self.mode,
            "period_start": self.start_wall,
            "period_end": end_wall,
            "seconds": round(end_mono - self.start_mono, 3),
            "cycles": self.cycles,
            "availability": round(self.up_cycles / self.cycles, 4) if self.cycles else None,
            "attempts": self.attempts,
            "failures": self.failures,
            "loss": round(self.failures / self.attempts, 4) if self.attempts else None,
            "rtt_p50_ms": _round(percentile(ordered, 50)),
            "rtt_p95_ms": _round(percentile(ordered, 95)),
            "rtt_max_ms": _round(self.rtt_max),
            "jitter_ms": _round(jitter(self.rtts)),
            "longest_outage_s": round(longest, 1),
        }
        if self.mode == "satellite" or self.lock_samples:
            known = self.lock_s + self.unlock_s
            out.update(
                {
                    "lock_fraction": round(self.lock_s / known, 4) if known > 0 else None,
                    "lock_seconds": round(self.lock_s, 1),
                    "unlock_seconds": round(self.unlock_s, 1),
                    "signal_dbm_avg": _round(_mean(self.signal_dbm)),
                    "signal_dbm_min": _round(min(self.signal_dbm) if self.signal_dbm else None),
                    "signal_pct_avg": _round(_mean(self.signal_pct)),
                    "cnr_db_avg": _round(_mean(self.cnr_db)),
                    "cnr_db_min": _round(min(self.cnr_db) if self.cnr_db else None),
                    "post_ber_max": self.post_ber_max,
                    "datacast_rx_bytes": self.datacast_rx_bytes,
                    "datacast_rx_errors": self.datacast_rx_errors,
                }
            )
        return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
