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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.runtime.files import atomic_write


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


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


def kernel_clock_synced(adjtimex: AdjtimexFn = libc_adjtimex) -> bool | None:
    """True/False from a read-only adjtimex (modes = 0), None where it cannot be asked."""
    tx = Timex()
    try:
        state = adjtimex(tx)
    except (OSError, AttributeError):
        return None
    return not (state == TIME_ERROR or tx.status & STA_UNSYNC or tx.maxerror > MAXERROR_LIMIT_US)


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

    def save(self, value: float) -> None:
        """Write ``value`` (the core decides by ``next_lkg``; a synced clock may lower it)."""
        if value == self.value:
            return
        atomic_write(self.path, f"{value:.3f}\n".encode())
        self.value = value
