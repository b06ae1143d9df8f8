"""``station-agent``: the daemon's entry point (what systemd runs).

Threads and signals: the core loop runs on its own thread ("core"); the main thread only waits for
signals. A Python signal handler runs on the main thread between two bytecodes of whatever it was
doing, so a handler that took a lock (``queue.Queue.put``, ``Event.set``, a logging stream) could
deadlock on one the interrupted code already holds. Here the handler does nothing at all: the C
level writes the signal's number to a pipe (``signal.set_wakeup_fd``), and the main thread, blocked
on that pipe and holding nothing, turns it into a normal call: SIGTERM and SIGINT stop the agent
(``Runtime.request_stop``), SIGHUP re-reads the schedules. Once the agent has stopped, those signals
are ignored, so a burst that outlives the stop cannot turn a clean exit into a kill.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from agent import __version__
from agent.adapters import sdnotify
from agent.adapters.control_socket import ControlServer
from agent.adapters.kernel_clock import OffsetClock, SystemClock
from agent.adapters.sqlite.errors import StoreError
from agent.monitoring.wiring import start_monitor
from agent.runtime.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from agent.runtime.content_start import start_content
from agent.runtime.loop import Runtime

# Tests of a whole agent process shift its wall clock through this file (see OffsetClock).
CLOCK_OFFSET_ENV = "STATION_AGENT_CLOCK_OFFSET_FILE"

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNALS = (signal.SIGHUP,)
CORE_DONE = (
    0  # the byte the core thread writes to the pipe when its loop has ended (no signal is 0)
)

# The idle core loop wakes at least this often, as a share of the watchdog interval.
KEEP_ALIVE_SHARE = 1 / 3

log = logging.getLogger("agent")


def _ignore_frame(_signum: int, _frame: object) -> None:
    """The Python-level handler: nothing. Its only job is to exist, so the C handler writes the
    signal's number to the wake-up pipe instead of taking the default action."""


class SignalPipe:
    """Signals as bytes on a non-blocking pipe, read by the main thread (see the module doc)."""

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS + RELOAD_SIGNALS) -> None:
        self.signals = signals
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        for sig in signals:
            signal.signal(sig, _ignore_frame)

    def post(self, code: int) -> None:
        """Write one byte from any thread (a full pipe already holds a wake-up: nothing lost)."""
        try:
            os.write(self._w, bytes([code]))
        except BlockingIOError:
            pass

    def wait(self, timeout: float | None = None) -> list[int]:
        """Block until something is on the pipe; the codes read, each once, in arrival order."""
        select.select([self._r], [], [], timeout)
        codes: list[int] = []
        while True:
            try:
                chunk = os.read(self._r, 512)
            except BlockingIOError:
                break
            if not chunk:
                break
            codes += [b for b in chunk if b not in codes]
        return codes

    def close(self) -> None:
        """Ignore these signals from now on (also during interpreter exit), release the pipe."""
        for sig in self.signals:
            signal.signal(sig, signal.SIG_IGN)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._r)
        os.close(self._w)


def setup_logging(level: str) -> None:
    # Under systemd, journald adds its own timestamps; elsewhere print them.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stderr)


def start_mqtt(cfg: Any, runtime: Runtime) -> Any:
    """The MQTT link when configured. paho (with ssl and urllib) costs about 10 MB of RSS, so an
    offline terminal (satellite with no return path) never imports it."""
    if cfg.mqtt is None:
        from agent.adapters.mqtt.alarm import install_outbox_alarm

        install_outbox_alarm(runtime, None)
        logging.getLogger("agent").info(
            "no mqtt section: running offline, everything stays in the outbox"
        )
        return None
    from agent.adapters.mqtt.link import start_link

    return start_link(cfg, runtime)


def start_watchdog(runtime: Runtime) -> sdnotify.WatchdogPinger | None:
    """Ping systemd's watchdog only while the core loop really completes iterations.

    The core thread marks progress after each Tick; an idle loop sleeps until its next deadline,
    so it is asked to wake at least every ``KEEP_ALIVE_SHARE`` of the interval: well inside the
    window in which the gate still allows a ping (half the interval; with WatchdogSec=60, a wake
    every 20 s against a 30 s window). A separate thread pings when the last progress is recent.
    A hung core therefore stops the pings and systemd restarts the agent.
    """
    interval = sdnotify.watchdog_interval()
    if not interval:
        return None
    gate = sdnotify.WatchdogGate(interval)
    gate.progress()
    runtime.hooks_per_tick.append(gate.progress)
    runtime.keep_alive(interval * KEEP_ALIVE_SHARE)
    pinger = sdnotify.WatchdogPinger(gate)
    pinger.start()
    return pinger


class SignalActions:
    """What each signal means, run on the main thread outside any handler."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._reload_pending = threading.Event()

    def __call__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum in STOP_SIGNALS:
            if self.runtime.stop_requested.is_set():
                log.debug("%s: already stopping", name)
                return
            log.info("%s: stopping", name)
            self.runtime.request_stop()
        elif signum in RELOAD_SIGNALS:
            if self.runtime.stop_requested.is_set() or self._reload_pending.is_set():
                return  # one reload at a time is enough: it reads the files as they are then
            log.info("%s: re-reading the schedules", name)
            self._reload_pending.set()
            self.runtime.call_soon(self._reload)

    def _reload(self) -> None:
        self._reload_pending.clear()
        self.runtime.reload_schedules("SIGHUP")


def run_core(runtime: Runtime, signals: SignalPipe, duration: float | None) -> None:
    """Run the core loop on its own thread; serve signals on this one until the loop ends.

    An exception that ends the core loop is raised here, on the main thread, after the loop's own
    shutdown has run.
    """
    failure: list[BaseException] = []

    def core() -> None:
        try:
            runtime.run(duration=duration)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            failure.append(exc)
        finally:
            signals.post(CORE_DONE)

    actions = SignalActions(runtime)
    thread = threading.Thread(target=core, name="core")
    thread.start()
    done = False
    while not done:
        for code in signals.wait():
            if code == CORE_DONE:
                done = True
            else:
                actions(code)
    thread.join()
    if failure:
        raise failure[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="station-agent", description="Village terminal station agent")
    ap.add_argument("-c", "--config", default=str(DEFAULT_CONFIG_PATH), help="config file (YAML)")
    ap.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop cleanly after this many seconds (demo, tests)",
    )
    ap.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    ap.add_argument("--version", action="version", version=f"station-agent {__version__}")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"station-agent: config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or cfg.log_level)
    signals = SignalPipe()  # from here on a SIGTERM stops the agent cleanly, even during start-up
    offset_file = os.environ.get(CLOCK_OFFSET_ENV)
    clock = OffsetClock(Path(offset_file)) if offset_file else SystemClock()
    runtime = Runtime(cfg, clock=clock)
    try:
        runtime.open()
    except StoreError as exc:
        print(f"station-agent: the store cannot be used: {exc}", file=sys.stderr)
        signals.close()
        return 4
    control = ControlServer.start_for(runtime)  # stationctl's socket
    link = start_mqtt(cfg, runtime)  # MQTT link (None when offline) and the outbox alarm
    if link is not None:
        # Stopped while the store is still open: its offline state and last confirmations
        # go through the core thread, which serves them during shutdown.
        runtime.on_shutdown.append(link.stop)
    start_monitor(cfg, runtime)  # link and device probes, alarms; stops with the runtime
    start_content(runtime)  # course files fetched and verified before their slots
    pinger = start_watchdog(runtime)
    sdnotify.ready(f"terminal {cfg.terminal}: store open, schedule loaded")
    try:
        run_core(runtime, signals, args.duration)
    finally:
        control.stop()
        if pinger is not None:
            pinger.stop(1.0)
        sdnotify.stopping()
        signals.close()
    return runtime.exit_code  # non-zero when the agent asked systemd for a fresh process


if __name__ == "__main__":
    sys.exit(main())
