"""The HTML report in a real browser (Debian's headless Chromium): it renders, it loads nothing
from the network, and the numbers in the rendered page are the CSV's."""

from __future__ import annotations

import csv
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agent.cli.county.storage import open_storage
from tests.county import month as m
from tests.county.test_report import countyctl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--no-first-run",
            "--disable-extensions",
            *args,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=90,
    )


class Cells(HTMLParser):
    """The data-field/data-value pairs of the rendered page: per station row, and the totals."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.totals: dict[str, str] = {}
        self.bars: dict[str, dict[str, str]] = {}
        self._row: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-terminal" in a:
            self._row = a["data-terminal"]
            self.rows[self._row] = {}
        elif tag == "svg":
            self._chart = a.get("id")
            self.bars[self._chart or ""] = {}
        elif tag == "rect" and self._chart and "data-terminal" in a:
            self.bars[self._chart][a["data-terminal"]] = a["data-value"]
        elif "data-field" in a:
            target = self.rows[self._row] if self._row else self.totals
            target[a["data-field"]] = a["data-value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None
        elif tag == "svg":
            self._chart = None


def png_facts(path: Path) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the pixels hold (a blank page: few)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    return width, height, len(set(zlib.decompress(idat)))


def test_the_page_renders_and_says_what_the_csv_says(tmp_path: Path) -> None:
    db = tmp_path / "county.db"
    st = open_storage(db)
    m.fill(st)
    st.close()
    page, table = tmp_path / "report.html", tmp_path / "report.csv"
    res = countyctl("report", "--db", str(db), "--month", m.MONTH, "--county", "c-01",
                    "--html", str(page), "--csv", str(table), "--lang", "zh")  # fmt: skip
    assert res.returncode == 0, res.stderr
    html = page.read_text(encoding="utf-8")
    # self-contained: nothing to fetch (the only URL is the SVG namespace, never loaded)
    assert not re.search(r"""(src|href)\s*=|@import|url\(|<script|<link""", html, re.I)
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<svg" in dom.stdout and "集中学习" in dom.stdout
    cells = Cells()
    cells.feed(dom.stdout)
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(cells.rows) == [r["terminal"] for r in rows]  # the same order: below target first
    for row in rows:
        assert cells.rows[row["terminal"]] == row, row["terminal"]
        assert cells.bars["chart-sessions"][row["terminal"]] == row["collective_sessions"]
        assert cells.bars["chart-online"][row["terminal"]] == row["days_online"]
        assert float(cells.bars["chart-rate"][row["terminal"]]) == float(row["viewing_rate"] or 0)
    assert cells.totals["stations_meeting_target"] == "1"
    assert cells.totals["viewing_rate"] == "0.556"
    assert cells.totals["silent_stations"] == "t-c"

    shot = tmp_path / "report.png"
    res = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1400", page.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    width, height, shades = png_facts(shot)
    assert (width, height) == (1280, 1400)
    assert shades > 50, "the screenshot is (nearly) blank"
