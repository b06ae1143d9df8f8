"""Reconnect storm: N simulated terminals (one process) and a county broker restart.

Each terminal is a real ``MqttLink`` (the agent's reconnect code) over an in-memory stand-in for
the rest of the agent. All connect, the broker is stopped for ``--down`` seconds and started again
on the same port; the bench records when each terminal is back (CONNACK) and, from the broker's
own log, how many connections it accepted each second.

Two policies, one after the other on fresh brokers:
- ``jitter``: the agent's defaults (full jitter, 5 s doubling to 300 s);
- ``paho``:   paho's own schedule (1 s doubling to 120 s, no jitter), for comparison.

    .venv/bin/python scripts/bench/mqtt_storm.py [--terminals 500] [--down 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.county.broker import PrivateBroker  # noqa: E402
from agent.mqtt.bridge import MemoryBridge  # noqa: E402
from agent.mqtt.config import MqttConfig  # noqa: E402
from agent.mqtt.link import MqttLink  # noqa: E402

COUNTY = "c-01"
CONNECTED_RE = re.compile(r"^(\S+): New client connected .* as (t-\d+)")


def run(policy: str, n: int, down: float, workdir: Path) -> dict[str, object]:
    broker = PrivateBroker(workdir / f"broker-{policy}").start()
    if policy == "paho":
        m_kw = {"backoff_min_seconds": 1.0, "backoff_max_seconds": 120.0}
        rand = lambda: 1.0  # noqa: E731  (paho waits the whole window: no jitter)
    else:
        m_kw, rand = {}, None
    back: dict[str, float] = {}
    lock = threading.Lock()
    links = []
    for i in range(n):
        terminal = f"t-{i:04d}"
        m = MqttConfig(
            host=broker.host, port=broker.port, keepalive=60, heartbeat_seconds=3600, **m_kw
        )
        link = MqttLink(
            SimpleNamespace(mqtt=m, terminal=terminal, county=COUNTY),
            bridge=MemoryBridge(terminal, COUNTY),
            rand=rand,
        )

        def on_state(state: str, terminal: str = terminal) -> None:
            if state == "connected":
                with lock:
                    back.setdefault(terminal, time.monotonic())

        link.on_state = on_state
        links.append(link)
    for i, link in enumerate(links):  # boots are spread out; the storm is the restart
        link.start()
        if i % 50 == 49:
            time.sleep(0.05)
    deadline = time.monotonic() + 120
    while sum(1 for lk in links if lk.state == "connected") < n and time.monotonic() < deadline:
        time.sleep(0.1)
    before = sum(lk.connects for lk in links)
    log_mark = len(broker.log_text())
    with lock:
        back.clear()
    broker.stop()
    time.sleep(down)
    broker.start()
    up_at = time.monotonic()
    deadline = up_at + 600
    while len(back) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    all_back = max(back.values()) - up_at if len(back) == n else None
    attempts = sum(lk.connects for lk in links) - before
    for link in links:
        link.stop(timeout=0.5)
    log = broker.log_text()[log_mark:]
    broker.stop()
    per_second_link = Counter(int(t - up_at) for t in back.values())
    per_second_broker = Counter(
        m.group(1) for line in log.splitlines() if (m := CONNECTED_RE.match(line))
    )
    return {
        "terminals": n,
        "back": len(back),
        "seconds_until_all_back": round(all_back, 2) if all_back is not None else None,
        "peak_per_second_at_broker": max(per_second_broker.values(), default=0),
        "peak_per_second_terminal_side": max(per_second_link.values(), default=0),
        "attempts_during_outage_and_return": attempts,
        "per_second_terminal_side": [
            per_second_link.get(s, 0) for s in range(int(all_back or 0) + 1)
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--terminals", type=int, default=500)
    ap.add_argument("--down", type=float, default=3.0, help="seconds the broker stays down")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # 500 links reconnecting are chatty
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for policy in ("jitter", "paho"):
            results[policy] = run(policy, args.terminals, args.down, Path(tmp))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"Reconnect storm: {args.terminals} terminals, broker down {args.down:.0f} s, restarted")
    head = f"{'policy':<28} {'all back after':>14} {'peak conn/s':>12} {'attempts':>9}"
    print(head)
    labels = {"jitter": "agent (full jitter, 5 s)", "paho": "paho default (1 s, no jitter)"}
    for key, label in labels.items():
        r = results[key]
        back = r["seconds_until_all_back"]
        back_text = f"{back:.1f} s" if back is not None else "not all"
        print(
            f"{label:<28} {back_text:>14} {r['peak_per_second_at_broker']:>12} "
            f"{r['attempts_during_outage_and_return']:>9}"
        )
        print(f"  back per second after the restart: {r['per_second_terminal_side']}")


if __name__ == "__main__":
    main()
