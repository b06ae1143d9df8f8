"""``stationctl schedule validate|next|apply``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.planner import plan
from agent.schedule import ScheduleRejected, ScheduleStore, parse_schedule


def add_parser(sub: Any) -> None:
    p = sub.add_parser("schedule", help="check, preview and apply schedules")
    ssub = p.add_subparsers(dest="schedule_command", required=True)
    v = ssub.add_parser("validate", help="check a schedule file; every problem is listed")
    v.add_argument("file")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=validate, needs_config=False)
    n = ssub.add_parser("next", help="the sessions a schedule file plans")
    n.add_argument("file")
    n.add_argument("--days", type=float, default=7.0)
    n.add_argument("--json", action="store_true")
    n.set_defaults(func=next_cmd, needs_config=False)
    a = ssub.add_parser("apply", help="apply a schedule file on this terminal (USB stick)")
    a.add_argument("file")
    a.add_argument("--layer", choices=["terminal", "county"], default=None)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=apply)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"stationctl: cannot read {path}: {exc.strerror}") from None


def validate(args: argparse.Namespace, _cfg: AgentConfig | None) -> int:
    try:
        doc = parse_schedule(_read(args.file), args.file)
    except ScheduleRejected as exc:
        if args.json:
            print(json.dumps({"valid": False, "problems": exc.problems}, ensure_ascii=False))
        else:
            print(exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"valid": True, "version": doc.version, "items": len(doc.items)}))
    else:
        print(f"{args.file}: valid (version {doc.version}, {len(doc.items)} item(s))")
    return 0


def next_cmd(args: argparse.Namespace, _cfg: AgentConfig | None) -> int:
    try:
        doc = parse_schedule(_read(args.file), args.file)
    except ScheduleRejected as exc:
        print(exc, file=sys.stderr)
        return 1
    now = time.time()
    layer = doc.layer or "terminal"
    p = plan({layer: doc}, now, now + args.days * 86400)
    tz = doc.tz
    rows = []
    for occ in p.occurrences:
        if occ.start < now:
            continue
        rows.append(
            {
                "start": dt.datetime.fromtimestamp(occ.start, tz).isoformat(timespec="minutes"),
                "end": dt.datetime.fromtimestamp(occ.end, tz).isoformat(timespec="minutes"),
                "item": occ.item.id,
                "course_id": occ.item.course.id,
                "title": occ.item.course.title,
                "media": occ.item.course.media,
                "priority": occ.priority,
                "cut_by": p.cut_by.get(occ.key),
            }
        )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        note = f"  (cut short by {r['cut_by']})" if r["cut_by"] else ""
        print(
            f"{r['start'][:16].replace('T', ' ')} - {r['end'][11:16]}  {r['course_id']:<12} {r['title']}{note}"
        )
    if not rows:
        print("no sessions in the next", args.days, "days")
    return 0


def apply(args: argparse.Namespace, cfg: AgentConfig) -> int:
    store = ScheduleStore(cfg.state_dir)
    result = store.apply(
        _read(args.file), args.file, layer=args.layer, terminal=cfg.terminal, county=cfg.county
    )
    if args.json:
        print(json.dumps(result.__dict__, ensure_ascii=False))
    else:
        print(f"{args.file}: {result.layer} schedule version {result.version}: {result.status}")
        for reason in result.reasons:
            print(f"  {reason}")
        if result.status == "applied":
            print("The agent picks it up within a few seconds.")
    return 0 if result.status == "applied" else 1
