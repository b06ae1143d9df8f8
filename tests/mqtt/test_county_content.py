"""``countyctl content``: each terminal's missing course files from its retained status, through a
private Mosquitto; the exit status says whether a slot within ``--hours`` lacks its file."""

from __future__ import annotations

import json
import time

import pytest

from agent.cli.county.client import CountyClient
from agent.cli.county.content import from_status, render
from agent.domain import topics as t
from agent.domain.records import utc_text
from tests.mqtt.conftest import county_cfg, countyctl


def status(now: float, files: list[dict], **readiness: object) -> dict:
    ready = {"needed": len(files), "ready": 0, "fetching": 0, "failed": 0, "bytes_left": 0}
    ready.update(readiness)
    return {
        "ts": utc_text(now - 30),
        "content": {
            "readiness": ready,
            "manifest_versions": {"county": 2},
            "files": files,
            "files_total": len(files),
        },
    }


def terminal_statuses(now: float) -> dict[tuple[str, str], dict]:
    lacking = status(
        now,
        [
            {
                "path": "pig.mp4",
                "status": "missing",
                "size": 10**8,
                "done": 0,
                "slot": utc_text(now + 5 * 3600),
                "courses": ["pig"],
            },
            {
                "path": "tea.mp4",
                "status": "fetching",
                "size": 2 * 10**8,
                "done": 9 * 10**7,
                "slot": utc_text(now + 30 * 3600),
                "courses": ["tea"],
            },
            {
                "path": "law.mp4",
                "status": "failed",
                "size": 10**6,
                "done": 0,
                "slot": None,
                "courses": ["law"],
                "reason": "http_status: 404 from mirror",
                "tries": 3,
            },
        ],
        ready=0,
        fetching=1,
        failed=1,
        bytes_left=3 * 10**8 - 9 * 10**7,
        soonest_missing=utc_text(now + 5 * 3600),
    )
    fine = status(
        now,
        [
            {
                "path": "pig.mp4",
                "status": "ready",
                "size": 10**8,
                "done": 10**8,
                "slot": utc_text(now + 5 * 3600),
                "courses": ["pig"],
            }
        ],
        ready=1,
    )
    return {
        ("c-01", "t-001"): lacking,
        ("c-01", "t-002"): fine,
        ("c-01", "t-003"): {"ts": utc_text(now), "outbox": 0},  # an agent without content
        ("c-02", "t-009"): lacking,  # another county: not ours
    }


def test_render_from_status_dicts() -> None:
    now = time.time()
    views = {
        k[1]: from_status(k[1], v) for k, v in terminal_statuses(now).items() if k[0] == "c-01"
    }
    assert views["t-001"].late(now, 24) and not views["t-001"].late(now, 2)
    assert not views["t-002"].late(now, 24)
    text = "\n".join(render(views, "c-01", now, 24))
    assert "t-001" in text and "NOT READY within 24 h" in text
    assert "pig.mp4" in text and "in 5.0 h" in text
    assert "45% of 200.0 MB" in text
    assert "http_status: 404 from mirror, 3 tries" in text
    assert "t-003" in text and "no content section" in text
    assert render({}, "c-01", now, 24) == ["no status from any terminal of county c-01"]


@pytest.mark.roster("t-001", "t-002", "t-003")
def test_countyctl_content_reads_retained_statuses(broker) -> None:
    now = time.time()
    pub = CountyClient(county_cfg(broker), f"pub-{time.time_ns() % 10**9}")
    pub.connect()
    try:
        for (county, terminal), obj in terminal_statuses(now).items():
            payload = json.dumps(obj, separators=(",", ":")).encode()
            pub.publish(t.topic(county, terminal, t.STATUS), payload, retain=True)
    finally:
        pub.close()

    r = countyctl(broker, "content", "--county", "c-01", "--wait", "1.5")
    assert r.returncode == 1, r
    assert "t-001" in r.stdout and "t-002" in r.stdout and "t-009" not in r.stdout
    assert "missing   pig.mp4" in r.stdout and "NOT READY within 24 h" in r.stdout

    r = countyctl(broker, "content", "--county", "c-01", "--wait", "1.5", "--hours", "2")
    assert r.returncode == 0, r

    r = countyctl(broker, "content", "--county", "c-01", "--wait", "1.5", "--json")
    assert r.returncode == 1, r
    out = json.loads(r.stdout)
    rows = {x["terminal"]: x for x in out["terminals"]}
    assert set(rows) == {"t-001", "t-002", "t-003"}
    assert rows["t-001"]["due"] == ["pig.mp4"] and rows["t-001"]["late"] is True
    assert [f["path"] for f in rows["t-001"]["files_not_ready"]] == [
        "pig.mp4",
        "tea.mp4",
        "law.mp4",
    ]
    assert rows["t-002"]["late"] is False and rows["t-003"]["has_content"] is False

    r = countyctl(broker, "content", "--county", "c-77", "--wait", "1")
    assert r.returncode == 1 and "no status from any terminal of county c-77" in r.stdout, r
