#!/usr/bin/env python3
"""The course fetcher against ``curl`` through the same private nginx on loopback, same run.

Figures (issue 11): uncapped throughput of ``fetch_file`` vs ``curl -o`` (best of ``--runs``,
alternating); the rate with ``max_kbps`` set vs the cap; CPU seconds per 100 MB with the hash
included, vs ``curl`` + ``sha256sum``; RSS growth of a process while it fetches (sampled every
5 ms by a thread in that process), over its idle RSS with the fetcher already imported and
over its RSS before importing it (the child has already loaded what an idle agent has:
ssl, sqlite3, paho). ``fetch_file`` runs in a fresh child process per fetch so its
CPU and memory are its own. Both write to the same filesystem; only ``fetch_file`` fsyncs.

    .venv/bin/python scripts/bench/fetch_vs_curl.py [--mb 200] [--runs 3] [--cap-kbps 40000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.testing.nginx import NginxServer, write_random  # noqa: E402

CHILD = r"""
import json, resource, sys, threading, time
from pathlib import Path

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

import sqlite3, ssl
import paho.mqtt.client
bare = rss_kb()
sys.path.insert(0, sys.argv[1])
from agent.adapters.http_fetch import fetch_file
url, dest, size, sha, part_dir = sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5], Path(sys.argv[6])
cap = float(sys.argv[7]) or None
sampling = sys.argv[8] == "1"
time.sleep(0.2)
idle = rss_kb()
peak = idle
stop = threading.Event()

def sample():
    global peak
    while not stop.wait(0.005):
        peak = max(peak, rss_kb())

t = threading.Thread(target=sample, daemon=True)
if sampling:
    t.start()
c0 = resource.getrusage(resource.RUSAGE_SELF)
r = fetch_file([url], dest, size, sha, part_dir=part_dir, max_kbps=cap,
               progress=lambda d, t: None)
c1 = resource.getrusage(resource.RUSAGE_SELF)
stop.set()
if sampling:
    t.join()
peak = max(peak, rss_kb())
cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
print(json.dumps({"seconds": r.seconds, "bytes": r.bytes_received, "cpu": cpu,
                  "bare_kb": bare, "idle_kb": idle, "peak_kb": peak}))
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_fetch(
    url: str, out: Path, size: int, sha: str, tmp: Path, cap: float = 0, sample: bool = False
) -> dict:
    """One fetch_file in a fresh child; ``sample`` runs the RSS sampling thread (kept out of
    the throughput runs so its wakeups do not cost the fetch)."""
    out.unlink(missing_ok=True)
    os.sync()
    args = [sys.executable, "-c", CHILD, str(ROOT), url, str(out), str(size), sha]
    args += [str(tmp / "part"), str(cap), "1" if sample else "0"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"fetch_file child failed: {r.stderr[-2000:]}")
    res = json.loads(r.stdout)
    if res["bytes"] != size:
        raise SystemExit(f"fetch_file received {res['bytes']} bytes, expected {size}")
    return res


def run_curl(url: str, out: Path, sha: str) -> dict:
    out.unlink(missing_ok=True)
    os.sync()
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", str(out), url], check=True)
    seconds = time.perf_counter() - t0
    c1 = children_cpu()
    got = subprocess.run(["sha256sum", str(out)], capture_output=True, text=True, check=True)
    c2 = children_cpu()
    if got.stdout.split()[0] != sha:
        raise SystemExit("curl's file does not match its sha256")
    return {
        "seconds": seconds,
        "with_sum": time.perf_counter() - t0,
        "cpu_curl": c1 - c0,
        "cpu_sum": c2 - c1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="file size for the uncapped runs (MB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cap-kbps", type=float, default=40_000, help="max_kbps for the capped run")
    ap.add_argument("--cap-seconds", type=float, default=4.0, help="length of the capped run")
    args = ap.parse_args()
    size = args.mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="fetch-bench-", dir="/var/tmp") as tmpdir:
        tmp = Path(tmpdir)
        server = NginxServer(tmp / "nginx").start()
        try:
            sha = write_random(server.root / "f.bin", size)
            cap_size = int(args.cap_kbps * 125 * args.cap_seconds)
            cap_sha = write_random(server.root / "cap.bin", cap_size)
            url, out = server.url("f.bin"), tmp / "out.bin"
            run_curl(url, out, sha)  # warm the page cache of the served file
            ours, theirs = [], []
            for _ in range(args.runs):
                theirs.append(run_curl(url, out, sha))
                ours.append(run_fetch(url, out, size, sha, tmp))
            sampled = run_fetch(url, out, size, sha, tmp, sample=True)
            capped = run_fetch(
                server.url("cap.bin"), out, cap_size, cap_sha, tmp, args.cap_kbps, sample=True
            )
        finally:
            server.stop()
    report(args, size, ours, theirs, [sampled, capped], capped, cap_size)


def report(
    args: argparse.Namespace,
    size: int,
    ours: list[dict],
    theirs: list[dict],
    sampled: list[dict],
    capped: dict,
    cap_size: int,
) -> None:
    mb = size / 1e6
    best_ours = min(r["seconds"] for r in ours)
    best_curl = min(r["seconds"] for r in theirs)
    best_curl_sum = min(r["with_sum"] for r in theirs)
    per100 = 100e6 / size
    cpu_ours = min(r["cpu"] for r in ours) * per100
    cpu_curl = min(r["cpu_curl"] for r in theirs) * per100
    cpu_sum = min(r["cpu_sum"] for r in theirs) * per100
    growth_idle = max(r["peak_kb"] - r["idle_kb"] for r in sampled) / 1024
    growth_bare = max(r["peak_kb"] - r["bare_kb"] for r in sampled) / 1024
    cap_rate = cap_size / capped["seconds"]
    cap_bytes = args.cap_kbps * 125
    rows = [
        ("file", f"{mb:.0f} MB, {args.runs} runs each, best", ""),
        ("curl -o", f"{mb / best_curl:.0f} MB/s", ""),
        ("fetch_file", f"{mb / best_ours:.0f} MB/s", f"ratio {best_curl / best_ours:.2f} (aim >= 0.9)"),
        ("curl + sha256sum", f"{mb / best_curl_sum:.0f} MB/s (one after the other)",
         f"ratio {best_curl_sum / best_ours:.2f}"),
        ("capped", f"{cap_rate * 8 / 1000:.0f} kbps for a cap of {args.cap_kbps:.0f}",
         f"{(cap_rate / cap_bytes - 1) * 100:+.1f} % (aim within 5 %)"),
        ("CPU s/100 MB", f"fetch_file {cpu_ours:.3f}",
         f"curl {cpu_curl:.3f} + sha256sum {cpu_sum:.3f} = {cpu_curl + cpu_sum:.3f}"),
        ("RSS while fetching", f"+{growth_idle:.1f} MB over idle (fetcher imported)",
         f"+{growth_bare:.1f} MB over idle before importing it (aim <= 5)"),
    ]  # fmt: skip
    width = max(len(a) for a, _, _ in rows) + 2
    for a, b, c in rows:
        print(f"{a:<{width}}{b:<44}{c}")


if __name__ == "__main__":
    main()
