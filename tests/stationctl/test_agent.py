"""play / stop / attendance / status against a real agent process playing real media through
libvlc with dummy outputs; then the same commands once it has stopped."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule, start_agent, wait_for, write_config
from tests.stationctl import shapes
from tests.stationctl.conftest import run_stationctl, wait_socket


def records(state: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{state / 'agent.db'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM records ORDER BY seq")]
    finally:
        db.close()


def outbox(state: Path, msg_id: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{state / 'agent.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT payload FROM outbox WHERE kind='record' AND msg_id=?", (msg_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]
    finally:
        db.close()


@pytest.fixture
def running_agent(tmp_path: Path):
    config = write_config(tmp_path)
    write_wav(tmp_path / "content" / "lesson.wav", 2.0)
    state = tmp_path / "state"
    state.mkdir()
    # The course is in the schedule (so `play lesson` finds it) but its slot is tomorrow.
    doc = schedule(
        3,
        [one_off("i1", time.time() + 86400, "lesson.wav", course_id="lesson", title="养猪课")],
    )
    assert apply_schedule(state, doc).status == "applied"
    proc = start_agent(config, log=tmp_path / "agent.log")
    try:
        wait_socket(state / "control.sock")
        yield config, state, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)


def test_play_stop_attendance_against_the_real_agent(running_agent) -> None:
    config, state, proc = running_agent

    r = run_stationctl(config, "status", "--json")
    status = json.loads(r.stdout)
    shapes.check(status, shapes.STATUS)
    assert status["agent"]["running"] is True and status["agent"]["pid"] == proc.pid
    assert status["playing"] is None
    assert [u["course_id"] for u in status["upcoming"]] == ["lesson"]
    assert status["problems"] == []

    # An unknown course: refused, in the admin's language, nothing recorded.
    r = run_stationctl(config, "play", "nope", lang="zh_CN")
    assert r.returncode == 1 and "课表中没有课程 nope" in r.stdout
    assert records(state) == []

    # On-demand play, then stop: one record, trigger admin, outcome stopped.
    r = run_stationctl(config, "play", "lesson")
    assert r.returncode == 0 and "Playing lesson now" in r.stdout, r.stderr
    wait_for(lambda: records(state) and records(state)[0]["started_at"], 10, what="playing")
    r = run_stationctl(config, "status", lang="zh_CN")
    assert "养猪课（点播" in r.stdout, r.stdout
    r = run_stationctl(config, "stop", "--json")
    answer = json.loads(r.stdout)
    shapes.check(answer, shapes.ANSWER)
    (rec,) = records(state)
    assert answer["data"]["stopped"] == rec["record_id"]
    assert rec["trigger"] == "admin" and rec["outcome"] == "stopped"
    r = run_stationctl(config, "stop", lang="zh_CN")
    assert r.returncode == 0 and "当前没有在播放" in r.stdout

    # Attendance on the latest session: stored, rev bumped, re-queued under the same id.
    r = run_stationctl(config, "attendance", "12", lang="zh_CN")
    assert r.returncode == 0 and "已为记录 1 登记参加人数 12" in r.stdout, r.stderr
    (after,) = records(state)
    assert after["attendance"] == 12 and after["rev"] == rec["rev"] + 1
    (msg,) = outbox(state, rec["record_id"])
    assert msg["attendance"] == 12 and msg["rev"] == after["rev"]

    # Attendance while the course plays: the core's copy keeps it, the closing record has it.
    r = run_stationctl(config, "play", "lesson")
    assert r.returncode == 0
    wait_for(lambda: len(records(state)) == 2 and records(state)[1]["started_at"], 10)
    r = run_stationctl(config, "attendance", "7", "--json")
    answer = json.loads(r.stdout)
    assert answer["ok"] and answer["data"]["seq"] == 2 and answer["data"]["queued"] is False
    done = wait_for(
        lambda: (rs := records(state))[1]["outcome"] and rs[1], 15, what="course to end"
    )
    assert done["outcome"] == "completed" and done["attendance"] == 7
    (msg,) = outbox(state, done["record_id"])
    assert msg["attendance"] == 7 and msg["outcome"] == "completed"

    r = run_stationctl(config, "records", "--month", time.strftime("%Y-%m"), "--summary")
    assert "Collective study sessions held: 2 of the target 2" in r.stdout
    r = run_stationctl(config, "logs", "--kind", "attendance", "--json")
    assert [e["data"]["attendance"] for e in json.loads(r.stdout)] == [12, 7]

    # The agent stops: actions say so and change nothing; reads still work.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    before = records(state)
    for args in (["play", "lesson"], ["stop"], ["attendance", "3"]):
        r = run_stationctl(config, *args)
        assert r.returncode == 3
        assert "The agent is not running (stopped since" in r.stderr
    r = run_stationctl(config, "attendance", "3", lang="zh_CN")
    assert "终端服务没有运行（自" in r.stderr and "未做任何更改" in r.stderr
    assert records(state) == before
    status = json.loads(run_stationctl(config, "status", "--json").stdout)
    assert status["agent"]["running"] is False and status["agent"]["clean_stop"] is True
    assert status["problems"][0]["code"] == "agent_not_running"
