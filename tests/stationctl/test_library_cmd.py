"""``stationctl library`` and ``library import``: rendering from a status dict, and a real agent
taking a USB stick's manifest and videos over its control socket."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from agent.cli import i18n
from agent.cli.stationctl.content_view import ContentIndex, label
from agent.cli.stationctl.library_cmd import library_rows, render_library
from agent.testing.media import write_wav
from tests.helpers import start_agent, write_config
from tests.stationctl.conftest import wait_socket

COURSES = [
    {
        "id": "pig-1",
        "title": "生猪养殖技术",
        "title_en": "Pig farming",
        "category": "养殖",
        "on_demand": True,
        "files": [{"path": "pig/1.mp4", "size": 1000}, {"path": "pig/1.pdf", "size": 1000}],
    },
    {
        "id": "tea",
        "title": "茶叶种植",
        "title_en": None,
        "category": "种植",
        "on_demand": True,
        "files": [{"path": "tea.mp4", "size": 400}],
    },
    {
        "id": "apple",
        "title": "苹果",
        "title_en": "Apples",
        "category": "种植",
        "on_demand": True,
        "files": [{"path": "apple.mp4", "size": 10}],
    },
    {
        "id": "law",
        "title": "法律",
        "category": None,
        "on_demand": True,
        "files": [{"path": "law.mp4", "size": 10}],
    },
    {
        "id": "hidden",
        "title": "只排课",
        "category": None,
        "on_demand": False,
        "files": [{"path": "hidden.mp4", "size": 10}],
    },
]

STATUS = {
    "content": {
        "readiness": {"needed": 6, "ready": 2, "fetching": 1, "failed": 1, "bytes_left": 1000},
        "files": [
            {"path": "pig/1.mp4", "status": "fetching", "size": 1000, "done": 900, "courses": []},
            {
                "path": "tea.mp4",
                "status": "failed",
                "size": 400,
                "done": 0,
                "reason": "hash_mismatch: sha256 differs",
                "tries": 3,
                "courses": ["tea"],
            },
            {"path": "law.mp4", "status": "waiting", "size": 10, "done": 0, "courses": []},
            {"path": "pig/1.pdf", "status": "ready", "size": 1000, "done": 1000, "courses": []},
        ],
        "files_total": 6,
    }
}


@pytest.fixture
def english():
    i18n.install("en")
    yield
    i18n.install("en")


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in rows}


def test_rows_from_a_status_dict(english) -> None:
    rows = by_id(library_rows(COURSES, STATUS, "en"))
    assert "hidden" not in rows  # not for on-demand viewing
    # A course is as far as its worst file; progress counts all its bytes.
    assert rows["pig-1"]["readiness"]["label"] == "downloading 95%"
    assert rows["pig-1"]["title"] == "Pig farming"
    assert rows["tea"]["title"] == "茶叶种植"  # no English title: the Chinese one
    assert rows["tea"]["readiness"]["label"] == "failed (the file arrived damaged)"
    assert rows["law"]["readiness"]["label"] == "waiting for window"
    # Not listed, and the list (cut at 4 of 6) ended on a ready file: ready.
    assert rows["apple"]["readiness"]["state"] == "ready"
    order = [r["id"] for r in library_rows(COURSES, STATUS, "en")]
    assert order == ["pig-1", "apple", "tea", "law"]  # by category (code point), then id


def test_unlisted_file_is_unknown_unless_the_cut_list_ended_ready(english) -> None:
    section = {
        "files": [{"path": "a", "status": "missing", "size": 5, "done": 0}],
        "files_total": 3,
    }
    index = ContentIndex(section)
    assert index.file("b").state == "unknown"
    assert label(index.file("a")) == "missing"
    complete = ContentIndex({"files": [], "files_total": 0})
    assert complete.file("b").state == "unknown"
    assert not ContentIndex.from_status({}).known
    assert ContentIndex.from_status(STATUS).known


def test_render_groups_by_category_in_both_languages(english) -> None:
    lines = render_library(library_rows(COURSES, STATUS, "en"), {"county": 3}, True)
    text = "\n".join(lines)
    assert "county v3" in text
    assert text.index("养殖") < text.index("种植") < text.index("Other courses")
    assert "downloading 95%" in text and "Pig farming" in text
    i18n.install("zh_CN")
    zh = "\n".join(render_library(library_rows(COURSES, STATUS, "zh_CN"), {"county": 3}, False))
    assert "生猪养殖技术" in zh and "Pig farming" not in zh
    assert "正在下载 95%" in zh and "等待下载时段" in zh and "失败（下载的文件已损坏）" in zh
    assert "其他课程" in zh and "代理程序未运行" in zh


# -- a real agent ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest(usb: Path, version: int, courses: list[dict[str, Any]], name: str = "m.json") -> None:
    usb.mkdir(parents=True, exist_ok=True)
    doc = {"version": version, "layer": "terminal", "terminal": "t-001", "courses": courses}
    (usb / name).write_text(json.dumps(doc, ensure_ascii=False), "utf-8")


def video_course(usb: Path, cid: str, path: str, url: str, **extra: Any) -> dict[str, Any]:
    write_wav(usb / path, 1.0)
    data = (usb / path).read_bytes()
    os.utime(usb / path, (time.time() - 3600, time.time() - 3600))  # copied onto the stick earlier
    sha = hashlib.sha256(data).hexdigest()
    files = [{"path": path, "size": len(data), "sha256": sha, "sources": [url]}]
    return {"id": cid, "title": extra.pop("title", cid), "files": files, **extra}


@pytest.fixture
def agent(tmp_path: Path):
    cfg = write_config(tmp_path)
    proc = start_agent(cfg, log=tmp_path / "agent.log")
    try:
        wait_socket(tmp_path / "state" / "control.sock", timeout=30)
        yield cfg, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def test_import_from_a_stick_then_list(agent, tmp_path: Path, ctl) -> None:
    cfg, proc = agent
    url = f"http://127.0.0.1:{closed_port()}/x"
    usb = tmp_path / "usb"
    pig = video_course(
        usb, "pig-1", "pig/1.wav", url, title="生猪养殖", title_en="Pig farming", category="养殖"
    )
    # On the manifest but not on the stick, and its only mirror refuses: it fails.
    tea = {
        "id": "tea",
        "title": "茶叶种植",
        "files": [{"path": "tea.wav", "size": 1234, "sha256": "a" * 64, "sources": [url]}],
    }
    manifest(usb, 3, [pig, tea])
    r = ctl(
        cfg, "library", "import", str(usb), "--interval", "0.2", "--timeout", "60", lang="zh_CN"
    )
    assert r.code == 1, r
    assert "m.json：本站课程清单 第 3 版：已应用" in r.out
    assert "pig/1.wav：就绪" in r.out
    assert "tea.wav：失败（连不上服务器）" in r.out
    assert (tmp_path / "content" / "pig" / "1.wav").read_bytes() == (usb / "pig/1.wav").read_bytes()
    assert (usb / "pig/1.wav").exists()  # the stick is only read

    r = ctl(cfg, "library", lang="en")
    assert r.code == 0, r
    assert "Pig farming" in r.out and "养殖" in r.out
    line = next(ln for ln in r.out.splitlines() if "pig-1" in ln)
    assert line.rstrip().endswith("ready")
    assert "failed (no connection to the server)" in r.out
    data = ctl(cfg, "library", "--json").json()
    assert data["readiness_known"] is True
    assert {c["id"]: c["readiness"]["state"] for c in data["courses"]} == {
        "pig-1": "ready",
        "tea": "failed",
    }

    # A newer manifest with only what the stick has: everything lands, exit 0.
    usb2 = tmp_path / "usb2"
    manifest(usb2, 4, [video_course(usb2, "apple", "apple.wav", url)])
    r = ctl(cfg, "library", "import", str(usb2), "--interval", "0.2", "--json")
    assert r.code == 0, r
    out = r.json()
    assert out["ok"] and out["files"]["apple.wav"]["state"] == "ready"
    assert out["manifests"][0]["status"] == "applied"

    # A broken manifest is rejected with its reasons: exit 1, nothing else changes.
    usb3 = tmp_path / "usb3"
    manifest(usb3, 5, [{"id": "x", "title": "x", "files": []}])
    r = ctl(cfg, "library", "import", str(usb3), "--no-wait")
    assert r.code == 1 and "rejected" in r.out and "files" in r.out, r
    r = ctl(cfg, "library", "import", str(tmp_path / "nowhere"))
    assert r.code == 1 and "There is no folder" in r.err, r

    # With the agent stopped: the list comes from the stored manifests; import refuses.
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    r = ctl(cfg, "library")
    assert r.code == 0 and "apple" in r.out and "not running" in r.out, r
    assert next(ln for ln in r.out.splitlines() if "apple" in ln).rstrip().endswith("ready")
    r = ctl(cfg, "library", "import", str(usb2))
    assert r.code == 3 and "not running" in r.err, r
