#!/usr/bin/env python3
"""Which HTTP client for the course fetcher: urllib3 or pycurl (stdlib http.client for scale).

For each client, in a fresh process: import time (best of 5), RSS growth caused by the import,
then CPU seconds (user+sys of the process) per 100 MB fetched from a private nginx on loopback,
with the sha256 computed and the bytes written to a file, as the fetcher does. A client that is
not installed is reported as such.

    .venv/bin/python scripts/bench/http_client_choice.py [--mb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.testing.nginx import NginxServer, write_random  # noqa: E402

CLIENTS = ("urllib3", "pycurl", "http.client")

CHILD = r"""
import hashlib, json, resource, sys, time

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

name, url, out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
before = rss_kb()
t0 = time.perf_counter()
try:
    if name == "urllib3":
        import urllib3 as mod
    elif name == "pycurl":
        import pycurl as mod
    else:
        import http.client as mod
        import urllib.parse
except ImportError as e:
    print(json.dumps({"missing": str(e)}))
    sys.exit(0)
import_s = time.perf_counter() - t0
after = rss_kb()
version = getattr(mod, "__version__", None) or getattr(mod, "version", "stdlib")

def fetch_urllib3():
    pool = mod.PoolManager()
    r = pool.request("GET", url, preload_content=False, decode_content=False)
    while data := r.read(65536, decode_content=False):
        yield data
    r.release_conn()

def fetch_http_client():
    u = urllib.parse.urlsplit(url)
    c = mod.HTTPConnection(u.hostname, u.port)
    c.request("GET", u.path)
    r = c.getresponse()
    while data := r.read(65536):
        yield data
    c.close()

def run_pycurl(sink):
    c = mod.Curl()
    c.setopt(mod.URL, url)
    c.setopt(mod.WRITEFUNCTION, sink)
    c.setopt(mod.BUFFERSIZE, 65536)
    c.perform()
    c.close()

total = 0
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
w0 = time.perf_counter()
for _ in range(runs):
    h = hashlib.sha256()
    with open(out, "wb", buffering=0) as f:
        def sink(data):
            global total
            h.update(data)
            f.write(data)
            total += len(data)
        if name == "pycurl":
            run_pycurl(sink)
        else:
            for data in (fetch_urllib3() if name == "urllib3" else fetch_http_client()):
                sink(data)
wall = time.perf_counter() - w0
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
print(json.dumps({"version": str(version).split()[0], "import_s": import_s,
                  "rss_import_kb": after - before, "rss_total_kb": rss_kb(),
                  "bytes": total, "cpu": cpu, "wall": wall}))
"""


def measure(name: str, url: str, out: Path, runs: int) -> dict[str, float | str]:
    def child(n: int) -> dict:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, name, url, str(out), str(n)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(r.stdout)

    imports = [child(0) for _ in range(5)]
    if "missing" in imports[0]:
        return {"missing": imports[0]["missing"]}
    full = child(runs)
    full["import_s"] = min(x["import_s"] for x in imports)
    full["rss_import_kb"] = min(x["rss_import_kb"] for x in imports)
    return full


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100, help="size of the test file in MB")
    ap.add_argument("--runs", type=int, default=3, help="fetches of the file per client")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="client-choice-") as tmp:
        server = NginxServer(Path(tmp) / "nginx").start()
        try:
            write_random(server.root / "f.bin", args.mb * 1_000_000)
            rows = {
                c: measure(c, server.url("f.bin"), Path(tmp) / "out.bin", args.runs)
                for c in CLIENTS
            }
        finally:
            server.stop()
    head = f"{'client':<12}{'version':<10}{'import ms':>10}{'RSS+ MB':>9}{'CPU s/100MB':>13}{'MB/s':>8}"
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        if "missing" in r:
            print(f"{name:<12}not installed ({r['missing']})")
            continue
        per100 = r["cpu"] / (r["bytes"] / 100e6)
        rate = r["bytes"] / r["wall"] / 1e6
        print(
            f"{name:<12}{str(r['version']).removeprefix('PycURL/'):<10}{r['import_s'] * 1000:>10.1f}"
            f"{r['rss_import_kb'] / 1024:>9.1f}{per100:>13.3f}{rate:>8.0f}"
        )
    print(
        f"({args.runs} fetches of {args.mb} MB each from nginx on loopback; sha256 + write included)"
    )


if __name__ == "__main__":
    main()
