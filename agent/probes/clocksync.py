"""Kernel clock sync state through adjtimex(2), read-only (modes = 0).

Terminals often have no RTC and boot in 1970 or at the last shutdown time; NTP may be blocked on a
satellite link for days. The kernel knows whether anything disciplines the clock: STA_UNSYNC set,
state TIME_ERROR, or a maximum error past NTP's 16 s phase limit mean "do not trust the wall
clock". This machine itself reports unsynced, as many terminals will.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.probes.base import Sample
from agent.schema import between

STA_PLL = 0x0001
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_STATES = {0: "ok", 1: "insert", 2: "delete", 3: "oop", 4: "wait", 5: "error"}
TIME_ERROR = 5
MAXERROR_LIMIT_US = 16_000_000  # NTP_PHASE_LIMIT: past this the kernel itself calls it unsynced

_long = ctypes.c_long


class Timex(ctypes.Structure):
    """glibc's struct timex (long-sized fields, so it matches 32- and 64-bit ABIs alike)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", _long),
        ("freq", _long),
        ("maxerror", _long),
        ("esterror", _long),
        ("status", ctypes.c_int),
        ("constant", _long),
        ("precision", _long),
        ("tolerance", _long),
        ("time_sec", _long),
        ("time_usec", _long),
        ("tick", _long),
        ("ppsfreq", _long),
        ("jitter", _long),
        ("shift", ctypes.c_int),
        ("stabil", _long),
        ("jitcnt", _long),
        ("calcnt", _long),
        ("errcnt", _long),
        ("stbcnt", _long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
        ("_slack", ctypes.c_byte * 64),  # room in case a libc's struct is larger than declared
    ]


AdjtimexFn = Callable[[Any], int]


_libc: ctypes.CDLL | None = None


def libc_adjtimex(buf: Timex) -> int:
    """Call the C library's adjtimex; the library handle is loaded once (find_library forks)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    ret = _libc.adjtimex(ctypes.byref(buf))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


@dataclass
class ClockSyncProbeConfig:
    enabled: bool = True
    interval_seconds: float = field(default=60.0, metadata={"check": between(1, 86400)})
    timeout_seconds: float = field(default=1.0, metadata={"check": between(0.1, 60)})


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


class ClockSyncProbe:
    name = "clocksync"

    def __init__(self, cfg: ClockSyncProbeConfig, *, adjtimex: AdjtimexFn = libc_adjtimex) -> None:
        self.cfg = cfg
        self.interval = cfg.interval_seconds
        self.timeout = cfg.timeout_seconds
        self.adjtimex = adjtimex

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
