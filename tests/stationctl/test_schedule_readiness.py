"""``stationctl schedule`` shows each session's download state from the agent's status."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import time
from pathlib import Path

import pytest

from agent.cli import i18n
from agent.cli.stationctl.schedule_cmd import with_readiness
from tests.helpers import TZ, apply_schedule, one_off, schedule, start_agent, wait_for, write_config
from tests.stationctl.conftest import wait_socket


def row(media: str, media_status: str) -> dict:
    return {"media": media, "media_status": media_status}


def test_rows_take_the_agent_state_by_media_path() -> None:
    i18n.install("en")
    status = {
        "content": {
            "files": [
                {"path": "a.mp4", "status": "fetching", "size": 200, "done": 90},
                {"path": "b.mp4", "status": "waiting", "size": 5, "done": 0},
                {"path": "c.mp4", "status": "failed", "size": 5, "reason": "stalled: 60 s"},
                {"path": "d.mp4", "status": "missing", "size": 5, "reason": "no space"},
                {"path": "e.mp4", "status": "failed", "size": 5, "reason": "network: x"},
            ],
            "files_total": 5,
        }
    }
    rows = [
        row("a.mp4", "missing"),
        row("b.mp4", "missing"),
        row("c.mp4", "damaged"),
        row("d.mp4", "missing"),
        row("e.mp4", "ready"),  # on disk and verified: ready, whatever the agent last said
        row("http://x/y", "url"),
        row("z.mp4", "missing"),  # the agent does not track it
    ]
    assert with_readiness(rows, status) is True
    assert [r["readiness_label"] for r in rows] == [
        "downloading 45%",
        "waiting for window",
        "failed (the download stalled)",
        "missing (not enough space)",
        "ready",
        "online",
        "MISSING",
    ]
    assert rows[0]["readiness"]["percent"] == 45 and rows[5]["readiness"] is None
    rows = [row("a.mp4", "missing")]
    assert with_readiness(rows, None) is False
    assert rows[0]["readiness"]["state"] == "unknown" and rows[0]["readiness_label"] == "MISSING"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_window(now: float) -> str:
    """A download window that is not open now (an hour that starts two hours from now)."""
    hour = (dt.datetime.fromtimestamp(now, TZ).hour + 2) % 24
    return f"{hour:02d}:00-{(hour + 1) % 24:02d}:00"


@pytest.fixture
def station(tmp_path: Path):
    now = time.time()
    cfg = write_config(
        tmp_path,
        content={"windows": [closed_window(now)], "urgent_hours": 12, "retry_seconds": 300},
    )
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    doc = schedule(
        2,
        [
            one_off("s1", now + 3600, "soon.wav", course_id="soon", title="茶叶种植"),
            one_off("s2", now + 3 * 86400, "later.wav", course_id="later", title="Later"),
        ],
    )
    assert apply_schedule(state, doc).status == "applied"
    url = f"http://127.0.0.1:{closed_port()}/v"
    files = {
        "version": 1,
        "layer": "terminal",
        "courses": [
            {
                "id": cid,
                "title": cid,
                "files": [
                    {"path": f"{cid}.wav", "size": 1000, "sha256": "b" * 64, "sources": [url]}
                ],
            }
            for cid in ("soon", "later")
        ],
    }
    from agent.adapters.manifest_files import ManifestStore

    applied = ManifestStore(state).apply(
        json.dumps(files).encode(), "test", layer="terminal", terminal="t-001", county="c-01"
    )
    assert applied.status == "applied", applied
    proc = start_agent(cfg, log=tmp_path / "agent.log")
    try:
        wait_socket(state / "control.sock", timeout=30)
        yield cfg, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def test_schedule_shows_download_state_and_unknown_when_stopped(station, ctl) -> None:
    cfg, proc = station

    def states():
        data = ctl(cfg, "schedule", "--json").json()
        return {r["course_id"]: (r["readiness"] or {}).get("state") for r in data["sessions"]}

    # The near slot is urgent: fetched outside the window, and its mirror refuses.
    seen: list[dict] = []

    def settled() -> bool:
        seen.append(states())
        return seen[-1] == {"soon": "failed", "later": "waiting"}

    try:
        wait_for(settled, 40, 0.3, "the download states")
    except AssertionError:
        raise AssertionError(f"last seen: {seen[-3:]}") from None
    r = ctl(cfg, "schedule")
    assert r.code == 0, r
    soon = next(ln for ln in r.out.splitlines() if "茶叶种植" in ln)
    assert soon.rstrip().endswith("failed (no connection to the server)")
    later = next(ln for ln in r.out.splitlines() if "Later" in ln and "later" in ln)
    assert later.rstrip().endswith("waiting for window")
    zh = ctl(cfg, "schedule", lang="zh_CN")
    assert "失败（连不上服务器）" in zh.out and "等待下载时段" in zh.out

    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    r = ctl(cfg, "schedule")
    assert r.code == 0 and "download readiness is unknown" in r.out, r
    assert ctl(cfg, "schedule", "--json").json()["readiness_known"] is False
