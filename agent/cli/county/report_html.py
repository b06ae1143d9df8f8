"""The report as one self-contained HTML page: inline CSS, charts in plain inline SVG, no script
and no network resource (a county office may be offline). Plain SVG is smaller than any chart
library: three horizontal bar charts are a few hundred bytes of markup per station.

Every number a reader sees is also in a ``data-value`` attribute spelled as the CSV spells it
(:func:`agent.cli.county.report_render.cell`), so a test can compare the rendered page with the
CSV cell by cell.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from agent.cli.county.report_render import CSV_COLUMNS, cell, percent
from agent.cli.county.report_text import Words

ROW_H = 20
LABEL_W = 150
BAR_W = 420
CHART_W = LABEL_W + BAR_W + 70

CSS = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;
margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px}
.meta{color:#555;font-size:13px}
dl.totals{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:8px;margin:0}
dl.totals div{border:1px solid #ddd;border-radius:6px;padding:8px 10px}
dt{font-size:12px;color:#555}dd{margin:2px 0 0;font-size:20px;font-weight:600}
.rule{font-size:12px;color:#555}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart{border:1px solid #ddd;border-radius:6px;padding:8px}
.chart h3{font-size:14px;margin:0 0 6px}
svg text{font-size:12px;fill:#222}
.bar.ok{fill:#3b8d5a}.bar.low{fill:#d0533f}.bar.plain{fill:#4a78b5}
.target{stroke:#111;stroke-dasharray:4 3;stroke-width:1.5}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:right;vertical-align:top}
th{background:#f3f3f3;font-weight:600;min-width:3.5em}
td.num{white-space:nowrap}
td.text,th.text{text-align:left}
tr.below td{background:#fdf0ee}
.silent{color:#a33;font-weight:600}
"""

# The table's columns after the station: CSV key and how it is shown.
TABLE = [
    "scheduled",
    "completed",
    "partial",
    "missed",
    "viewing_rate",
    "collective_sessions",
    "attendance",
    "on_demand_plays",
    "on_demand_minutes",
    "days_online",
    "last_seen",
    "alarms_raised",
    "alarms_open",
    "missed_reasons",
    "courses_missing",
    "open_alarms",
]
TEXT_COLUMNS = {"last_seen", "missed_reasons", "courses_missing", "open_alarms"}


def render(report: dict[str, Any], w: Words) -> str:
    pct = round(report["completed_threshold"] * 100)
    county = report["county"] or w("all_counties")
    title = f"{w('title')} · {county} · {report['month']}"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{w.lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(w("as_of"))} {escape(_local(report["as_of"], report))} '
        f"({escape(report['timezone'])})</p>",
        f"<h2>{escape(w('totals'))}</h2>",
        _totals(report, w, pct),
        f'<p class="rule">{escape(w("rate_rule", pct=pct))}</p>',
        '<div class="charts">',
        _charts(report, w),
        "</div>",
        f"<h2>{escape(w('per_station'))}</h2>",
        _table(report, w, pct),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _totals(report: dict[str, Any], w: Words, pct: int) -> str:
    tot = report["totals"]
    silent = tot["silent_stations"]
    days = report["silent_days"]
    items = [
        ("stations", w("stations"), str(tot["stations"])),
        ("stations_meeting_target", w("stations_meeting_target"), None),
        ("stations_below_target", w("stations_below_target"), None),
        ("scheduled", w("scheduled"), None),
        ("completed", w("completed", pct=pct), None),
        ("viewing_rate", w("viewing_rate"), percent(tot["viewing_rate"])),
        ("collective_sessions", w("collective_sessions", target=report["target"]), None),
        ("attendance", w("attendance"), None),
        ("on_demand_plays", w("on_demand_plays"), None),
        ("on_demand_minutes", w("on_demand_minutes"), None),
        ("alarms_open", w("alarms_open"), None),
        (
            "silent_stations",
            w("silent_stations", days=int(days) if float(days).is_integer() else days),
            f"{len(silent)}" + (f" ({' '.join(silent)})" if silent else ""),
        ),
    ]
    out = ['<dl class="totals" id="totals">']
    for key, label, shown in items:
        value = cell(key, tot[key])
        out.append(
            f'<div><dt>{escape(label)}</dt><dd data-field="{key}" data-value="{escape(value)}">'
            f"{escape(shown if shown is not None else value)}</dd></div>"
        )
    out.append("</dl>")
    return "".join(out)


def _charts(report: dict[str, Any], w: Words) -> str:
    rows = report["stations"]
    target = report["target"]
    sessions = [
        (r["terminal"], r["collective_sessions"], str(r["collective_sessions"]), r["target_met"])
        for r in rows
    ]
    top = max([target + 1, *(v for _, v, _, _ in sessions)])
    rates = [
        (r["terminal"], r["viewing_rate"] or 0.0, percent(r["viewing_rate"]), None) for r in rows
    ]
    days = [(r["terminal"], r["days_online"], str(r["days_online"]), None) for r in rows]
    month_days = max([28, *(v for _, v, _, _ in days)])
    return "".join(
        [
            _bar_chart("chart-sessions", w("chart_sessions"), sessions, top, target),
            _bar_chart("chart-rate", w("chart_rate"), rates, 1.0, None),
            _bar_chart("chart-online", w("chart_online"), days, month_days, None),
        ]
    )


def _bar_chart(
    chart_id: str,
    title: str,
    items: list[tuple[str, float, str, bool | None]],
    top: float,
    target: float | None,
) -> str:
    height = max(1, len(items)) * ROW_H + 10
    out = [
        f'<div class="chart"><h3>{escape(title)}</h3>',
        f'<svg id="{chart_id}" xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" '
        f'height="{height}" viewBox="0 0 {CHART_W} {height}" role="img" '
        f'aria-label="{escape(title)}">',
    ]
    for i, (label, value, shown, ok) in enumerate(items):
        y = i * ROW_H + 4
        width = 0.0 if top <= 0 else max(0.0, min(1.0, value / top)) * BAR_W
        kind = "plain" if ok is None else ("ok" if ok else "low")
        out.append(
            f'<text x="{LABEL_W - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar {kind}" data-terminal="{escape(label)}" data-value="{value}" '
            f'x="{LABEL_W}" y="{y}" width="{width:.1f}" height="{ROW_H - 6}">'
            f"<title>{escape(label)}: {escape(shown)}</title></rect>"
            f'<text x="{LABEL_W + width + 4:.1f}" y="{y + 13}">{escape(shown)}</text>'
        )
    if target is not None and top > 0:
        x = LABEL_W + target / top * BAR_W
        out.append(f'<line class="target" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}"/>')
    out.append("</svg></div>")
    return "".join(out)


def _table(report: dict[str, Any], w: Words, pct: int) -> str:
    heads = {
        "completed": w("completed", pct=pct),
        "collective_sessions": w("collective_sessions", target=report["target"]),
    }
    out = [
        '<table id="stations"><thead><tr>',
        f'<th class="text">{escape(w("terminal"))}</th>',
        *(
            f'<th class="{"text" if k in TEXT_COLUMNS else "num"}">{escape(heads.get(k) or w(k))}</th>'
            for k in TABLE
        ),
        "</tr></thead><tbody>",
    ]
    for r in report["stations"]:
        cls = "" if r["target_met"] else "below"
        silent = f' <span class="silent">({escape(w("silent"))})</span>' if r["silent"] else ""
        hidden = "".join(
            f'<td hidden data-field="{k}" data-value="{escape(cell(k, r[k]))}"></td>'
            for k in CSV_COLUMNS
            if k not in TABLE and k != "terminal"
        )
        out.append(
            f'<tr class="{cls}" data-terminal="{escape(r["terminal"])}">'
            f'<td class="text" data-field="terminal" data-value="{escape(r["terminal"])}">'
            f"{escape(r['terminal'])}{silent}</td>"
        )
        for k in TABLE:
            value = cell(k, r[k])
            shown = percent(r[k]) if k == "viewing_rate" else value
            if k == "last_seen":
                shown = _local(r[k], report)
            css = "text" if k in TEXT_COLUMNS else "num"
            out.append(
                f'<td class="{css}" data-field="{k}" data-value="{escape(value)}">'
                f"{escape(shown)}</td>"
            )
        out.append(hidden + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _local(utc: str | None, report: dict[str, Any]) -> str:
    """A stored UTC time as the stations' local time, to the minute (``-`` for none)."""
    if not utc:
        return "-"
    when = dt.datetime.fromisoformat(utc.replace("Z", "+00:00"))
    return when.astimezone(ZoneInfo(report["timezone"])).strftime("%Y-%m-%d %H:%M")
