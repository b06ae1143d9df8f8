"""``countyctl``: push schedules, watch the fleet, collect records, send commands.

    countyctl push-schedule FILE --county C [--terminal T] [--expect T1,T2] [--wait 30] [--key K]
    countyctl push-library FILE --county C [--terminal T] [--key K]
    countyctl keys init-root|new-county|certify|revoke|list ...    (docs/trust.md)
    countyctl sign FILE --key K                 countyctl verify FILE --roots DIR --county C
    countyctl watch --county C [--interval 2] [--once] [--json]
    countyctl collect --db FILE|URL [--county C] [--shared GROUP]   (runs until Ctrl-C)
    countyctl collect --db FILE|URL --export OUT.csv                (export and exit)
    countyctl report --db FILE|URL --month 2026-11 [--county C] [--csv|--json|--html FILE]
    countyctl cmd T status|play|stop|reload|ping --county C [--course ID] [--arg k=v ...] [--key K]
    countyctl content --county C [--hours 24] [--wait 3] [--json]
    countyctl broker-acl --county C --roster FILE [--out DIR] [--passwords] [--make-certs DIR]

Broker options (``--host``, ``--port``, ``--protocol``, TLS, credentials) are the agent's own.
Exit status: 0 done, 1 a terminal refused or did not answer, 2 bad input or no broker.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import sys
import threading
import time
from pathlib import Path

from agent.cli.county import broker_acl, keys, sign
from agent.cli.county.client import CountyClient, ToolError, add_broker_args, broker_config
from agent.cli.county.cmd import parse_args_kv, send_command
from agent.cli.county.collector import Collector
from agent.cli.county.content import gather, render
from agent.cli.county.push import LIBRARY, SCHEDULE, push_schedule
from agent.cli.county.report_cli import ID_RE, add_report_parser, cmd_report
from agent.cli.county.roster import add_roster_arg, subscribe_all
from agent.cli.county.roster import load as load_roster
from agent.cli.county.simulate import cli as simulate_cli
from agent.cli.county.storage import StorageError, open_storage
from agent.cli.county.watch import Fleet, watch_filters
from agent.domain import protocol as p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="countyctl", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)

    for name, what in (
        ("push-schedule", "a schedule"),
        ("push-library", "a course manifest"),
    ):
        sp = sub.add_parser(name, help=f"{what}: validate, publish (retained), wait for the acks")
        sp.add_argument("file", type=Path)
        sp.add_argument("--county", required=True)
        sp.add_argument("--terminal", default=None, help="the terminal layer of one terminal")
        sp.add_argument("--expect", default="", help="terminals that must answer (comma separated)")
        sp.add_argument("--wait", type=float, default=30.0, help="seconds to wait for acks")
        add_signing_args(sp)
        add_broker_args(sp)

    sw = sub.add_parser("watch", help="a live table of the county's terminals")
    sw.add_argument("--county", default=None)
    sw.add_argument("--interval", type=float, default=2.0)
    sw.add_argument("--once", action="store_true", help="gather for --wait seconds, print, exit")
    sw.add_argument("--wait", type=float, default=2.0)
    sw.add_argument("--json", action="store_true")
    add_broker_args(sw)

    sc = sub.add_parser("collect", help="the durable record collector (or --export its records)")
    sc.add_argument("--db", required=True, help="a SQLite file or a postgresql:// URL")
    sc.add_argument("--county", default=None)
    sc.add_argument("--export", type=Path, default=None, help="write the records as CSV and exit")
    sc.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sc.add_argument("--retry-max", type=float, default=30.0, help="longest wait between retries")
    sc.add_argument(
        "--shared",
        default=None,
        metavar="GROUP",
        help="one of several collectors: MQTT 5 shared subscriptions ($share/GROUP/...)",
    )
    add_broker_args(sc)
    add_report_parser(sub)
    simulate_cli.add_parser(sub)

    sm = sub.add_parser("cmd", help="send a command to a terminal and print its reply")
    sm.add_argument("terminal")
    sm.add_argument("name", help="status, play, stop, reload or ping")
    sm.add_argument("--county", required=True)
    sm.add_argument("--course", default=None, help="play: the course id")
    sm.add_argument("--media", default=None, help="play: a media path under the content root")
    sm.add_argument("--arg", action="append", default=[], help="extra argument key=value")
    sm.add_argument("--id", default=None, help="the command id (default: a new one)")
    sm.add_argument("--wait", type=float, default=20.0)
    sm.add_argument(
        "--expires-minutes", type=float, default=10.0, help="a signed command's lifetime"
    )
    add_signing_args(sm)
    add_broker_args(sm)

    sn = sub.add_parser("content", help="course files each terminal still lacks, per slot")
    sn.add_argument("--county", required=True)
    sn.add_argument(
        "--hours", type=float, default=24.0, help="exit 1 if a slot this near lacks its file"
    )
    sn.add_argument("--wait", type=float, default=3.0, help="seconds to gather retained statuses")
    sn.add_argument("--json", action="store_true")
    add_broker_args(sn)
    for name in ("push-schedule", "push-library", "watch", "content"):
        add_roster_arg(sub.choices[name])

    broker_acl.add_parser(sub)
    keys.add_parser(sub)
    sign.add_parser(sub)

    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except ToolError as exc:
        print(f"countyctl: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def add_signing_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--key", type=Path, default=None, help="sign with this county key (.key)")
    ap.add_argument("--cert", type=Path, default=None, help="default: KEY_ID.cert.json beside it")


def signer(args: argparse.Namespace) -> tuple[keys.KeyFile, dict] | None:
    """The county key and its certificate from ``--key``/``--cert``, or None (unsigned)."""
    if args.key is None:
        return None
    key = keys.load_private(args.key)
    return key, keys.load_cert_for(key, args.cert)


def cmd_push(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise ToolError(f"cannot read {args.file}: {exc.strerror}") from None
    expect = [x for x in args.expect.split(",") if x]
    result = push_schedule(
        broker_config(args),
        data,
        county=args.county,
        terminal=args.terminal,
        expect=expect,
        wait=args.wait,
        client_id=args.client_id,
        kind=LIBRARY if args.command == "push-library" else SCHEDULE,
        signer=signer(args),
        roster=load_roster(args.roster),
    )
    print("\n".join(result.lines()))
    return 0 if result.ok() else 1


def cmd_watch(args: argparse.Namespace) -> int:
    cc = CountyClient(
        broker_config(args), args.client_id or f"countyctl-watch-{time.time_ns() % 10**9}"
    )
    roster = load_roster(args.roster)
    filters = watch_filters(args.county, roster)
    cc.connect()
    fleet = Fleet(args.county, roster)
    try:
        subscribe_all(cc, filters)
        end = time.monotonic() + args.wait
        next_print = time.monotonic() + args.interval
        while True:
            try:
                msg = cc.messages.get(timeout=0.1)
                line = fleet.update(msg.topic, msg.payload)
                if line and not args.once and not args.json:
                    print(line, flush=True)
            except queue.Empty:
                pass
            now = time.monotonic()
            if args.once and now >= end:
                break
            if not args.once and now >= next_print:
                next_print = now + args.interval
                _print_fleet(fleet, args.json, clear=sys.stdout.isatty())
    finally:
        cc.close()
    _print_fleet(fleet, args.json, clear=False)
    return 0


def _print_fleet(fleet: Fleet, as_json: bool, clear: bool) -> None:
    if as_json:
        print(json.dumps(fleet.rows(), ensure_ascii=False), flush=True)
        return
    if clear:
        print("\x1b[2J\x1b[H", end="")
    print(fleet.table(), flush=True)


def cmd_collect(args: argparse.Namespace) -> int:
    if args.shared is not None and not ID_RE.match(args.shared):
        raise ToolError(f"--shared {args.shared!r}: a group name is letters, digits, '_', '-'")
    try:
        db = open_storage(args.db)
    except StorageError as exc:
        raise ToolError(str(exc)) from None
    if args.export is not None:
        try:
            with open(args.export, "w", newline="", encoding="utf-8") as fh:
                n = db.export_csv(fh)
        finally:
            db.close()
        print(f"{n} record(s) written to {args.export}")
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    collector = Collector(
        broker_config(args),
        db,
        county=args.county,
        client_id=args.client_id,
        shared=args.shared,
        retry_max=args.retry_max,
        on_line=lambda line: print(f"collect: {line}", flush=True),
    )
    try:
        collector.run(stop, duration=args.duration)
    except StorageError as exc:
        raise ToolError(
            f"{exc} (not acknowledged: the broker and the terminals send it again)"
        ) from None
    print(
        f"collect: stopped; {collector.stored} new record(s), "
        f"{collector.duplicates} duplicate(s) dropped",
        flush=True,
    )
    return 0


def cmd_cmd(args: argparse.Namespace) -> int:
    if args.name not in p.COMMANDS:
        raise ToolError(f"unknown command {args.name!r}; known: {', '.join(p.COMMANDS)}")
    extra = parse_args_kv(args.arg)
    if args.course:
        extra["course_id"] = args.course
    if args.media:
        extra["media"] = args.media
    reply = send_command(
        broker_config(args),
        county=args.county,
        terminal=args.terminal,
        cmd=args.name,
        args=extra,
        cmd_id=args.id,
        wait=args.wait,
        client_id=args.client_id,
        signer=signer(args),
        expires_s=args.expires_minutes * 60,
    )
    if reply is None:
        print(f"no reply from {args.terminal} within {args.wait:.0f} s (offline?)", file=sys.stderr)
        return 1
    print(json.dumps(reply, ensure_ascii=False, indent=1))
    return 0 if reply.get("status") == "ok" else 1


def cmd_content(args: argparse.Namespace) -> int:
    if args.hours < 0 or args.wait <= 0:
        raise ToolError("--hours must be 0 or more and --wait more than 0")
    cc = CountyClient(
        broker_config(args), args.client_id or f"countyctl-content-{time.time_ns() % 10**9}"
    )
    cc.connect()
    try:
        views = gather(cc, args.county, args.wait, load_roster(args.roster))
    finally:
        cc.close()
    now = time.time()
    if args.json:
        rows = [views[k].to_json(now, args.hours) for k in sorted(views)]
        print(
            json.dumps(
                {"county": args.county, "hours": args.hours, "terminals": rows},
                ensure_ascii=False,
                indent=1,
            )
        )
    else:
        print("\n".join(render(views, args.county, now, args.hours)))
    late = [v for v in views.values() if v.late(now, args.hours)]
    return 1 if late or not views else 0


COMMANDS = {
    "push-schedule": cmd_push,
    "push-library": cmd_push,
    "keys": keys.cmd_keys,
    "sign": sign.cmd_sign,
    "verify": sign.cmd_verify,
    "watch": cmd_watch,
    "collect": cmd_collect,
    "report": cmd_report,
    "cmd": cmd_cmd,
    "content": cmd_content,
    "broker-acl": broker_acl.run,
    "simulate": simulate_cli.cmd_simulate,
}
