"""Faults a terminal meets in the field, each with real parts where they exist here."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from agent.adapters.sqlite.store import Store
from agent.adapters.vlc_player import VlcPlayer
from agent.domain import core as c
from agent.runtime.config import load_config
from agent.runtime.loop import LogLimiter, Runtime
from agent.testing.media import write_garbage, write_wav
from tests.core.test_core import T0, Harness, item
from tests.helpers import (
    ROOT,
    TZ,
    apply_schedule,
    one_off,
    schedule,
    start_agent,
    tmpfs,
    wait_for,
    write_config,
)

# -- escalation (pure core) ------------------------------------------------------------------


def _fail_once(h: Harness) -> None:
    token = h.core.current.token  # prerolled (Start) or cold (Play), whichever it was
    h.player("playing", token)
    h.player("error", token, detail="decoder crashed")


def test_escalation_quarantines_then_restarts_libvlc_then_the_process() -> None:
    items = [item(f"s{i}", i * 120, slot=1) for i in range(12)]
    h = Harness(
        items,
        now=T0 - 1,
        retries=0,
        quarantine_after=99,
        restart_player_after=3,
        restart_process_after=6,
        process_restarts_left=1,
    )
    for i in range(12):
        h.run_until(T0 + i * 120)
        _fail_once(h)
    restarts = h.of(c.RestartPlayer)
    exits = h.of(c.ExitProcess)
    # errors 3 and 9 restart libvlc; 6 and 12 are process steps (12 finds the budget used up)
    assert [r.reason for r in restarts] == [
        "3 playback errors in a row",
        "9 playback errors in a row",
    ]
    assert len(exits) == 1  # the budget allowed one
    alarms = [(a.name, a.action) for a in h.of(c.Alarm)]
    assert ("player_restarted", "raised") in alarms and ("playback_failing", "raised") in alarms
    gave_up = [
        a
        for a in h.of(c.Alarm)
        if a.name == "playback_failing" and a.detail.get("step") == "gave_up"
    ]
    assert gave_up  # the 12th error: budget used up, the alarm says so


def test_same_media_failing_twice_is_quarantined_and_skipped_then_allowed_again() -> None:
    items = [item("a", 0, slot=1), item("b", 120, slot=1), item("c", 240, slot=1)]
    for it in items:
        it["course"]["media"] = "same.wav"
    h = Harness(items, now=T0 - 1, retries=0, quarantine_after=2, quarantine_s=600)
    h.run_until(T0)
    _fail_once(h)
    h.run_until(T0 + 120)
    _fail_once(h)
    assert any(a.name == "media_quarantined" and a.action == "raised" for a in h.of(c.Alarm))
    h.run_until(T0 + 240)
    third = [r for r in h.records.values() if r.item_id == "c"][0]
    assert third.outcome == "skipped" and third.reason.startswith("quarantined")
    assert len(h.of(c.Play)) + len(h.of(c.Start)) == 2  # the quarantined media was not opened
    h.clock.advance(601)
    acts = h.feed(c.PlayCommand(None, "same.wav", "again", "admin"))
    assert any(isinstance(a, c.Play) for a in acts)  # quarantine over


def test_success_clears_the_escalation_alarms() -> None:
    h = Harness(
        [
            item("a", 0, slot=1),
            item("b", 120, slot=1),
            item("c", 240, slot=1),
            item("d", 360, slot=1),
        ],
        now=T0 - 1,
        retries=0,
        restart_player_after=3,
        quarantine_after=99,
    )
    for i in range(3):
        h.run_until(T0 + i * 120)
        _fail_once(h)
    h.run_until(T0 + 360)
    token = h.core.current.token
    h.player("playing", token)
    h.player("ended", token, position=10, length=10)
    assert ("player_restarted", "cleared") in [(a.name, a.action) for a in h.of(c.Alarm)]


# -- libvlc hang (an injected hang in the adapter) --------------------------------------------


class HangingPlayer(VlcPlayer):
    """A real VlcPlayer whose first play() blocks forever inside the worker, as a hung libvlc does."""

    hang = threading.Event()

    def _new_player(self, token, mrl, start_at, paused):  # noqa: ANN001
        if not HangingPlayer.hang.is_set():
            HangingPlayer.hang.set()
            threading.Event().wait(3600)
        return super()._new_player(token, mrl, start_at, paused)


def test_hung_libvlc_is_detected_and_the_course_recovers_on_a_fresh_player(tmp_path) -> None:
    cfg = load_config(
        write_config(
            tmp_path,
            vlc={"hang_seconds": 2, "start_timeout_seconds": 30},
            playback={"retries": 2, "retry_delay_seconds": 0.2},
        )
    )
    write_wav(cfg.content_dir / "a.wav", 1.5)
    apply_schedule(cfg.state_dir, schedule(1, [one_off("a", time.time() + 0.5, "a.wav")]))
    HangingPlayer.hang.clear()
    rt = Runtime(cfg)
    rt.player = HangingPlayer(cfg.vlc.options, rt._post_player, 100)
    rt.open()
    t = threading.Thread(target=rt.run, kwargs={"duration": 20}, daemon=True)
    t.start()
    try:

        def done():
            s = Store(cfg.db_path, readonly=True)
            try:
                return [r for r in s.records() if r.outcome]
            finally:
                s.close()

        (rec,) = wait_for(done, 20, 0.1, "the course to finish after the hang")
    finally:
        rt.request_stop()
        t.join(10)
    assert HangingPlayer.hang.is_set()
    assert rec.outcome == "completed", rec
    s = Store(cfg.db_path)
    names = [r[0] for r in s.db.execute("SELECT name FROM alarms")]
    events = [r[0] for r in s.db.execute("SELECT kind FROM events")]
    s.close()
    assert "player_restarted" in names
    assert "playback_retry" in events


# -- disk full (a real 1 MB tmpfs as the state folder) ----------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    with tmpfs(tmp_path / "state", "1m") as mnt:
        yield mnt


def test_disk_full_keeps_playing_keeps_records_and_recovers(tmp_path, small_fs) -> None:
    cfg = load_config(write_config(tmp_path, state_dir=str(small_fs)))
    for i in range(3):
        write_wav(cfg.content_dir / f"c{i}.wav", 1.0)
    now = time.time()
    apply_schedule(
        cfg.state_dir,
        schedule(
            1, [one_off(f"c{i}", now + 2 + i * 4, f"c{i}.wav", slot_minutes=0.05) for i in range(3)]
        ),
    )
    rt = Runtime(cfg)
    rt.open()
    filler = small_fs / "filler"
    with open(filler, "wb", buffering=0) as fh:  # fill the disk to the last byte, unbuffered
        for chunk in (65536, 512):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError:
                pass
    t = threading.Thread(target=rt.run, kwargs={"duration": 30}, daemon=True)
    t.start()
    try:
        wait_for(lambda: rt.disk_full_since is not None, 10, 0.1, "disk_full")
        wait_for(lambda: len(rt.pending_writes) >= 4, 15, 0.1, "two courses to finish while full")
        assert rt.player.loaded  # still playing through it
        filler.unlink()  # space returns
        wait_for(lambda: rt.disk_full_since is None and not rt.pending_writes, 10, 0.1, "recovery")

        def three_final():
            return rt.call(lambda: [r for r in rt.store.records() if r.outcome])

        recs = wait_for(
            lambda: len(three_final()) == 3 and three_final(), 15, 0.2, "all three records"
        )
    finally:
        rt.request_stop()
        t.join(10)
    assert [r.outcome for r in recs] == ["completed"] * 3
    s = Store(cfg.db_path)
    try:
        assert s.integrity_check() == "ok"
        alarms = [tuple(r) for r in s.db.execute("SELECT name, cleared_at IS NOT NULL FROM alarms")]
        assert ("disk_full", 1) in alarms
        assert s.outbox_depth("record") == 3
    finally:
        s.close()


# -- corrupt store, corrupt config ------------------------------------------------------------


def test_corrupt_store_is_moved_aside_and_an_alarm_raised(tmp_path) -> None:
    cfg_path = write_config(tmp_path)
    cfg = load_config(cfg_path)
    cfg.state_dir.mkdir(parents=True)
    cfg.db_path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    rt = Runtime(cfg)
    rt.open()
    try:
        assert rt.corrupt_store_moved is not None and rt.corrupt_store_moved.exists()
        assert rt.store.integrity_check() == "ok"
        row = rt.store.db.execute("SELECT name, severity FROM alarms").fetchone()
        assert tuple(row) == ("store_corrupt", "critical")
    finally:
        rt.store.close()


def test_corrupt_config_refuses_to_start_naming_file_line_and_key(tmp_path) -> None:
    cfg_path = write_config(tmp_path)
    text = cfg_path.read_text().replace("county: c-01", "county: c-01\nvolume_knob: 11")
    cfg_path.write_text(text)
    line = text.splitlines().index("volume_knob: 11") + 1
    r = subprocess.run(
        [sys.executable, "-m", "agent", "-c", str(cfg_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert (
        str(cfg_path) in r.stderr
        and f"volume_knob (line {line})" in r.stderr
        and "unknown key" in r.stderr
    )


# -- clock jumps during a course (a whole agent process, its wall clock shifted by a file) ------


@pytest.mark.parametrize("jump", [5 * 365 * 86400.0, -3600.0], ids=["years-forward", "hour-back"])
def test_clock_jump_during_a_course(tmp_path, jump: float) -> None:
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    cfg_path = write_config(tmp_path)
    cfg = load_config(cfg_path)
    write_wav(cfg.content_dir / "long.wav", 4.0)
    in_two_seconds = dt.datetime.fromtimestamp(time.time() + 2, TZ).strftime("%H:%M:%S")
    daily = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": in_two_seconds}
    apply_schedule(
        cfg.state_dir,
        schedule(
            1,
            [
                {
                    "id": "d",
                    "weekly": daily,
                    "slot_minutes": 1,
                    "course": {"id": "D", "title": "Daily", "media": "long.wav"},
                }
            ],
        ),
    )
    proc = start_agent(
        cfg_path, env={"STATION_AGENT_CLOCK_OFFSET_FILE": str(offset)}, log=tmp_path / "log"
    )
    try:

        def playing():
            if not cfg.db_path.exists():
                return None
            con = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
            try:
                return con.execute(
                    "SELECT started_at FROM records WHERE started_at IS NOT NULL"
                ).fetchone()
            except sqlite3.OperationalError:
                return None
            finally:
                con.close()

        wait_for(playing, 15, 0.1, "the course to start")
        time.sleep(1.0)
        offset.write_text(str(jump))
        time.sleep(5.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    s = Store(cfg.db_path, readonly=True)
    try:
        recs = s.records()
        kinds = [r[0] for r in s.db.execute("SELECT kind FROM events")]
    finally:
        s.close()
    played = [r for r in recs if r.started_at]
    assert len(played) == 1, [(r.item_id, r.outcome, r.reason) for r in recs]  # no backlog burst
    assert played[0].outcome == "completed"
    assert 2.5 < played[0].played_seconds < 6.0  # monotonic time, not the jumped wall clock
    assert "clock_jump" in kinds
    others = [r for r in recs if not r.started_at]
    detail = [(r.item_id, r.planned_start, r.outcome, r.reason) for r in others]
    # slots the jump passed over are missed; the one the jump lands in finds the course still
    # playing (a running course is not cut by an equal one)
    assert all(
        r.outcome == "missed" and ("clock jumped" in r.reason or "still playing" in r.reason)
        for r in others
    ), detail
    assert len(others) <= 2  # bounded by the 48 h lookback, however far the clock went


# -- log volume --------------------------------------------------------------------------------


def test_fault_storm_is_rate_limited_but_counted() -> None:
    lim = LogLimiter(burst=20, window_s=600)
    results = [lim.admit("playback_retry", t * 1.0) for t in range(500)]
    assert results.count(0) == 20 and results.count(None) == 480
    assert lim.admit("playback_retry", 600.0) == 480  # the next window says how many were dropped
    assert lim.admit("other_kind", 10.0) == 0  # other kinds are not starved by the storm


def test_fault_storm_keeps_earlier_diagnostics(tmp_path) -> None:
    cfg = load_config(
        write_config(
            tmp_path,
            playback={
                "retries": 0,
                "quarantine_after_errors": 100,
                "restart_player_after_errors": 100,
                "restart_process_after_errors": 100,
            },
        )
    )
    write_garbage(cfg.content_dir / "bad.mp4")
    rt = Runtime(cfg)
    rt.open()
    rt.store.add_event("warning", "early_clue", "the first thing that went wrong")
    for _ in range(200):
        rt._execute(rt.core.handle(c.PlayCommand(None, "missing.mp4", "x", "admin")))
    kinds = [r[0] for r in rt.store.db.execute("SELECT kind FROM events")]
    rt.store.close()
    assert "early_clue" in kinds
    assert kinds.count("record_skipped") <= 20
    assert len(kinds) < 80
