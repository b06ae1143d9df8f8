"""The report's numbers on a constructed month, on both back-ends; the CLI's CSV, JSON and text."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.cli.county import report
from agent.cli.county.report_render import CSV_COLUMNS, cell
from agent.cli.county.storage import open_storage
from tests.county import month as m
from tests.helpers import ROOT

TZ = ZoneInfo("Asia/Shanghai")


def test_the_month_counts_as_worked_out(storage) -> None:
    m.fill(storage)
    out = report.build(storage, m.MONTH, TZ, county="c-01", silent_days=3, now=m.NOW)
    assert [r["terminal"] for r in out["stations"]] == ["t-b", "t-c", "t-a"]  # below target first
    by = {r["terminal"]: r for r in out["stations"]}
    for terminal, expected in m.STATIONS.items():
        got = {k: by[terminal][k] for k in expected}
        assert got == expected, terminal
    assert {k: out["totals"][k] for k in m.TOTALS} == m.TOTALS
    assert out["as_of"] == "2026-10-31T16:00:00.000Z"
    assert (out["target"], out["completed_threshold"]) == (2, 0.9)


def test_every_county_and_the_silent_threshold(storage) -> None:
    m.fill(storage)
    out = report.build(storage, m.MONTH, TZ, silent_days=30, now=m.NOW)
    assert sorted(r["terminal"] for r in out["stations"]) == ["t-a", "t-b", "t-c", "t-d"]
    assert out["totals"]["silent_stations"] == []  # t-c: 29.6 days, under 30
    running = report.build(storage, m.MONTH, TZ, county="c-01", now=m.NOW - 30 * 86400)
    # the running month, as of 6 October: t-a's heartbeats after that are not counted yet
    by = {r["terminal"]: r for r in running["stations"]}
    assert by["t-a"]["days_online"] == 1 and by["t-c"]["silent"] is True


def countyctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COUNTYCTL_PYTHON": sys.executable, "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(ROOT / "scripts" / "countyctl"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_csv_json_and_text_agree(tmp_path: Path) -> None:
    db = tmp_path / "county.db"
    st = open_storage(db)
    m.fill(st)
    st.close()
    args = ["report", "--db", str(db), "--month", m.MONTH, "--county", "c-01"]
    res = countyctl(*args, "--csv", str(tmp_path / "r.csv"), "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "r.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert list(rows[0]) == CSV_COLUMNS
    assert [r["terminal"] for r in rows] == [s["terminal"] for s in data["stations"]]
    for row, station in zip(rows, data["stations"], strict=True):
        assert row == {k: cell(k, station[k]) for k in CSV_COLUMNS}
    a = next(r for r in rows if r["terminal"] == "t-a")
    assert (a["scheduled"], a["completed"], a["viewing_rate"]) == ("6", "3", "0.5")
    assert a["missed_reasons"] == "missed: power off (1); skipped: checksum: mismatch (1)"

    zh = countyctl(*args, "--lang", "zh")
    assert zh.returncode == 0, zh.stderr
    assert "集中学习（目标2次）" in zh.stdout and "失联超过3天: t-c" in zh.stdout
    en = countyctl(*args, "--lang", "en")
    assert "Viewing rate: 55.6 %" in en.stdout and "Stations meeting the target: 1" in en.stdout
    lines = en.stdout.splitlines()
    table = [ln.split()[0] for ln in lines if ln.startswith("  t-") and "  " in ln.strip()]
    assert table[:3] == ["t-b", "t-c", "t-a"]


def test_bad_input_is_named(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    res = countyctl("report", "--db", db, "--month", "2026-13")
    assert res.returncode == 2 and "--month '2026-13'" in res.stderr
    res = countyctl("report", "--db", db, "--tz", "Mars/Base")
    assert res.returncode == 2 and "--tz 'Mars/Base'" in res.stderr
    res = countyctl("report", "--db", "postgresql://nobody@127.0.0.1:1/x", "--month", "2026-10")
    assert res.returncode == 2 and "cannot connect to PostgreSQL" in res.stderr
