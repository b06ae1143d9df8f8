"""systemd readiness and watchdog notifications, without libsystemd.

The protocol (sd_notify(3)): the service manager passes a datagram socket address in
``$NOTIFY_SOCKET``; the service sends newline-separated ``KEY=value`` assignments to it, one
datagram per notification. An address starting with ``@`` is a Linux abstract socket (the ``@``
stands for a leading NUL byte). With ``$NOTIFY_SOCKET`` unset (run by hand, in tests, under another
init) every call is a cheap no-op that returns False.

The watchdog (``WatchdogSec=`` in the unit) is only useful if a ping means "the core is doing its
work", not merely "some thread of the process is alive". :class:`WatchdogGate` ties the two: the
core loop calls :meth:`WatchdogGate.progress` every time it really completes an iteration, and the
pinger thread only pings while that progress is recent. A hung core therefore stops the pings and
systemd restarts the process.

Sending never raises and never blocks: a notification that cannot be delivered is
reported as False and the caller carries on (playback matters more than telling systemd about it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

# A notification is a handful of short assignments; anything longer is a bug in the caller.
MAX_MESSAGE_BYTES = 4096
# STATUS= is shown by `systemctl status`; keep it to one readable line.
MAX_STATUS_CHARS = 200


def _address(env: Mapping[str, str]) -> str | bytes | None:
    """The socket address from $NOTIFY_SOCKET, or None when unset or not a usable AF_UNIX address."""
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return None
    if raw.startswith("@"):
        if len(raw) < 2:
            return None
        # Abstract namespace: a leading NUL, the rest is the name (not NUL-terminated).
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    # systemd >= 254 also knows vsock:CID:PORT (for VMs); a terminal never sees it.
    return None


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification (for example ``"READY=1"``). True if the datagram was sent."""
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    payload = state.encode("utf-8", "replace")
    if not payload or len(payload) > MAX_MESSAGE_BYTES:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Non-blocking: a full queue (a manager that is not reading) gives EAGAIN at once
            # instead of stalling the core thread; the next ping or status simply tries again.
            sock.setblocking(False)
            sock.sendto(payload, address)
    except OSError:
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would start a new assignment: "STATUS=x\nREADY=1" must not become readiness.
    cleaned = " ".join(text.split())
    if len(cleaned) > MAX_STATUS_CHARS:
        cleaned = cleaned[: MAX_STATUS_CHARS - 3] + "..."
    return cleaned


def ready(status_text: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd start-up is complete (store open, schedule loaded)."""
    message = "READY=1"
    if status_text:
        message += "\nSTATUS=" + _one_line(status_text)
    return notify(message, env)


def watchdog(env: Mapping[str, str] | None = None) -> bool:
    """One keep-alive ping. Send it only through a :class:`WatchdogGate` that says so."""
    return notify("WATCHDOG=1", env)


def stopping(status_text: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd a clean shutdown has begun (so a slow stop is not taken for a hang)."""
    message = "STOPPING=1"
    if status_text:
        message += "\nSTATUS=" + _one_line(status_text)
    return notify(message, env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    """Free-form one-line status, shown by ``systemctl status station-agent``."""
    return notify("STATUS=" + _one_line(text), env)


def extend_timeout(seconds: float, env: Mapping[str, str] | None = None) -> bool:
    """Ask for more start (or stop) time, e.g. while a large store is checked on a slow SD card."""
    usec = max(1, int(seconds * 1_000_000))
    return notify(f"EXTEND_TIMEOUT_USEC={usec}", env)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog interval in seconds that systemd expects, or None if the watchdog is off.

    systemd sets ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``; a PID other than ours means the
    variables were inherited from a parent and are not addressed to this process.
    """
    env = os.environ if env is None else env
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid_text = env.get("WATCHDOG_PID", "")
    if pid_text:
        try:
            pid = int(pid_text)
        except ValueError:
            return None
        if pid != os.getpid():
            return None
    return usec / 1_000_000


class WatchdogGate:
    """Decides whether a watchdog ping is deserved. Pure logic; the clock is injected.

    ``interval`` is the watchdog interval (seconds). The core calls :meth:`progress` after each
    completed iteration; it must iterate at least every ``interval / 2`` even when idle (a timer
    tick is enough). :meth:`should_ping` is True only if progress was seen within the last
    ``interval / 2``. With pings every ``interval / 4`` (:attr:`ping_period`), systemd notices a hung
    core at most about ``1.5 * interval`` after its last progress.

    Thread-safety: :meth:`progress` (core thread) and :meth:`should_ping` (pinger thread) only
    exchange one float; a lock keeps it obviously correct at negligible cost.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not interval > 0:
            raise ValueError("watchdog interval must be positive")
        self.interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._last_progress: float | None = None

    @property
    def window(self) -> float:
        """How recent the last progress must be for a ping."""
        return self.interval / 2

    @property
    def ping_period(self) -> float:
        """How often the pinger should ask."""
        return self.interval / 4

    def progress(self, now: float | None = None) -> None:
        """The core completed an iteration."""
        t = self._clock() if now is None else now
        with self._lock:
            if self._last_progress is None or t > self._last_progress:
                self._last_progress = t

    def since_progress(self, now: float | None = None) -> float | None:
        """Seconds since the last progress, or None before the first one."""
        t = self._clock() if now is None else now
        with self._lock:
            last = self._last_progress
        return None if last is None else max(0.0, t - last)

    def should_ping(self, now: float | None = None) -> bool:
        age = self.since_progress(now)
        return age is not None and age <= self.window


class WatchdogPinger:
    """A small daemon thread: every ``gate.ping_period`` it pings if the gate allows it.

    When the gate refuses, it sends (once per stall) a STATUS line saying how long the core has been
    stuck, so ``systemctl status`` explains the coming restart. ``send`` and ``send_status`` are
    injectable for tests.
    """

    def __init__(
        self,
        gate: WatchdogGate,
        send: Callable[[], bool] = watchdog,
        send_status: Callable[[str], bool] = status,
    ) -> None:
        self.gate = gate
        self._send = send
        self._send_status = send_status
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stalled = False
        self.pings = 0

    def tick(self, now: float | None = None) -> bool:
        """One decision; returns True if a ping was sent. Called by the thread, or by tests."""
        if self.gate.should_ping(now):
            self._stalled = False
            if self._send():
                self.pings += 1
                return True
            return False
        age = self.gate.since_progress(now)
        if age is not None and not self._stalled:
            self._stalled = True
            self._send_status(f"core loop stalled for {age:.0f}s; watchdog pings withheld")
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.gate.ping_period):
            self.tick()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
