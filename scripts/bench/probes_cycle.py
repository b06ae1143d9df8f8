#!/usr/bin/env python3
"""One full probe cycle: CPU time and wall time with all probes, many iterations, p50/p95.

Runs every probe (telecom link probes, the satellite probes on a fake frontend, all box probes)
once per iteration on this thread, then feeds the samples to the health engine and link window as
the monitor does. CPU is process CPU time (includes the short-lived resolver thread). Network
probes touch loopback only (see _probe_fixtures.py).

    /tmp/venv/bin/python scripts/bench/probes_cycle.py [--iterations 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _probe_fixtures import Fixture  # noqa: E402

from agent.domain.linkstats import LinkWindow  # noqa: E402
from agent.monitoring.judge import AlarmJudge  # noqa: E402
from agent.monitoring.probes.tcp import TcpSample  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--fake-box",
        action="store_true",
        help="read a fake set-top-box sysfs where every sensor exists, and run a fake cec-ctl (a real fork/exec)",
    )
    args = ap.parse_args()

    fx = Fixture(fake_box=args.fake_box)
    probes = fx.probes()
    engine = AlarmJudge(fx.cfg.alarms, "telecom")
    window = LinkWindow(900)
    for p in probes:  # warm-up: imports, first reads, libc handle
        p.collect(time.monotonic() + p.timeout)
    cycle_cpu: list[float] = []
    cycle_wall: list[float] = []
    per_cpu: dict[str, list[float]] = {p.name: [] for p in probes}
    per_wall: dict[str, list[float]] = {p.name: [] for p in probes}
    skipped: dict[str, str] = {}
    children0 = os.times()
    for _ in range(args.iterations):
        c0, w0 = time.process_time(), time.perf_counter()
        for p in probes:
            pc, pw = time.process_time(), time.perf_counter()
            sample = p.collect(time.monotonic() + p.timeout)
            per_cpu[p.name].append(time.process_time() - pc)
            per_wall[p.name].append(time.perf_counter() - pw)
            if sample.skipped:
                skipped[p.name] = sample.skipped
            now, mono = time.time(), time.monotonic()
            engine.sample(sample, now, mono)
            if isinstance(sample, TcpSample) and sample.results:
                window.add_cycle(
                    mono, sample.any_reachable, [(r.reachable, r.rtt_ms) for r in sample.results]
                )
                engine.window(window.stats(mono), now, mono)
        cycle_cpu.append(time.process_time() - c0)
        cycle_wall.append(time.perf_counter() - w0)
        fx.drain()
    children1 = os.times()
    children_cpu = (children1.children_user + children1.children_system) - (
        children0.children_user + children0.children_system
    )
    fx.close()

    ms = 1000.0
    result = {
        "machine": f"{os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}",
        "iterations": args.iterations,
        "probes": [p.name for p in probes],
        "skipped_here": skipped,
        "children_cpu_ms_per_cycle": children_cpu / args.iterations * 1000.0,
        "cycle_cpu_ms": {
            "p50": pct(cycle_cpu, 50) * ms,
            "p95": pct(cycle_cpu, 95) * ms,
            "mean": statistics.mean(cycle_cpu) * ms,
        },
        "cycle_wall_ms": {
            "p50": pct(cycle_wall, 50) * ms,
            "p95": pct(cycle_wall, 95) * ms,
            "mean": statistics.mean(cycle_wall) * ms,
        },
        "per_probe_ms": {
            n: {
                "cpu_p50": pct(per_cpu[n], 50) * ms,
                "cpu_p95": pct(per_cpu[n], 95) * ms,
                "wall_p50": pct(per_wall[n], 50) * ms,
            }
            for n in per_cpu
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"probe cycle benchmark: {result['iterations']} iterations, {len(probes)} probes, {result['machine']}"
    )
    where = (
        "a fake set-top-box /sys with every sensor, cec-ctl as a real subprocess"
        if args.fake_box
        else "real /sys"
    )
    print(
        f"(all measured; loopback targets, fake DVB frontend via injected ioctl, {where}, real /proc)"
    )
    print(
        f"  CPU of child processes (tools), mean per cycle: {result['children_cpu_ms_per_cycle']:.3f} ms (not in the figures below)"
    )
    for key in ("cycle_cpu_ms", "cycle_wall_ms"):
        v = result[key]
        print(f"  {key:14s} p50 {v['p50']:7.3f}  p95 {v['p95']:7.3f}  mean {v['mean']:7.3f}")
    print("  per probe (ms):            cpu p50   cpu p95  wall p50")
    for n, v in result["per_probe_ms"].items():
        print(f"    {n:22s} {v['cpu_p50']:9.3f} {v['cpu_p95']:9.3f} {v['wall_p50']:9.3f}")
    for n, why in skipped.items():
        print(f"  skipped on this machine: {n}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
