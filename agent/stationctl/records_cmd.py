"""``stationctl records``: the viewing history."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.config import AgentConfig
from agent.store import Store


def add_parser(sub: Any) -> None:
    p = sub.add_parser("records", help="viewing records")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--course", help="only this course id")
    p.add_argument("--limit", type=int, default=None, help="only the newest N")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: AgentConfig) -> int:
    if not cfg.db_path.exists():
        print(
            f"stationctl: no store yet at {cfg.db_path} (has the agent ever run?)", file=sys.stderr
        )
        return 1
    store = Store(cfg.db_path, readonly=True)
    try:
        recs = store.records(course_id=args.course, limit=args.limit)
    finally:
        store.close()
    if args.json:
        json.dump([r.to_dict() for r in recs], sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return 0
    for r in recs:
        print(
            f"{r.seq:>5} {r.planned_start or r.started_at or '-':<24} {r.course_id:<12} "
            f"{(r.outcome or 'open'):<11} {r.completion * 100:5.1f}% {r.played_seconds:8.1f}s  {r.reason or ''}"
        )
    return 0
