"""The county's fleet on this machine: 2,000 simulated terminals (two processes, one event loop
each) against a private Mosquitto and the PostgreSQL collector, through the three scenarios of
``countyctl simulate`` (docs/fleet.md). Creates and drops its own database.

Pass: zero records lost or stored twice, every terminal back online after the broker restart and
at the end, the backlog flushed after the outage, the simulator under one core in total.

    .venv/bin/python scripts/bench/fleet_2000.py [--terminals 2000] [--scenarios steady,...]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from agent.cli.county.simulate.run import SCENARIOS, SimOptions, simulate  # noqa: E402
from agent.cli.county.simulate.worker import WorkerConfig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--terminals", type=int, default=2000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    reports = {}
    for scenario in args.scenarios.split(","):
        name = f"fleet_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            worker = WorkerConfig(
                0, 0, "", "", 0, "", record_every=10.0, heartbeat=60.0, flap_every=600.0,
                ack_timeout=30.0, backoff_min=2.0, backoff_max=60.0, ramp=20.0,
            )  # fmt: skip
            o = SimOptions(
                scenario=scenario,
                db=args.pg.rsplit("/", 1)[0] + f"/{name}",
                terminals=args.terminals,
                processes=args.processes,
                duration=args.duration,
                down=10.0,
                outage=60.0,
                worker=worker,
                say=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
            )
            print(f"== {scenario}", file=sys.stderr, flush=True)
            report = simulate(o)
            print(report.text(), flush=True)
            reports[scenario] = report.to_json()
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ok = all(r["passed"] for r in reports.values())
    print("fleet_2000:", "PASS" if ok else "FAIL")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
