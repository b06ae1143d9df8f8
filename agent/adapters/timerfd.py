"""Sleep until a wall-clock deadline, or until the wall clock is set, with the kernel's help.

Why: the core loop must start courses at wall-clock times, notice when NTP (or a person) sets
the clock, and otherwise sleep. Polling the wall clock every second keeps an idle terminal awake;
a plain sleep until a wall-clock target never fires when the clock jumps by years. A ``timerfd`` on
``CLOCK_REALTIME`` armed with ``TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET`` does both: it expires
at the absolute wall-clock time, and the kernel wakes it (its ``read`` fails with ``ECANCELED``)
whenever the clock is set (``clock_settime``, ``settimeofday``, ``adjtimex`` with
``ADJ_SETOFFSET``). Slewing (NTP's gradual correction) is not a set and wakes nothing.

Python 3.11 has no ``os.timerfd_*`` (3.13 has), so this module calls libc through ctypes. libc is
loaded once, on first use, so importing this module costs nothing.

:class:`LoopWaiter` is what a core loop sleeps on: the timer, plus a wake-up pipe that other
threads (``wake()``) and signal handlers (``signal.set_wakeup_fd(waiter.wakeup_fd)``) write to.
One ``wait(deadline, max_sleep)`` returns as soon as any of these happens and says which.

One window remains: a clock set that lands between a ``wait`` returning and the next one arming
the timer is not reported by the timer (arming records the clock's current offset). ``wait``
reads any pending cancellation before it re-arms, which leaves microseconds; a loop that must
never miss a jump also compares wall and monotonic time on every wake-up, which is cheap.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import selectors
import time
from dataclasses import dataclass
from functools import cache

CLOCK_REALTIME = 0
TFD_TIMER_ABSTIME = 1 << 0
TFD_TIMER_CANCEL_ON_SET = 1 << 1
# timerfd_create's flags are the O_ flags of this architecture (they differ on a few).
TFD_CLOEXEC = os.O_CLOEXEC
TFD_NONBLOCK = os.O_NONBLOCK

# With no deadline the timer is still armed (a set cancels only an armed absolute timer, and a
# far deadline keeps the code path single): a year ahead, re-armed on every wait.
NO_DEADLINE_AHEAD_S = 365 * 86400.0


class _Timespec(ctypes.Structure):
    # time_t and long are both C long in glibc's default ABI on Linux (64- and 32-bit).
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


@cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once. ``CDLL(None)`` is the process's own symbol table, which holds
    libc's functions on glibc and musl alike, with no ``find_library`` (it runs ldconfig)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.timerfd_create.restype = ctypes.c_int
    libc.timerfd_settime.argtypes = [
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(_Itimerspec),
        ctypes.POINTER(_Itimerspec),
    ]
    libc.timerfd_settime.restype = ctypes.c_int
    return libc


def _oserror(call: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}")


def _timespec(seconds: float) -> _Timespec:
    """An absolute CLOCK_REALTIME time; never zero, which would disarm the timer instead."""
    whole = math.floor(seconds)
    nanos = min(999_999_999, max(0, round((seconds - whole) * 1e9)))
    if whole <= 0 and nanos == 0:
        whole, nanos = 0, 1  # "already passed": expire at once
    return _Timespec(whole, nanos)


class WallClockTimer:
    """A non-blocking timerfd on CLOCK_REALTIME that also reports every set of the clock.

    Usable in ``select``/``epoll`` through :meth:`fileno`: it becomes readable when the deadline
    passes or the clock is set; :meth:`read` then says which.
    """

    def __init__(self) -> None:
        fd = _libc().timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK)
        if fd < 0:
            raise _oserror("timerfd_create(CLOCK_REALTIME)")
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def arm(self, deadline: float) -> None:
        """Expire at ``deadline`` (seconds since the epoch, as ``time.time()``), or at once if it
        has passed. Replaces any earlier deadline."""
        spec = _Itimerspec(_Timespec(0, 0), _timespec(deadline))
        flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
        if _libc().timerfd_settime(self._fd, flags, ctypes.byref(spec), None) != 0:
            raise _oserror("timerfd_settime")

    def read(self) -> str | None:
        """``"expired"``, ``"clock_set"``, or None when neither happened since the last read."""
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno == errno.ECANCELED:
                return "clock_set"
            raise
        return "expired"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> WallClockTimer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Wakeup:
    """Why :meth:`LoopWaiter.wait` returned; several can be true at once, none on ``max_sleep``."""

    deadline: bool = False
    woken: bool = False
    clock_set: bool = False

    @property
    def timed_out(self) -> bool:
        return not (self.deadline or self.woken or self.clock_set)


class LoopWaiter:
    """What a core loop sleeps on: a wall-clock deadline, work from other threads, a clock set.

    ``wake()`` may be called from any thread, any number of times (wake-ups coalesce). The write
    end of the wake-up pipe, :attr:`wakeup_fd`, is non-blocking and may be given to
    ``signal.set_wakeup_fd`` so that a signal wakes the loop without the handler touching a lock.
    """

    def __init__(self) -> None:
        self.timer = WallClockTimer()
        self._rfd, self.wakeup_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.timer, selectors.EVENT_READ, "timer")
        self._selector.register(self._rfd, selectors.EVENT_READ, "wake")

    def wake(self) -> None:
        """Make the current or next :meth:`wait` return at once (thread-safe, never blocks)."""
        try:
            os.write(self.wakeup_fd, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already: one is as good as many

    def wait(self, deadline: float | None, max_sleep: float | None = None) -> Wakeup:
        """Sleep until ``deadline`` (wall clock, ``time.time()`` scale; None = no deadline), a
        ``wake()``, a set of the wall clock, or ``max_sleep`` seconds of monotonic time (None =
        no limit; a watchdog that wants a sign of life sets one)."""
        clock_set = self.timer.read() == "clock_set"  # a set since the last wait
        self.timer.arm(time.time() + NO_DEADLINE_AHEAD_S if deadline is None else deadline)
        ready = set() if clock_set else {key.data for key, _ in self._selector.select(max_sleep)}
        woken = "wake" in ready and self._drain()
        fired = None
        if "timer" in ready or clock_set:
            fired = self.timer.read()
        return Wakeup(
            deadline=fired == "expired" or (deadline is not None and time.time() >= deadline),
            woken=woken,
            clock_set=clock_set or fired == "clock_set",
        )

    def _drain(self) -> bool:
        got = False
        while True:
            try:
                chunk = os.read(self._rfd, 4096)
            except BlockingIOError:
                return got
            if not chunk:
                return got
            got = True

    def close(self) -> None:
        self._selector.close()
        self.timer.close()
        os.close(self._rfd)
        os.close(self.wakeup_fd)

    def __enter__(self) -> LoopWaiter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def sleep_until(deadline: float, max_sleep: float | None = None) -> Wakeup:
    """Block the calling thread until the wall clock reaches ``deadline`` or is set."""
    with LoopWaiter() as waiter:
        return waiter.wait(deadline, max_sleep)
