"""Reconnect storm: N simulated terminals (one process) and a county broker restart.

Each terminal is a real ``MqttLink`` (the agent's reconnect code) over an in-memory stand-in for
the rest of the agent, 100 to a process (paho watches its socket with ``select()``, which cannot
take descriptors above 1024, so one process cannot hold 500 clients). All connect, the broker is stopped for ``--down`` seconds and started again
on the same port; the bench records when each terminal is back (CONNACK) and, from the broker's
own log, how many connections it accepted each second.

Two policies, one after the other on fresh brokers:
- ``jitter``: the agent's defaults (full jitter over a window of 2x the outage, 10 s to 300 s);
- ``paho``:   paho's own schedule (1 s doubling to 120 s, no jitter), for comparison.

    .venv/bin/python scripts/bench/mqtt_storm.py [--terminals 500] [--down 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.adapters.mqtt.config import MqttConfig  # noqa: E402
from agent.adapters.mqtt.link import MqttLink  # noqa: E402
from agent.cli.county.broker import PrivateBroker  # noqa: E402
from agent.testing.bridge import MemoryBridge  # noqa: E402

COUNTY = "c-01"
CONNECTED_RE = re.compile(r"^(\S+): New client connected .* as (t-\d+)")


PER_PROCESS = 100  # paho's select() cannot watch descriptors above 1024: split the fleet


def child(policy: str, first: int, count: int, port: int) -> None:
    """One process of the simulated fleet: prints "C terminal monotonic" on every connect."""
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    if policy == "paho":
        m_kw = {"backoff_min_seconds": 1.0, "backoff_max_seconds": 120.0}
        rand = lambda: 1.0  # noqa: E731  (paho waits the whole window: no jitter)
    else:
        m_kw, rand = {}, None
        if os.environ.get("STORM_BACKOFF_MIN"):
            m_kw["backoff_min_seconds"] = float(os.environ["STORM_BACKOFF_MIN"])
    lock = threading.Lock()
    links = []
    for i in range(first, first + count):
        terminal = f"t-{i:04d}"
        m = MqttConfig(host="127.0.0.1", port=port, keepalive=60, heartbeat_seconds=3600, **m_kw)
        link = MqttLink(
            SimpleNamespace(mqtt=m, terminal=terminal, county=COUNTY),
            bridge=MemoryBridge(terminal, COUNTY),
            rand=rand,
        )

        def on_state(state: str, terminal: str = terminal) -> None:
            if state == "connected":
                with lock:
                    print(f"C {terminal} {time.monotonic():.6f}", flush=True)

        link.on_state = on_state
        links.append(link)
    for i, link in enumerate(links):  # boots are spread out; the storm is the restart
        link.start()
        if i % 25 == 24:
            time.sleep(0.05)
    sys.stdin.readline()  # "stop"
    print(f"A {sum(lk.connects for lk in links)}", flush=True)
    for link in links:
        link.stop(timeout=0.2)


def run(policy: str, n: int, down: float, workdir: Path) -> dict[str, object]:
    broker = PrivateBroker(workdir / f"broker-{policy}").start()
    connects: list[tuple[str, float]] = []
    attempts: list[int] = []
    lock = threading.Lock()
    procs = []
    for first in range(0, n, PER_PROCESS):
        count = min(PER_PROCESS, n - first)
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", policy, str(first), str(count), str(broker.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)

        def reader(proc: subprocess.Popen[str] = proc) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                parts = line.split()
                with lock:
                    if parts[0] == "C":
                        connects.append((parts[1], float(parts[2])))
                    elif parts[0] == "A":
                        attempts.append(int(parts[1]))

        threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + 120
    while len({term for term, _ in connects}) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    with lock:
        first_round = len(connects)
    log_mark = len(broker.log_text())
    broker.stop()
    time.sleep(down)
    broker.start()
    up_at = time.monotonic()
    deadline = up_at + 600
    while time.monotonic() < deadline:
        with lock:
            back = {term: at for term, at in connects[first_round:]}
        if len(back) >= n:
            break
        time.sleep(0.1)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("stop\n")
        proc.stdin.flush()
    for proc in procs:
        proc.wait(60)
    time.sleep(0.2)
    log = broker.log_text()[log_mark:]
    broker.stop()
    all_back = max(back.values()) - up_at if len(back) == n else None
    per_second_link = Counter(int(at - up_at) for at in back.values())
    per_second_broker = Counter(
        m.group(1) for line in log.splitlines() if (m := CONNECTED_RE.match(line))
    )
    return {
        "terminals": n,
        "back": len(back),
        "seconds_until_all_back": round(all_back, 2) if all_back is not None else None,
        "peak_per_second_at_broker": max(per_second_broker.values(), default=0),
        "peak_per_second_terminal_side": max(per_second_link.values(), default=0),
        "connection_attempts_in_total": sum(attempts),
        "per_second_terminal_side": [
            per_second_link.get(s, 0) for s in range(int(all_back or 0) + 1)
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--terminals", type=int, default=500)
    ap.add_argument("--down", type=float, default=3.0, help="seconds the broker stays down")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        policy, first, count, port = args.child
        child(policy, int(first), int(count), int(port))
        return
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
    base = MqttConfig(host="x").backoff_min_seconds
    labels = {"jitter": f"agent (full jitter, {base:.0f} s)", "paho": "paho (1 s, no jitter)"}
    for key, label in labels.items():
        r = results[key]
        back = r["seconds_until_all_back"]
        back_text = f"{back:.1f} s" if back is not None else "not all"
        print(
            f"{label:<28} {back_text:>14} {r['peak_per_second_at_broker']:>12} "
            f"{r['connection_attempts_in_total']:>9}"
        )
        print(f"  back per second after the restart: {r['per_second_terminal_side']}")


if __name__ == "__main__":
    main()
