"""``countyctl report``: its options and what it writes where.

Without ``--csv``/``--json``/``--html`` the report is printed as a table; each of those takes a
file (``-`` for standard output) and they combine, so one run can write all three from the same
numbers.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.cli.county import report, report_html, report_render
from agent.cli.county.client import ToolError
from agent.cli.county.report_text import Words
from agent.cli.county.storage import StorageError, open_storage
from agent.domain.viewing import MONTH_RE, current_month

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def add_report_parser(sub: Any) -> None:
    sr = sub.add_parser("report", help="a month of the county's stations: sessions, viewing rate")
    sr.add_argument("--db", required=True, help="the collector's SQLite file or postgresql:// URL")
    sr.add_argument("--month", default=None, help="YYYY-MM (default: this month)")
    sr.add_argument("--county", default=None, help="one county (default: every county stored)")
    sr.add_argument("--tz", default="Asia/Shanghai", help="the stations' time zone (IANA name)")
    sr.add_argument(
        "--silent-days", type=float, default=3.0, help="silent: not heard from for more days"
    )
    sr.add_argument("--csv", type=Path, default=None, metavar="FILE", help="one row per station")
    sr.add_argument("--json", type=Path, default=None, metavar="FILE")
    sr.add_argument("--html", type=Path, default=None, metavar="FILE", help="one offline page")
    sr.add_argument("--lang", choices=["zh", "en"], default=None, help="default: from the locale")


def cmd_report(args: argparse.Namespace) -> int:
    try:
        tz = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"--tz {args.tz!r}: not a known time zone (e.g. Asia/Shanghai)") from None
    now = time.time()
    month = args.month or current_month(now, tz)
    if not MONTH_RE.match(month):
        raise ToolError(f"--month {month!r}: use YYYY-MM, e.g. 2026-11")
    if args.silent_days < 0:
        raise ToolError("--silent-days must be 0 or more")
    try:
        db = open_storage(args.db)
    except StorageError as exc:
        raise ToolError(str(exc)) from None
    try:
        data = report.build(
            db, month, tz, county=args.county, silent_days=args.silent_days, now=now
        )
    finally:
        db.close()
    w = Words(args.lang)
    outputs: list[tuple[Path, Callable[[TextIO], Any]]] = []
    if args.csv is not None:
        outputs.append((args.csv, lambda fh: report_render.write_csv(data, fh)))
    if args.json is not None:
        outputs.append((args.json, lambda fh: report_render.write_json(data, fh)))
    if args.html is not None:
        outputs.append((args.html, lambda fh: fh.write(report_html.render(data, w))))
    if not outputs:
        print("\n".join(report_render.text_lines(data, w)))
    for path, write in outputs:
        _write(path, write)
    return 0


def _write(path: Path, write: Callable[[TextIO], Any]) -> None:
    if str(path) == "-":
        write(sys.stdout)
        sys.stdout.flush()
        return
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            write(fh)
    except OSError as exc:
        raise ToolError(f"cannot write {path}: {exc.strerror}") from None
    print(f"report written to {path}", file=sys.stderr)
