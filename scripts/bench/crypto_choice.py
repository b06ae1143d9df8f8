#!/usr/bin/env python3
"""Which Ed25519 library verifies signed documents: ``cryptography`` or PyNaCl.

For each library, in a fresh process: import time of what the verifier needs (best of 5 runs),
RSS growth caused by that import, and Ed25519 verify time (p50/p99 over many calls, 1 KB
message, key object built per call as the agent does per document). A library that is not
installed is reported as such.

    .venv/bin/python scripts/bench/crypto_choice.py [--n 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

LIBS = ("cryptography", "nacl")

CHILD = r"""
import json, os, sys, time

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

name, n = sys.argv[1], int(sys.argv[2])
before = rss_kb()
t0 = time.perf_counter()
try:
    if name == "cryptography":
        import cryptography
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey, Ed25519PublicKey)
        from cryptography.exceptions import InvalidSignature
        version = cryptography.__version__
    else:
        import nacl
        import nacl.signing
        import nacl.exceptions
        version = nacl.__version__
except ImportError as e:
    print(json.dumps({"missing": str(e)}))
    sys.exit(0)
import_s = time.perf_counter() - t0
after = rss_kb()
msg = os.urandom(1024)
if name == "cryptography":
    from cryptography.hazmat.primitives import serialization as ser
    priv = Ed25519PrivateKey.generate()
    pub = priv.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    sig = priv.sign(msg)
    def verify():
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
else:
    sk = nacl.signing.SigningKey.generate()
    pub = bytes(sk.verify_key)
    sig = sk.sign(msg).signature
    def verify():
        nacl.signing.VerifyKey(pub).verify(msg, sig)
times = []
for _ in range(n):
    t = time.perf_counter()
    verify()
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({
    "version": version, "import_s": import_s, "rss_kb": after - before,
    "p50_us": times[len(times) // 2] * 1e6, "p99_us": times[int(len(times) * 0.99)] * 1e6,
}))
"""


def measure(lib: str, n: int, runs: int) -> dict[str, object]:
    best: dict[str, object] | None = None
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, lib, str(n)], capture_output=True, text=True, check=True
        )
        row = json.loads(out.stdout)
        if "missing" in row:
            return row
        if best is None or row["import_s"] < best["import_s"]:  # type: ignore[operator]
            best = row
    assert best is not None
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="verify calls per run")
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per library")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = {lib: measure(lib, args.n, args.runs) for lib in LIBS}
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"{'library':14} {'version':9} {'import ms':>9} {'RSS +KB':>8} {'p50 us':>7} {'p99 us':>7}"
    )
    for lib, r in rows.items():
        if "missing" in r:
            print(f"{lib:14} not installed ({r['missing']})")
            continue
        print(
            f"{lib:14} {r['version']!s:9} {r['import_s'] * 1000:9.1f} {r['rss_kb']:8d} "
            f"{r['p50_us']:7.1f} {r['p99_us']:7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
