"""Watchdog check: a stand-in core loop makes progress for a while, then hangs.

Run by tests/ops/sandbox/run.sh under the unit with a short WatchdogSec=; systemd must kill it
(result "watchdog") soon after the hang, and Python's faulthandler must print the stacks.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.environ.get("AGENT_SOURCE", "/work/main"))

from agent import sdnotify  # noqa: E402
from agent.adapters.sdnotify import WatchdogGate, WatchdogPinger  # noqa: E402

healthy_for = float(sys.argv[1])
interval = sdnotify.watchdog_interval()
if interval is None:
    sys.exit("no watchdog configured")
gate = WatchdogGate(interval)
pinger = WatchdogPinger(gate)
gate.progress()
pinger.start()
sdnotify.ready("hang test")
start = time.monotonic()
while time.monotonic() - start < healthy_for:
    gate.progress()
    time.sleep(0.1)
print(f"hang_at_monotonic={time.monotonic():.3f} pings={pinger.pings}", flush=True)
time.sleep(3600)  # the core is stuck; the pinger thread is alive but withholds pings
