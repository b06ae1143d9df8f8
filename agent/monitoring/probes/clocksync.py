"""Kernel clock sync state through adjtimex(2), read-only (modes = 0).

Terminals often have no RTC and boot in 1970 or at the last shutdown time; NTP may be blocked on a
satellite link for days. The kernel knows whether anything disciplines the clock: STA_UNSYNC set,
state TIME_ERROR, or a maximum error past NTP's 16 s phase limit mean "do not trust the wall
clock". This machine itself reports unsynced, as many terminals will.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# The kernel interface itself lives in agent.adapters.kernel_clock (the core reads the same flag).
from agent.adapters.kernel_clock import (  # noqa: F401 - re-exported for the probe and its tests
    MAXERROR_LIMIT_US,
    STA_NANO,
    STA_PLL,
    STA_UNSYNC,
    TIME_ERROR,
    TIME_STATES,
    AdjtimexFn,
    Timex,
    libc_adjtimex,
)
from agent.domain.health import Verdict
from agent.domain.schema import between
from agent.monitoring.probes.base import ProbeContext, Sample
from agent.monitoring.probes.registry import Cadence, Judging, Severity, register


@dataclass
class ClockSyncProbeConfig:
    """No keys of its own."""


@dataclass
class ClockUnsyncedAlarm:
    """Unsynced for this long (many terminals never sync; the alarm says so once)."""

    after_minutes: float = field(default=30.0, metadata={"check": between(0, 7 * 24 * 60)})
    clear_after: int = field(default=2, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"

    @property
    def raise_after_seconds(self) -> float:
        return self.after_minutes * 60.0


@dataclass
class ClockSyncSample(Sample):
    synced: bool | None = None
    state: str | None = None
    status: int | None = None
    maxerror_us: int | None = None
    esterror_us: int | None = None
    offset_us: float | None = None
    freq_ppm: float | None = None
    tai: int | None = None
    reason: str | None = None


def interpret(ret: int, tx: Timex, sample: ClockSyncSample) -> None:
    sample.state = TIME_STATES.get(ret, str(ret))
    sample.status = tx.status
    sample.maxerror_us = tx.maxerror
    sample.esterror_us = tx.esterror
    sample.offset_us = tx.offset / 1000.0 if tx.status & STA_NANO else float(tx.offset)
    sample.freq_ppm = tx.freq / 65536.0
    sample.tai = tx.tai
    reasons = []
    if tx.status & STA_UNSYNC:
        reasons.append("STA_UNSYNC set")
    if ret == TIME_ERROR:
        reasons.append("clock state TIME_ERROR")
    if tx.maxerror >= MAXERROR_LIMIT_US:
        reasons.append(f"max error {tx.maxerror / 1e6:.0f} s")
    sample.synced = not reasons
    sample.reason = "; ".join(reasons) or None


def verdicts(s: ClockSyncSample, ctx: Judging) -> dict[str, Verdict]:
    bad = None if s.synced is None else not s.synced
    return {"clock_unsynced": Verdict(bad, {"reason": s.reason, "maxerror_us": s.maxerror_us})}


def summary(s: ClockSyncSample, mode: str) -> dict[str, Any]:
    return {} if s.synced is None else {"clock": "synced" if s.synced else "unsynced"}


@register(
    "clocksync",
    config=ClockSyncProbeConfig,
    sample=ClockSyncSample,
    cadence=Cadence(interval=60, timeout=1, quick=True),
    alarms={"clock_unsynced": ClockUnsyncedAlarm},
    verdicts=verdicts,
    summary=summary,
)
class ClockSyncProbe:
    def __init__(self, cfg: ClockSyncProbeConfig, *, adjtimex: AdjtimexFn = libc_adjtimex) -> None:
        self.cfg = cfg
        self.adjtimex = adjtimex

    @classmethod
    def create(cls, cfg: ClockSyncProbeConfig, ctx: ProbeContext) -> ClockSyncProbe:
        return cls(cfg, adjtimex=ctx.roots.adjtimex)

    def collect(self, deadline: float) -> ClockSyncSample:
        sample = ClockSyncSample(at=time.time())
        tx = Timex()
        tx.modes = 0  # read only: this probe must never steer the clock
        try:
            ret = self.adjtimex(tx)
        except OSError as exc:
            sample.ok, sample.error = False, f"adjtimex failed: {exc.strerror or exc}"
            return sample
        interpret(ret, tx, sample)
        return sample
