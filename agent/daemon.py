"""``station-agent``: the daemon's entry point (what systemd runs)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from agent import __version__, sdnotify
from agent.clock import OffsetClock, SystemClock
from agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from agent.control import ControlServer
from agent.monitor_wiring import start_monitor
from agent.runtime import Runtime

# Tests of a whole agent process shift its wall clock through this file (see OffsetClock).
CLOCK_OFFSET_ENV = "STATION_AGENT_CLOCK_OFFSET_FILE"


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
        from agent.mqtt.alarm import install_outbox_alarm

        install_outbox_alarm(runtime, None)
        logging.getLogger("agent").info(
            "no mqtt section: running offline, everything stays in the outbox"
        )
        return None
    from agent.mqtt.link import start_link

    return start_link(cfg, runtime)


def start_watchdog(runtime: Runtime) -> sdnotify.WatchdogPinger | None:
    """Ping systemd's watchdog only while the core loop really completes iterations.

    The core thread marks progress after each pass (at least once a second); a separate thread
    pings when the last progress is recent. A hung core therefore stops the pings and systemd
    restarts the agent.
    """
    interval = sdnotify.watchdog_interval()
    if not interval:
        return None
    gate = sdnotify.WatchdogGate(interval)
    gate.progress()
    runtime.hooks_per_tick.append(gate.progress)
    pinger = sdnotify.WatchdogPinger(gate)
    pinger.start()
    return pinger


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
    offset_file = os.environ.get(CLOCK_OFFSET_ENV)
    clock = OffsetClock(Path(offset_file)) if offset_file else SystemClock()
    runtime = Runtime(cfg, clock=clock)
    runtime.open()
    control = ControlServer.start_for(runtime)  # stationctl's socket (issue 5)

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("agent").info("signal %d: stopping", signum)
        runtime.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    link = start_mqtt(cfg, runtime)  # MQTT link (None when offline) and the outbox alarm
    start_monitor(cfg, runtime)  # link and device probes, alarms (issue 4); stops with the runtime
    pinger = start_watchdog(runtime)
    sdnotify.ready(f"terminal {cfg.terminal}: store open, schedule loaded")
    try:
        runtime.run(duration=args.duration)
    finally:
        if link is not None:
            link.stop()  # publishes the retained "offline" state, then disconnects
    control.stop()
    if pinger is not None:
        pinger.stop(1.0)
    sdnotify.stopping()
    return runtime.exit_code  # non-zero when the agent asked systemd for a fresh process


if __name__ == "__main__":
    sys.exit(main())
