"""The report as text (a terminal table), CSV (one row per station) and JSON.

CSV keeps stable English column names (a spreadsheet or a script reads them in any language);
:func:`cell` is the one spelling of a value, used by the CSV and by the HTML page's
``data-value`` attributes, so the two always agree.
"""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from agent.cli.county.report_text import Words
from agent.cli.i18n import table

CSV_COLUMNS = [
    "county",
    "terminal",
    "scheduled",
    "completed",
    "partial",
    "missed",
    "missed_reasons",
    "viewing_rate",
    "collective_sessions",
    "target_met",
    "attendance",
    "on_demand_plays",
    "on_demand_minutes",
    "days_online",
    "last_seen",
    "silent_days",
    "silent",
    "alarms_raised",
    "alarms_open",
    "open_alarms",
    "content_missing_alarms",
    "courses_missing",
]


def cell(key: str, value: Any) -> str:
    """A value as the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if key == "missed_reasons":
        return "; ".join(f"{r['outcome']}: {r['reason'] or '-'} ({r['count']})" for r in value)
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def write_csv(report: dict[str, Any], out: TextIO) -> int:
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for row in report["stations"]:
        w.writerow([cell(k, row[k]) for k in CSV_COLUMNS])
    return len(report["stations"])


def write_json(report: dict[str, Any], out: TextIO) -> None:
    json.dump(report, out, ensure_ascii=False, indent=1)
    out.write("\n")


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def text_lines(report: dict[str, Any], w: Words) -> list[str]:
    tot = report["totals"]
    pct = round(report["completed_threshold"] * 100)
    county = report["county"] or w("all_counties")
    silent = tot["silent_stations"]
    lines = [
        f"{w('title')}: {w('county')} {county}, {w('month')} {report['month']} "
        f"({report['timezone']}; {w('as_of')} {report['as_of']})",
        "",
        f"{w('totals')}:",
        f"  {w('stations')}: {tot['stations']}; {w('stations_meeting_target')}: "
        f"{tot['stations_meeting_target']}; {w('stations_below_target')}: "
        f"{tot['stations_below_target']}",
        f"  {w('scheduled')}: {tot['scheduled']}; {w('completed', pct=pct)}: {tot['completed']}; "
        f"{w('viewing_rate')}: {percent(tot['viewing_rate'])}",
        f"  {w('on_demand_plays')}: {tot['on_demand_plays']}; {w('on_demand_minutes')}: "
        f"{tot['on_demand_minutes']}; {w('alarms_open')}: {tot['alarms_open']}",
        f"  {w('silent_stations', days=_num(report['silent_days']))}: "
        f"{' '.join(silent) if silent else w('none')}",
        "  " + w("rate_rule", pct=pct),
        "",
        f"{w('per_station')}:",
    ]
    headers = [
        w("terminal"),
        w("scheduled"),
        w("completed", pct=pct),
        w("partial"),
        w("missed"),
        w("viewing_rate"),
        w("collective_sessions", target=report["target"]),
        w("attendance"),
        w("on_demand_plays"),
        w("on_demand_minutes"),
        w("days_online"),
        w("alarms_open"),
    ]
    rows = []
    for r in report["stations"]:
        mark = "" if r["target_met"] else " !"
        rows.append(
            [
                r["terminal"] + (" (" + w("silent") + ")" if r["silent"] else ""),
                str(r["scheduled"]),
                str(r["completed"]),
                str(r["partial"]),
                str(r["missed"]),
                percent(r["viewing_rate"]),
                f"{r['collective_sessions']}/{report['target']}{mark}",
                str(r["attendance"]),
                str(r["on_demand_plays"]),
                str(r["on_demand_minutes"]),
                str(r["days_online"]),
                str(r["alarms_open"]),
            ]
        )
    lines += table(headers, rows, "<" + ">" * (len(headers) - 1), indent="  ")
    for r in report["stations"]:
        extra = []
        if r["missed_reasons"]:
            extra.append(f"{w('missed_reasons')}: {cell('missed_reasons', r['missed_reasons'])}")
        if r["courses_missing"]:
            extra.append(f"{w('courses_missing')}: {' '.join(r['courses_missing'])}")
        if r["open_alarms"]:
            extra.append(f"{w('open_alarms')}: {' '.join(r['open_alarms'])}")
        if extra:
            lines.append(f"  {r['terminal']}: " + "; ".join(extra))
    return lines


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)
