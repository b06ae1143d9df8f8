"""``stationctl records``: the viewing history, with the month's summary; ``--csv`` for a USB stick."""

from __future__ import annotations

import csv
import io
import sys
from typing import Any

from agent.adapters.sqlite import read_model
from agent.cli.i18n import N_, _, fit, ngettext, table
from agent.cli.stationctl import labels
from agent.cli.stationctl.common import EXIT_OK, EXIT_USAGE, CtlError, Ctx, add_common
from agent.cli.stationctl.summary import current_month, month_bounds, month_summary
from agent.domain.records import Record


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "records",
        help=_("viewing history and the monthly summary"),
        description=_("Viewing history and the monthly summary."),
    )
    add_common(p)
    p.add_argument("--month", metavar="YYYY-MM", help=_("only this month (station time)"))
    p.add_argument("--course", metavar="ID", help=_("only this course id"))
    p.add_argument("--limit", type=int, default=None, metavar="N", help=_("only the newest N"))
    p.add_argument(
        "--all",
        action="store_true",
        help=_("every record (on the screen the default is the current month)"),
    )
    p.add_argument("--csv", action="store_true", help=_("CSV for a spreadsheet (UTF-8)"))
    p.add_argument("--output", "-o", metavar="FILE", help=_("write to FILE instead of the screen"))
    p.add_argument(
        "--summary", action="store_true", help=_("only the monthly summary, not the list")
    )
    p.set_defaults(func=run)


def select(ctx: Ctx) -> list[Record]:
    args = ctx.args
    month = month_bounds(args.month, ctx.tz) if args.month else None
    return read_model.records(ctx.store().db, month=month, course_id=args.course, limit=args.limit)


def run(ctx: Ctx) -> int:
    args = ctx.args
    if args.month:
        try:
            month_bounds(args.month, ctx.tz)
        except ValueError:
            raise CtlError(
                _("--month must look like 2026-11, not {value!r}").format(value=args.month),
                EXIT_USAGE,
            ) from None
    month = args.month or current_month(ctx.now, ctx.tz)
    if args.summary:
        summary = month_summary(ctx.store().db, month, ctx.tz, args.course)
        if ctx.json:
            ctx.print_json(summary)
        else:
            _write(ctx, "\n".join(summary_lines(summary)) + "\n")
        return EXIT_OK
    if not (ctx.json or args.csv or args.month or args.course or args.limit or args.all):
        args.month = month  # on the screen, the current month unless asked otherwise
    recs = select(ctx)
    if ctx.json:
        ctx.print_json([r.to_dict() for r in recs])
        return EXIT_OK
    if args.csv:
        _write(ctx, to_csv(ctx, recs), bom=True)
        return EXIT_OK
    lines = record_table(ctx, recs)
    summary = month_summary(ctx.store().db, month, ctx.tz, args.course)
    lines += ["", *summary_lines(summary)]
    _write(ctx, "\n".join(lines) + "\n")
    return EXIT_OK


def _write(ctx: Ctx, text: str, bom: bool = False) -> None:
    if ctx.args.output:
        # utf-8-sig: spreadsheet programs on the county's Windows PCs then read Chinese right.
        with open(ctx.args.output, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
            fh.write(text)
        print(_("Written to {path}").format(path=ctx.args.output), file=sys.stderr)
    else:
        sys.stdout.write(text)


def when_of(r: Record) -> str | None:
    return r.started_at or r.planned_start or r.ended_at


def played_text(r: Record) -> str:
    if r.started_at is None:
        return "-"
    return f"{r.completion * 100:.0f}%"


def record_table(ctx: Ctx, recs: list[Record]) -> list[str]:
    if not recs:
        return [_("No viewing records.")]
    headers = [
        _("No."),
        _("Time"),
        _("Course"),
        _("Title"),
        _("How"),
        _("Result"),
        _("Shown"),
        _("People"),
        _("Reason"),
    ]
    rows = []
    for r in recs:
        rows.append(
            [
                str(r.seq),
                ctx.local(when_of(r)),
                fit(r.course_id, 16),
                fit(r.title, 24),
                labels.trigger(r.trigger),
                labels.outcome(r.outcome),
                played_text(r),
                "-" if r.attendance is None else str(r.attendance),
                r.reason or "",
            ]
        )
    return table(headers, rows, ">" + "<" * 5 + ">><")


def summary_lines(s: dict[str, Any]) -> list[str]:
    cs = s["collective_sessions"]
    course = ""
    if s.get("course_id"):
        course = " " + _("(course {course})").format(course=s["course_id"])
    lines = [_("Month {month}{course}:").format(month=s["month"], course=course)]
    status = _("target met") if cs["met"] else _("below target")
    lines.append(
        "  "
        + _("Collective study sessions held: {held} of the target {target} ({status})").format(
            held=cs["held"], target=cs["target"], status=status
        )
    )
    if s["attendance_total"]:
        lines.append(
            "  "
            + ngettext(
                "Attendance in total: {n} person",
                "Attendance in total: {n} people",
                s["attendance_total"],
            ).format(n=s["attendance_total"])
        )
    lines.append(
        "  "
        + ngettext(
            "Courses completed: {n} showing ({k} different course)",
            "Courses completed: {n} showings ({k} different courses)",
            len(s["courses_completed"]),
        ).format(n=s["completed"], k=len(s["courses_completed"]))
    )
    if s["shown_without_attendance"]:
        lines.append(
            "  "
            + ngettext(
                "{n} showing has no attendance count: enter it with stationctl attendance N --record NO.",
                "{n} showings have no attendance count: enter them with stationctl attendance N --record NO.",
                s["shown_without_attendance"],
            ).format(n=s["shown_without_attendance"])
        )
    lines.append("  " + _("Missed or not shown: {n}").format(n=s["missed"]))
    for r in s["missed_reasons"]:
        lines.append(
            "    "
            + _("{n} × {outcome}: {reason}").format(
                n=r["count"],
                outcome=labels.outcome(r["outcome"]),
                reason=r["reason"] or _("no reason given"),
            )
        )
    return lines


CSV_HEADERS = [
    N_("No."),
    N_("Time"),
    N_("Course"),
    N_("Title"),
    N_("How"),
    N_("Result"),
    N_("Shown"),
    N_("Minutes played"),
    N_("People"),
    N_("Reason"),
    N_("Clock"),
    N_("Record id"),
]


def to_csv(ctx: Ctx, recs: list[Record]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([_(label) for label in CSV_HEADERS])
    for r in recs:
        w.writerow(
            [
                r.seq,
                ctx.local(when_of(r)),
                r.course_id,
                r.title,
                labels.trigger(r.trigger),
                labels.outcome(r.outcome),
                round(r.completion * 100) if r.started_at else "",
                round(r.played_seconds / 60, 1),
                "" if r.attendance is None else r.attendance,
                r.reason or "",
                r.clock_state,
                r.record_id,
            ]
        )
    return buf.getvalue()
