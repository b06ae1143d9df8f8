"""``countyctl simulate``: the fleet simulator's command line (docs/fleet.md).

    countyctl simulate steady|broker-restart|outage --db FILE|URL [--terminals 2000]
        [--processes 2] [--duration 60] [--record-every 10] [--heartbeat 60] [--flap-every 300]
        [--down 5] [--outage 30] [--host H --port P] [--report-json FILE]

Exit status: 0 the run passed, 1 it failed (the report says why), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.cli.county.client import ToolError
from agent.cli.county.simulate.run import SCENARIOS, SimOptions, simulate
from agent.cli.county.simulate.worker import WorkerConfig
from agent.cli.county.storage import StorageError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sp = sub.add_parser("simulate", help="a simulated fleet against a broker and the collector")
    sp.add_argument("scenario", choices=SCENARIOS)
    sp.add_argument("--db", required=True, help="the collector's SQLite file or postgresql:// URL")
    sp.add_argument("--county", default="c-01")
    sp.add_argument("--terminals", type=int, default=100, help="t-0001 ... (default 100)")
    sp.add_argument("--processes", type=int, default=1, help="spread the fleet over processes")
    sp.add_argument("--duration", type=float, default=30.0, help="seconds of the steady phase")
    sp.add_argument("--record-every", type=float, default=10.0, help="mean s between records")
    sp.add_argument("--revise", type=float, default=0.1, help="share of records sent as rev 2")
    sp.add_argument("--heartbeat", type=float, default=60.0, help="heartbeat interval (s)")
    sp.add_argument("--flap-every", type=float, default=600.0, help="mean s between link flaps")
    sp.add_argument("--ack-timeout", type=float, default=30.0, help="resend a record after (s)")
    sp.add_argument("--backoff-min", type=float, default=2.0)
    sp.add_argument("--backoff-max", type=float, default=60.0)
    sp.add_argument("--stable-after", type=float, default=5.0, help="a good link lasts (s)")
    sp.add_argument("--ramp", type=float, default=10.0, help="spread the first connects (s)")
    sp.add_argument("--down", type=float, default=5.0, help="broker-restart: seconds away")
    sp.add_argument("--outage", type=float, default=20.0, help="outage: seconds, no collector")
    sp.add_argument("--drain-timeout", type=float, default=180.0)
    sp.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    sp.add_argument("--keepalive", type=int, default=60)
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--host", default=None, help="an outside broker (default: a private one)")
    sp.add_argument("--port", type=int, default=1883)
    sp.add_argument("--workdir", type=Path, default=None, help="keep logs and results here")
    sp.add_argument("--report-json", type=Path, default=None, help="write the report as JSON")
    sp.add_argument("--validate-all", action="store_true", help="check every message sent")


def options(args: argparse.Namespace) -> SimOptions:
    positive = ("terminals", "processes", "heartbeat", "ack_timeout", "backoff_min", "ramp")
    for name in positive:
        if getattr(args, name) <= 0:
            raise ToolError(f"--{name.replace('_', '-')} must be more than 0")
    for name in ("duration", "record_every", "flap_every", "down", "outage", "revise"):
        if getattr(args, name) < 0:
            raise ToolError(f"--{name.replace('_', '-')} must be 0 or more")
    if args.backoff_max < args.backoff_min:
        raise ToolError("--backoff-max must be at least --backoff-min")
    if args.terminals > 9999:
        raise ToolError("--terminals: at most 9999 (ids t-0001 ... t-9999)")
    if args.processes > args.terminals:
        raise ToolError("--processes: at most one process per terminal")
    worker = WorkerConfig(
        0, 0, "", "", 0, "",
        protocol=args.protocol,
        keepalive=args.keepalive,
        heartbeat=args.heartbeat,
        record_every=args.record_every,
        revise=args.revise,
        flap_every=args.flap_every,
        ack_timeout=args.ack_timeout,
        backoff_min=args.backoff_min,
        backoff_max=args.backoff_max,
        stable_after=args.stable_after,
        ramp=args.ramp,
        seed=args.seed,
        validate_all=args.validate_all,
    )  # fmt: skip
    return SimOptions(
        scenario=args.scenario,
        db=args.db,
        terminals=args.terminals,
        processes=args.processes,
        county=args.county,
        host=args.host,
        port=args.port,
        duration=args.duration,
        down=args.down,
        outage=args.outage,
        drain_timeout=args.drain_timeout,
        workdir=args.workdir,
        worker=worker,
        say=lambda line: print(f"simulate: {line}", file=sys.stderr, flush=True),
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    o = options(args)
    try:
        report = simulate(o)
    except StorageError as exc:
        raise ToolError(str(exc)) from None
    except RuntimeError as exc:
        raise ToolError(f"simulate: {exc}") from None
    print(report.text(), flush=True)
    if args.report_json is not None:
        args.report_json.write_text(json.dumps(report.to_json(), indent=1, ensure_ascii=False))
    return 0 if report.passed() else 1
