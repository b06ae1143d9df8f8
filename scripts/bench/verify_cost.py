#!/usr/bin/env python3
"""What signing costs a terminal: verify time per document, RSS added by the crypto import, and
the bytes a signature adds to each message.

- verify: ``TrustGate.open`` on a signed schedule, as the MQTT link and the inbox run it per
  document (roots folder and revocation list read from disk, certificate and document signatures
  checked), p50/p99 over ``--n`` documents; also the signature checks alone (domain + PyNaCl).
- RSS: a fresh process imports the agent's verify path before and after ``nacl.signing``.
- bytes: envelope size minus document size, for a small command, a typical schedule (20 items)
  and the largest legal one (2000 items).

    .venv/bin/python scripts/bench/verify_cost.py [--n 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.adapters.ed25519 import verify  # noqa: E402
from agent.cli.county.keys import certify, envelope, new_key  # noqa: E402
from agent.domain.trust import TrustContext, parse_envelope, verify_envelope  # noqa: E402
from agent.runtime.trust import TrustGate  # noqa: E402

RSS_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
import agent.runtime.trust, agent.domain.trust
before = rss_kb()
from agent.adapters.ed25519 import verify
verify(b"\0" * 32, b"\0" * 64, b"x")  # the first call loads libsodium
print(json.dumps({"rss_kb": rss_kb() - before}))
"""


def schedule(items: int) -> bytes:
    doc = {
        "version": 7,
        "county": "c-01",
        "timezone": "Asia/Shanghai",
        "items": [
            {
                "id": f"w{i}",
                "weekly": {"days": ["mon", "wed"], "time": "19:30"},
                "course": {"id": f"C-{i}", "title": f"农业技术 第{i}讲", "media": f"c/{i}.mp4"},
            }
            for i in range(items)
        ],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = new_key(folder / "keys", "prov-root-1", "root")
        key = new_key(folder / "keys", "c-01-k1", "county", "c-01")
        cert = certify(root, key.key_id, "c-01", key.public())
        roots = folder / "roots"
        roots.mkdir()
        (roots / "prov-root-1.pub").write_text((folder / "keys" / "prov-root-1.pub").read_text())
        gate = TrustGate("required", roots, folder / "state", "c-01", "t-001")
        doc = schedule(20)
        signed = envelope(key, cert, "schedule", "c-01", "all", doc)
        gate.open(signed, "schedule")  # warm: the first call loads libsodium
        gate_times, sig_times = [], []
        ctx = TrustContext("c-01", "t-001", {"prov-root-1": root.public()}, now=time.time())
        for _ in range(args.n):
            t = time.perf_counter()
            gate.open(signed, "schedule")
            gate_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            verify_envelope(parse_envelope(signed, 10**7), "schedule", ctx, verify)
            sig_times.append(time.perf_counter() - t)
        sizes = {}
        cmd = json.dumps(
            {
                "id": "cc-1",
                "cmd": "ping",
                "args": {},
                "ts": "2026-11-28T11:30:00Z",
                "expires": "2026-11-28T11:40:00Z",
                "terminal": "t-001",
            }
        ).encode()
        for name, payload, kind in (
            ("command", cmd, "command"),
            ("schedule_20_items", doc, "schedule"),
            ("schedule_2000_items", schedule(2000), "schedule"),
        ):
            env = envelope(key, cert, kind, "c-01", "t-001", payload)
            sizes[name] = {
                "document": len(payload),
                "signed": len(env),
                "added": len(env) - len(payload),
            }
    rss = json.loads(
        subprocess.run(
            [sys.executable, "-c", RSS_CHILD, str(ROOT)], capture_output=True, text=True, check=True
        ).stdout
    )
    g50, g99 = percentiles(gate_times)
    s50, s99 = percentiles(sig_times)
    out = {
        "gate_open_us": {"p50": round(g50, 1), "p99": round(g99, 1)},
        "signature_checks_us": {"p50": round(s50, 1), "p99": round(s99, 1)},
        "crypto_import_rss_kb": rss["rss_kb"],
        "bytes": sizes,
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(
        f"verify per document (TrustGate.open, {args.n} runs): p50 {g50:.0f} us, p99 {g99:.0f} us"
    )
    print(f"  of which the two signature checks: p50 {s50:.0f} us, p99 {s99:.0f} us")
    print(f"RSS added by the crypto import (PyNaCl + libsodium): {rss['rss_kb']} KB")
    for name, row in sizes.items():
        pct = 100 * row["added"] / row["document"]
        print(f"bytes {name}: {row['document']} -> {row['signed']} (+{row['added']}, +{pct:.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
