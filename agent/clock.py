"""Time: the injected clock, the kernel's sync state and the last-known-good time.

Terminals often have no RTC: at boot the wall clock may say 1970 or last month, then jump when
NTP syncs. The agent therefore (1) reads whether the kernel considers the clock synchronised,
(2) keeps a last-known-good time on disk, and (3) treats a clock earlier than that, or earlier
than this release, as implausible: it holds wall-clock slots and says so in every record.
Durations always come from the monotonic clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent import RELEASE_DATE
from agent.store import atomic_write

SYNCED = "synced"
UNSYNCED = "unsynced"
IMPLAUSIBLE = "implausible"

RELEASE_EPOCH = dt.datetime.fromisoformat(RELEASE_DATE).replace(tzinfo=dt.UTC).timestamp()
# How far below the last-known-good time the clock may read before we call it implausible:
# the LKG is written every few minutes, so the real time is always a bit past it.
LKG_TOLERANCE_S = 120.0


class Clock(Protocol):
    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand; ``jump`` moves the wall clock only (as NTP does)."""

    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self._wall = wall
        self._mono = mono

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def jump(self, seconds: float) -> None:
        self._wall += seconds


class OffsetClock(SystemClock):
    """The system clock shifted by an offset read from a file (tests of a whole agent process).

    The file holds a number of seconds; it is re-read at most every 0.2 s so a test can jump
    the clock of a running agent. Enabled only through an environment variable, never config.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0.0
        self._read_at = -1.0

    def wall(self) -> float:
        now = time.monotonic()
        if now - self._read_at > 0.2:
            self._read_at = now
            try:
                self._offset = float(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                pass
        return time.time() + self._offset


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only the leading fields are read, the tail is padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


STA_UNSYNC = 0x0040
TIME_ERROR = 5


def kernel_clock_synced() -> bool | None:
    """True/False from adjtimex(modes=0) (read-only), None where it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return not (state == TIME_ERROR or tx.status & STA_UNSYNC)


@dataclass
class LastKnownGood:
    """A wall time known to have been right, kept in a small file (written every few minutes)."""

    path: Path
    value: float = 0.0

    def load(self) -> float:
        try:
            self.value = float(self.path.read_text().strip())
        except (OSError, ValueError):
            self.value = 0.0
        return self.value

    def save(self, wall: float) -> None:
        if wall <= self.value:
            return
        atomic_write(self.path, f"{wall:.3f}\n".encode())
        self.value = wall


def plausible(wall: float, lkg: float) -> bool:
    return wall >= RELEASE_EPOCH and wall >= lkg - LKG_TOLERANCE_S


def clock_state(wall: float, lkg: float, synced: bool | None) -> str:
    if not plausible(wall, lkg):
        return IMPLAUSIBLE
    return SYNCED if synced else UNSYNCED


def boot_id(proc_root: Path = Path("/proc")) -> str:
    try:
        return (proc_root / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"unknown-{os.getpid()}"
