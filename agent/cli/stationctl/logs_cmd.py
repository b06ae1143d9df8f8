"""``stationctl logs``: the agent's own event log, newest last; works with the agent stopped."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import sys
import time
from typing import Any

from agent.adapters.sqlite import read_model
from agent.cli.i18n import _, pad, text_width
from agent.cli.stationctl import labels
from agent.cli.stationctl.common import EXIT_OK, EXIT_USAGE, CtlError, Ctx, add_common
from agent.domain.records import utc_text

LEVEL_RANK = {"info": 0, "warning": 1, "error": 2}
SPAN_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
SPAN_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_LINES = 50


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "logs",
        help=_("the agent's event log"),
        description=_("The agent's event log, newest last."),
    )
    add_common(p)
    p.add_argument(
        "--since",
        metavar="WHEN",
        help=_("from this long ago (30m, 2h, 3d) or this local time (2026-11-28 08:00)"),
    )
    p.add_argument(
        "--level",
        choices=["info", "warning", "error"],
        default="info",
        help=_("only this level and worse"),
    )
    p.add_argument("--kind", metavar="KIND", help=_("only events of this kind"))
    p.add_argument(
        "--lines",
        "-n",
        type=int,
        default=None,
        metavar="N",
        help=_("at most the last N events (default 50 without --since)"),
    )
    p.add_argument(
        "--follow", "-f", action="store_true", help=_("keep printing new events (Ctrl-C stops)")
    )
    p.set_defaults(func=run)


def parse_since(text: str, now: float, tz: dt.tzinfo) -> float:
    m = SPAN_RE.match(text.strip().lower())
    if m:
        return now - float(m.group(1)) * SPAN_UNITS[m.group(2)]
    try:
        d = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CtlError(
            _("--since must be a span like 30m, 2h, 3d or a local time like 2026-11-28 08:00"),
            EXIT_USAGE,
        ) from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=tz)
    return d.timestamp()


def query(
    db: sqlite3.Connection,
    *,
    since: str | None,
    min_level: str,
    kind: str | None,
    after_id: int = 0,
    limit: int | None = None,
) -> list[sqlite3.Row]:
    levels = [lv for lv, rank in LEVEL_RANK.items() if rank >= LEVEL_RANK[min_level]]
    return read_model.events(
        db, levels=levels, since=since, kind=kind, after_id=after_id, limit=limit
    )


def event_dict(ctx: Ctx, row: sqlite3.Row) -> dict[str, Any]:
    data = None
    if row["data"]:
        try:
            data = json.loads(row["data"])
        except ValueError:
            data = row["data"]
    return {
        "id": row["id"],
        "ts": row["ts"],
        "local_time": ctx.local(row["ts"], "%Y-%m-%d %H:%M:%S"),
        "level": row["level"],
        "kind": row["kind"],
        "message": row["message"],
        "data": data,
    }


def message_text(ev: dict[str, Any]) -> str:
    """The stored message, in the admin's words where the event says everything needed."""
    kind, data = ev["kind"], ev["data"] if isinstance(ev["data"], dict) else {}
    if kind == "agent_started":
        return _("The agent started.")
    if kind == "agent_stopped":
        return _("The agent stopped.")
    if kind == "alarm" and data.get("name"):
        what, _todo = labels.alarm(str(data["name"]))
        if data.get("state") == "cleared":
            return _("Cleared: {what}").format(what=what)
        return what
    if kind == "attendance" and "attendance" in data:
        return _("Attendance {n} entered for record {seq}.").format(
            n=data["attendance"], seq=data.get("seq", "?")
        )
    return str(ev["message"])


def line(ev: dict[str, Any]) -> str:
    lvl = labels.level(ev["level"])
    kind = labels.event_kind(ev["kind"])
    lvl_w = max(text_width(labels.level(x)) for x in LEVEL_RANK)
    kind_w = max(text_width(labels.event_kind(k)) for k in labels.EVENT_KINDS)
    return (
        f"{ev['local_time']}  {pad(lvl, lvl_w)}  {pad(kind, kind_w)}  {message_text(ev)}".rstrip()
    )


def run(ctx: Ctx) -> int:
    args = ctx.args
    since = utc_text(parse_since(args.since, ctx.now, ctx.tz)) if args.since else None
    limit = args.lines if args.lines is not None else (None if since else DEFAULT_LINES)
    db = ctx.store().db
    rows = query(db, since=since, min_level=args.level, kind=args.kind, limit=limit)
    last_id = rows[-1]["id"] if rows else read_model.last_event_id(db)
    events = [event_dict(ctx, r) for r in rows]
    if ctx.json and not args.follow:
        ctx.print_json(events)
        return EXIT_OK
    for ev in events:
        _emit(ctx, ev)
    if not events and not args.follow and not ctx.json:
        ctx.print(_("No events."))
    if not args.follow:
        return EXIT_OK
    try:
        while True:
            time.sleep(0.5)
            for r in query(db, since=None, min_level=args.level, kind=args.kind, after_id=last_id):
                last_id = r["id"]
                _emit(ctx, event_dict(ctx, r))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return EXIT_OK


def _emit(ctx: Ctx, ev: dict[str, Any]) -> None:
    if ctx.json:
        # --follow --json: one JSON object per line, for scripts that read a stream.
        sys.stdout.write(json.dumps(ev, ensure_ascii=False, default=str) + "\n")
    else:
        ctx.print(line(ev))
