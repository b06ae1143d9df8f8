"""Every stationctl command on a prepared store, in English and Chinese, and its --json shape.

The agent is not running here: reads must still work, actions must refuse and change nothing.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agent.adapters.sqlite.store import Store
from agent.cli.i18n import text_width
from tests.helpers import ROOT, one_off, schedule
from tests.stationctl import shapes
from tests.stationctl.conftest import run_stationctl

LANGS = ("en", "zh_CN")


def column_of(line: str, cell: str) -> int:
    """Display column where ``cell`` starts in ``line`` (wide characters count two)."""
    return text_width(line[: line.index(cell)])


def db_counts(config: Path) -> tuple[int, int, int]:
    db = sqlite3.connect(config.parent / "state" / "agent.db")
    try:
        return tuple(  # type: ignore[return-value]
            db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("records", "outbox", "events")
        )
    finally:
        db.close()


# -- status ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_status_puts_problems_first_with_what_to_do(station: Path, ctl, lang: str) -> None:
    r = ctl(station, "status", lang=lang)
    assert r.code == 0, r.err
    out = r.out
    if lang == "en":
        expected = [
            "5 problems:",
            "The agent is not running (stopped since",
            "The video for 茶叶种植",
            "is MISSING: missing.wav",
            "The network link is down (since",
            "2 viewing records have not reached the county yet",
            "Damaged video could not be shown",
            "→ Start it with: systemctl start station-agent",
            "→ Copy the file into",
        ]
        labels = ["Agent", "Playing", "Next", "Network", "Clock", "Disk", "Unsent", "This month"]
    else:
        expected = [
            "5 个问题：",
            "终端服务没有运行（自",
            "《茶叶种植》",
            "的视频缺失：missing.wav",
            "网络连接中断（自",
            "有 2 条收看记录还没有报送到县里",
            "《Damaged video》没能播放",
            "→ 启动方法：systemctl start station-agent",
            "→ 请把文件复制到",
        ]
        labels = ["终端服务", "正在播放", "接下来", "网络", "时钟", "磁盘", "未报送", "本月"]
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    # Problems first: every problem line comes before the facts; critical before warnings.
    lines = out.splitlines()
    first_fact = next(i for i, ln in enumerate(lines) if ln.startswith(labels[0] + " "))
    marks = [ln[:3] for ln in lines[:first_fact] if ln.startswith((" !!", " ! "))]
    assert marks == [" !!"] * 3 + [" ! "] * 2
    # The facts' values line up whatever the width of the (Chinese) labels.
    starts = set()
    for label in labels:
        ln = next(x for x in lines[first_fact:] if x.startswith(label + " "))
        rest = ln[len(label) :]
        starts.add(text_width(label) + len(rest) - len(rest.lstrip(" ")))
    assert len(starts) == 1, lines[first_fact:]
    # The next sessions: the missing one says so; the present ones are ready.
    assert ("MISSING" if lang == "en" else "缺失") in out


def test_status_json_shape_and_problem_codes(station: Path, ctl) -> None:
    r = ctl(station, "status", "--json")
    assert r.code == 0
    data = r.json()
    shapes.check(data, shapes.STATUS)
    codes = [p["code"] for p in data["problems"]]
    assert codes[:3] == ["agent_not_running", "media_missing", "alarm_link_down"]
    assert set(codes[3:]) == {"records_unsent", "playback_failed"}
    assert data["agent"]["running"] is False and data["agent"]["clean_stop"] is True
    assert [u["course_id"] for u in data["upcoming"]] == ["pig-1", "tea-2", "apple"]
    assert [u["media_status"] for u in data["upcoming"]] == ["ready", "missing", "present"]
    assert data["records_unsent"] == 2
    assert [a["name"] for a in data["alarms"]] == ["link_down"]
    assert data["month"]["completed"] == 1


def test_status_without_a_store_says_the_agent_never_ran(tmp_path: Path, ctl) -> None:
    from tests.helpers import write_config

    cfg = write_config(tmp_path)
    r = ctl(cfg, "status", "--json")
    data = r.json()
    shapes.check(data, shapes.STATUS)
    assert data["problems"][0]["code"] == "no_store"
    r = ctl(cfg, "status", lang="zh_CN")
    assert "终端服务从未在本站运行过" in r.out
    r = ctl(cfg, "records")
    assert r.code == 1 and "No database yet" in r.err


def test_status_after_a_crash_says_stopped_unexpectedly(station: Path, ctl) -> None:
    db = sqlite3.connect(station.parent / "state" / "agent.db")
    db.execute("DELETE FROM events WHERE kind='agent_stopped'")
    db.commit()
    db.close()
    data = ctl(station, "status", "--json").json()
    assert data["agent"]["running"] is False and data["agent"]["clean_stop"] is False
    assert "stopped unexpectedly" in data["problems"][0]["message"]


# -- records ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_records_month_table_and_summary(station: Path, ctl, lang: str) -> None:
    r = ctl(station, "records", "--month", "2026-10", lang=lang)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    rows = [ln for ln in lines if ln.strip()[:1].isdigit() and "2026-10-" in ln]
    assert len(rows) == 6
    # Columns align although titles mix Chinese (two cells a character) and Latin text.
    how = {"en": ["scheduled", "on demand"], "zh_CN": ["定时", "点播"]}[lang]
    cols = {column_of(ln, next(h for h in how if h in ln)) for ln in rows}
    assert len(cols) == 1, rows
    header = lines[0]
    assert column_of(header, {"en": "How", "zh_CN": "方式"}[lang]) == cols.pop()
    if lang == "en":
        for text in [
            "Month 2026-10:",
            "Collective study sessions held: 2 of the target 2 (target met)",
            "Attendance in total: 38 people",
            "Courses completed: 3 showings (2 different courses)",
            "1 showing has no attendance count",
            "Missed or not shown: 2",
            "1 × missed: the terminal was off at the time",
        ]:
            assert text in r.out, r.out
    else:
        for text in [
            "2026-10 月度汇总：",
            "已开展集中学习：2 次，目标 2 次（已达标）",
            "参加总人次：38",
            "完成课程：3 次（2 门不同课程）",
            "有 1 次播放没有登记人数",
            "错过或未播放：2 次",
            "错过 1 次：the terminal was off at the time",
        ]:
            assert text in r.out, r.out


def test_records_json_keeps_its_shape(station: Path, ctl) -> None:
    data = ctl(station, "records", "--json").json()
    assert [d["seq"] for d in data] == list(range(1, 9))
    for d in data:
        shapes.check(d, shapes.RECORD)
    assert [d["seq"] for d in ctl(station, "records", "--json", "--limit", "2").json()] == [7, 8]
    oct_ = ctl(station, "records", "--json", "--month", "2026-10", "--course", "pig-1").json()
    assert [d["seq"] for d in oct_] == [1, 3]
    summary = ctl(station, "records", "--summary", "--month", "2026-10", "--json").json()
    shapes.check(summary, shapes.MONTH)
    assert summary["collective_sessions"] == {"held": 2, "target": 2, "met": True}
    assert summary["courses_completed"] == ["apple", "pig-1"]


def test_records_csv_for_a_usb_stick(station: Path, ctl, tmp_path: Path) -> None:
    out = tmp_path / "usb" / "records.csv"
    out.parent.mkdir()
    r = ctl(station, "records", "--month", "2026-10", "--csv", "-o", str(out), lang="zh_CN")
    assert r.code == 0 and str(out) in r.err
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # spreadsheet programs then read it as UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:4] == ["序号", "时间", "课程", "标题"]
    assert len(rows) == 7 and rows[1][3] == "生猪养殖技术（一）" and rows[1][8] == "23"
    r = ctl(station, "records", "--csv", "--month", "2026-10")
    assert r.out.splitlines()[0].startswith("No.,Time,Course,Title")


def test_records_bad_month_is_a_usage_error(station: Path, ctl) -> None:
    r = ctl(station, "records", "--month", "2026-13")
    assert r.code == 2 and "2026-11" in r.err


# -- logs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_logs_readable_newest_last(station: Path, ctl, lang: str) -> None:
    r = ctl(station, "logs", lang=lang)
    assert r.code == 0
    lines = r.out.splitlines()
    assert len(lines) == 6
    if lang == "en":
        assert "agent started" in lines[0] and "The agent started." in lines[0]
        assert "The agent stopped." in lines[-1]
        assert "The network link is down" in r.out
    else:
        assert "服务启动" in lines[0] and "终端服务已启动。" in lines[0]
        assert "终端服务已停止。" in lines[-1]
        assert "告警" in r.out and "网络连接中断" in r.out
    # The message column starts at the same display column on every line.
    msgs = [ln.split("  ")[-1].lstrip() for ln in lines]
    assert len({column_of(ln, m) for ln, m in zip(lines, msgs, strict=True)}) == 1


def test_logs_filters_and_json(station: Path, ctl) -> None:
    data = ctl(station, "logs", "--json").json()
    shapes.check(data, [shapes.EVENT])
    assert len(data) == 6
    warn = ctl(station, "logs", "--level", "warning", "--json").json()
    assert {e["level"] for e in warn} == {"warning", "error"} and len(warn) == 3
    recent = ctl(station, "logs", "--since", "90m", "--json").json()
    assert [e["kind"] for e in recent] == ["record_completed", "agent_stopped"]
    assert (
        ctl(station, "logs", "--kind", "alarm", "--json").json()[0]["data"]["name"] == "link_down"
    )
    assert ctl(station, "logs", "--since", "yesterday").code == 2


def test_logs_follow_prints_new_events(station: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli.stationctl",
            "-c",
            str(station),
            "logs",
            "-f",
            "--json",
            "-n",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(proc.stdout.readline())
        assert first["kind"] == "agent_stopped"
        store = Store(station.parent / "state" / "agent.db")
        store.add_event("warning", "late_start", "Course X: started late")
        store.close()
        line = proc.stdout.readline()
        assert json.loads(line)["kind"] == "late_start"
    finally:
        proc.terminate()
        proc.wait(5)


# -- schedule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_schedule_ahead_with_media_state(station: Path, ctl, lang: str) -> None:
    r = ctl(station, "schedule", "--days", "7", lang=lang)
    assert r.code == 0
    if lang == "en":
        assert "Sessions in the next 7 days (schedule station v7):" in r.out
        assert "2 sessions cannot be shown as things stand:" in r.out
        words = ["ready", "MISSING", "ready", "DAMAGED"]
    else:
        assert "今后 7 天的课程（课表 本站第 7 版）：" in r.out
        assert "按目前情况，有 2 次课无法播放：" in r.out
        words = ["就绪", "缺失", "就绪", "已损坏"]
    rows = [ln for ln in r.out.splitlines() if ln.startswith("  20")]
    assert [ln.split()[-1] for ln in rows] == words
    assert len({column_of(ln, ln.split()[-1]) for ln in rows}) == 1


def test_schedule_json_verifies_sha256(station: Path, ctl) -> None:
    data = ctl(station, "schedule", "--json").json()
    shapes.check(data, shapes.SCHEDULE)
    states = {s["course_id"]: s["media_status"] for s in data["sessions"]}
    assert states == {"pig-1": "ready", "tea-2": "missing", "apple": "ready", "broken": "damaged"}
    quick = ctl(station, "schedule", "--json", "--no-verify").json()
    assert {s["course_id"]: s["media_status"] for s in quick["sessions"]}["broken"] == "present"


def test_schedule_file_commands_still_work(station: Path, ctl, tmp_path: Path) -> None:
    doc = schedule(8, [one_off("x", time.time() + 7200, "pig-1.wav", title="新课程")])
    f = tmp_path / "usb.yaml"
    f.write_text(yaml.safe_dump(doc, allow_unicode=True))
    r = ctl(None, "schedule", "validate", str(f))
    assert r.code == 0 and "valid (version 8, 1 item)" in r.out
    r = ctl(None, "schedule", "validate", str(f), "--json")
    assert r.json() == {"valid": True, "version": 8, "items": 1}
    r = ctl(None, "schedule", "next", str(f), "--days", "7", "--json")
    assert [x["title"] for x in r.json()] == ["新课程"]
    r = ctl(None, "schedule", "next", str(f), "--days", "7", lang="zh_CN")
    assert "新课程" in r.out and "时间" in r.out
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 0\nitems: []\n")
    r = ctl(None, "schedule", "validate", str(bad), lang="zh_CN")
    assert r.code == 1 and "无效" in r.err
    assert ctl(station, "schedule", "apply", str(f)).code == 0
    r = ctl(station, "schedule", "apply", str(f), lang="zh_CN")
    assert r.code == 1 and "未应用" in r.out
    assert ctl(station, "schedule", "--json").json()["versions"] == {"terminal": 8}


# -- actions with the agent stopped ------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_actions_refuse_and_change_nothing_when_agent_is_stopped(
    station: Path, ctl, lang: str
) -> None:
    before = db_counts(station)
    for args in (["play", "pig-1"], ["stop"], ["attendance", "12"]):
        r = ctl(station, *args, lang=lang)
        assert r.code == 3, (args, r.err)
        if lang == "en":
            assert "The agent is not running (stopped since" in r.err
            assert "Nothing was changed." in r.err
        else:
            assert "终端服务没有运行（自" in r.err and "未做任何更改" in r.err
    r = ctl(station, "play", "pig-1", "--json")
    shapes.check(r.json(), shapes.ERROR)
    assert db_counts(station) == before


# -- check -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_check_fails_on_missing_and_damaged_media(station: Path, ctl, lang: str) -> None:
    r = ctl(station, "check", "--skip", "vlc,broker", lang=lang)
    assert r.code == 1
    lines = r.out.splitlines()
    fail, ok = ("FAIL", "pass") if lang == "en" else ("失败", "通过")
    assert lines[0].startswith(f"[{fail}")  # the agent is not running
    content = next(ln for ln in lines if "broken.wav, missing.wav" in ln)
    assert content.startswith(f"[{fail}")
    assert any(ln.startswith(f"[{ok}") for ln in lines)
    assert lines[-1] == ("2 of 7 checks failed." if lang == "en" else "7 项检查中有 2 项失败。")


def test_check_plays_a_vlc_probe_and_reports_json(station: Path, ctl) -> None:
    r = ctl(station, "check", "--json", "--skip", "agent,store,schedule,content,broker,display")
    data = r.json()
    shapes.check(data, shapes.CHECK)
    by = {c["name"]: c for c in data["checks"]}
    assert by["vlc"]["status"] == "pass", by["vlc"]
    assert by["vlc"]["data"]["length_ms"] > 900
    assert by["disk"]["status"] == "pass"
    assert by["clock"]["status"] in ("pass", "warn")
    assert r.code == 0 and data["ok"] is True


def test_check_reaches_a_configured_broker(station: Path, ctl, monkeypatch) -> None:
    import socket
    from types import SimpleNamespace

    from agent.cli.stationctl import check_cmd

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        cfg = SimpleNamespace(mqtt=SimpleNamespace(host="127.0.0.1", port=port))
        assert check_cmd.broker_target(cfg) == ("127.0.0.1", port)
        ctx = SimpleNamespace(cfg=cfg)
        assert check_cmd.check_broker(ctx)["status"] == "pass"  # type: ignore[arg-type]
    finally:
        listener.close()
    assert check_cmd.check_broker(ctx)["status"] == "fail"  # type: ignore[arg-type]
    url = SimpleNamespace(mqtt=SimpleNamespace(url="mqtts://county.example:8884", host=None))
    assert check_cmd.broker_target(url) == ("county.example", 8884)
    assert check_cmd.broker_target(SimpleNamespace()) is None


def test_whole_command_in_its_own_process_follows_lang(station: Path) -> None:
    r = run_stationctl(station, "status", lang="zh_CN")
    assert r.returncode == 0 and "终端服务没有运行" in r.stdout
    env = {"LANG": "zh_CN.UTF-8"}
    r = subprocess.run(
        [sys.executable, "-m", "agent.cli.stationctl", "-c", str(station), "records", "--summary"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**__import__("os").environ, **env},
    )
    assert "月度汇总" in r.stdout


def test_status_reads_the_adapters_sections_of_the_snapshot() -> None:
    from agent.cli.stationctl.status_cmd import broker_info, find_key, link_info

    snap = {
        "mqtt": {"state": "connected", "broker": "county:8883", "connected_since": 1795865400.0},
        "monitor": {"mode": "telecom", "link": "up", "rtt_ms": 35.2, "display": "connected"},
    }
    assert broker_info(snap) == {
        "connected": True,
        "last_contact": "2026-11-28T11:30:00.000Z",
        "configured": True,
    }
    assert broker_info({"mqtt": {"state": "waiting"}})["connected"] is False
    assert broker_info({})["configured"] is False
    assert link_info(snap)["state"] == "up" and link_info(snap)["rtt_ms"] == 35.2
    assert link_info({"link": {"state": "down"}})["state"] == "down"
    assert find_key(snap, "display") == "connected"


def test_display_state_from_sysfs(tmp_path: Path) -> None:
    from agent.cli.stationctl.status_cmd import drm_display

    drm = tmp_path / "class" / "drm"
    for name, state in (("card0-HDMI-A-1", "disconnected"), ("card0-HDMI-A-2", "connected")):
        (drm / name).mkdir(parents=True)
        (drm / name / "status").write_text(state + "\n")
    assert drm_display([], tmp_path) == "connected"
    assert drm_display(["card0-HDMI-A-1"], tmp_path) == "disconnected"
    assert drm_display([], tmp_path / "none") == "unknown"


def test_records_on_screen_default_to_this_month(station: Path, ctl) -> None:
    import re

    def rows(out: str) -> list[str]:
        return [ln.split()[0] for ln in out.splitlines() if re.match(r"^\s*\d+\s+\d{4}-", ln)]

    assert rows(ctl(station, "records").out) == ["7", "8"]  # the fixture's records of this month
    assert len(rows(ctl(station, "records", "--all").out)) == 8
    assert len(ctl(station, "records", "--json").json()) == 8  # scripts get everything


def test_status_names_a_config_the_agent_would_refuse(station: Path, ctl) -> None:
    text = station.read_text() + "volume_knob: 11\n"  # an unknown key: the agent will not start
    station.write_text(text)
    data = ctl(station, "status", "--json").json()
    shapes.check(data, shapes.STATUS)
    assert data["problems"][0]["code"] == "config_invalid"
    assert "volume_knob" in data["config_error"] and str(station) in data["config_error"]
    r = ctl(station, "status", lang="zh_CN")
    assert "配置文件有错误，终端服务无法启动" in r.out
