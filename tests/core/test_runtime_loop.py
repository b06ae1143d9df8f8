"""The runtime's loop: side jobs that fail alone, commands that time out, shutdown order,
alarms carried over a restart, the player swap, and the duration cap with real libvlc."""

from __future__ import annotations

import threading
import time

import pytest

from agent.adapters.sqlite.alarms import persist_alarm_change
from agent.adapters.sqlite.store import Store
from agent.domain import core as c
from agent.domain.health import AlarmChange
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from agent.testing.media import write_wav
from tests.core.test_core import T0, Harness, item
from tests.helpers import apply_schedule, one_off, schedule, tmpfs, wait_for, write_config


def _runtime(tmp_path, **cfg) -> Runtime:
    rt = Runtime(load_config(write_config(tmp_path, **cfg)))
    rt.open()
    return rt


def _run(rt: Runtime, duration: float = 30) -> threading.Thread:
    t = threading.Thread(target=rt.run, kwargs={"duration": duration}, daemon=True)
    t.start()
    wait_for(rt.ready.is_set, 5, 0.02, "the loop to start")
    return t


def _stop(rt: Runtime, t: threading.Thread) -> None:
    rt.request_stop()
    t.join(15)
    assert not t.is_alive()


def _alarms(db) -> list[tuple[str, bool]]:
    s = Store(db, readonly=True)
    try:
        return [(n, bool(cl)) for n, cl in s.db.execute("SELECT name, cleared_at FROM alarms")]
    finally:
        s.close()


# -- side jobs fail alone -------------------------------------------------------------------


def test_a_failing_tick_hook_is_alarmed_and_the_loop_goes_on(tmp_path) -> None:
    rt = _runtime(tmp_path)
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise OSError(28, "No space left on device")

    rt.hooks_per_tick.append(flaky)
    t = _run(rt)
    try:
        wait_for(lambda: calls["n"] >= 5, 10, 0.05, "the hook to be called again")
        assert rt.call(lambda: 41 + 1) == 42, "the core loop must still answer"
        assert t.is_alive()
    finally:
        _stop(rt, t)
    assert ("side_job_failed", True) in _alarms(rt.cfg.db_path)


@pytest.fixture
def full_inbox(tmp_path):
    """A schedule inbox on a real 256 KB tmpfs."""
    with tmpfs(tmp_path / "inbox", "256k") as mnt:
        yield mnt


def _fill(folder) -> None:
    with open(folder / "filler", "wb", buffering=0) as fh:
        for chunk in (65536, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError:
                pass


def test_a_full_schedule_inbox_does_not_end_the_loop(tmp_path, full_inbox) -> None:
    import json
    import os

    doc = schedule(1, [one_off("a", time.time() + 3600, "a.wav")])
    bad = full_inbox / "bad.yaml"
    bad.write_text("items: [unclosed\n")
    good = full_inbox / "good.json"
    good.write_text(json.dumps(doc))
    old = time.time() - 60
    for p in (bad, good):
        os.utime(p, (old, old))
    _fill(full_inbox)  # no room left for the applied/ and rejected/ folders or reason files
    rt = _runtime(tmp_path, schedule_dir=str(full_inbox), schedule_poll_seconds=0.2)
    t = _run(rt)
    try:
        wait_for(lambda: rt.failing_jobs, 10, 0.05, "the inbox job to fail")
        time.sleep(0.5)
        assert t.is_alive(), "a full disk in the inbox must not end the core loop"
        assert rt.call(lambda: rt.schedule_versions()) == {"terminal": 1}
        (full_inbox / "filler").unlink()
        wait_for(lambda: not rt.failing_jobs, 10, 0.05, "the inbox job to recover")
    finally:
        _stop(rt, t)
    assert (full_inbox / "applied" / "good.json").exists()
    assert (full_inbox / "rejected" / "bad.yaml.reason.txt").exists()
    assert ("side_job_failed", True) in _alarms(rt.cfg.db_path)


def test_exit_for_a_restart_happens_even_when_its_counter_cannot_be_written(tmp_path) -> None:
    rt = _runtime(tmp_path)
    t = _run(rt)
    rt.store.db.execute(
        "CREATE TRIGGER no_kv BEFORE INSERT ON kv BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    rt.call(lambda: rt._execute([c.ExitProcess("test")]))
    t.join(10)
    assert not t.is_alive(), "the agent must exit so that systemd restarts it"
    assert rt.exit_code == 3


# -- commands whose caller gave up ----------------------------------------------------------


def test_a_command_whose_caller_timed_out_is_never_executed(tmp_path) -> None:
    rt = _runtime(tmp_path)
    write_wav(rt.cfg.content_dir / "a.wav", 1.0)
    t = _run(rt)
    try:
        release = threading.Event()
        rt.call(lambda: release.wait(5), timeout=None)  # the core thread is busy for a while
        with pytest.raises(TimeoutError, match="nothing was done"):
            rt.submit(c.PlayCommand(None, "a.wav", "A", "admin"), timeout=0.3)
        release.set()
        time.sleep(0.5)
        assert rt.call(lambda: rt.store.records()) == [], "the late command ran anyway"
        assert rt.call(lambda: rt.core.current) is None
    finally:
        _stop(rt, t)


# -- shutdown: adapters speak while the store is open ----------------------------------------


def test_shutdown_hooks_can_still_reach_the_store(tmp_path) -> None:
    rt = _runtime(tmp_path)
    seen: list[str] = []

    def last_words() -> None:  # what the MQTT link does: confirm through the core thread
        rt.call(lambda: rt.store.put("last", "confirmed"), timeout=5)
        seen.append("done")

    rt.on_shutdown.append(last_words)
    t = _run(rt)
    started = time.monotonic()
    _stop(rt, t)
    assert seen == ["done"]
    assert time.monotonic() - started < 5
    s = Store(rt.cfg.db_path, readonly=True)
    try:
        assert s.get("last") == "confirmed"
    finally:
        s.close()


# -- alarms carried over a restart -----------------------------------------------------------


def test_core_alarms_left_open_are_re_judged_at_start(tmp_path) -> None:
    cfg = load_config(write_config(tmp_path))
    s = Store(cfg.db_path)
    names = ("playback_failing", "player_restarted", "media_quarantined", "side_job_failed")
    for name in names + ("record_write_bug",):
        persist_alarm_change(
            s, AlarmChange(name, "raised", time.time() - 60, "warning", {}), "t-001", "c"
        )
    s.close()
    rt = Runtime(cfg)
    rt.open()
    try:
        state = dict(_alarms(cfg.db_path))
        assert state == {
            "playback_failing": False,  # known only after the next course
            "player_restarted": True,
            "media_quarantined": True,
            "side_job_failed": True,
            "record_write_bug": True,
        }
        assert rt.core.active_alarms == {"playback_failing"}
        events = rt.store.db.execute("SELECT COUNT(*) FROM outbox WHERE kind='event'").fetchone()
        assert events[0] == 5 + 4
    finally:
        rt.shutdown()


def test_a_restored_playback_failing_alarm_clears_at_the_next_completed_course() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    assert h.core.restore_alarms(["playback_failing"]) == []
    h.run_until(T0)
    token = h.core.current.token
    h.player("playing", token)
    acts = h.player("ended", token, position=10, length=10)
    assert [(a.name, a.action) for a in acts if isinstance(a, c.Alarm)] == [
        ("playback_failing", "cleared")
    ]


# -- the player swap -------------------------------------------------------------------------


def test_a_libvlc_restart_drops_the_preroll_and_prepares_the_slot_again() -> None:
    h = Harness([item("a", 0)], now=T0 - 10, restart_player_after=1, retries=0)
    h.run_until(T0 - 4)
    (first,) = h.of(c.Preroll)
    acts = h.feed(c.PlayerHung(20))
    assert any(isinstance(a, c.RestartPlayer) for a in acts)
    assert any(isinstance(a, c.Stop) and a.token == first.token for a in acts)
    h.run_until(T0)
    later = [a for a in h.of(c.Preroll) + h.of(c.Play) if a.token != first.token]
    assert later, "the slot must be prepared again on the new player"
    assert not [a for a in h.of(c.Start) if a.token == first.token]


class RecordingPlayer:
    """A player that records the calls it gets; ``preroll`` can be made slow."""

    def __init__(self, name: str, log: list, slow: threading.Event | None = None) -> None:
        self.name, self.log, self.slow = name, log, slow
        self.busy_since = None

    def preroll(self, token, mrl, start_at=0.0) -> None:  # noqa: ANN001
        if self.slow is not None:
            self.slow.wait(1.0)
        self.log.append((self.name, "preroll", token))

    def play(self, token, mrl, start_at=0.0) -> None:  # noqa: ANN001
        self.log.append((self.name, "play", token))

    def start(self, token) -> None:  # noqa: ANN001
        self.log.append((self.name, "start", token))

    def stop(self, token) -> None:  # noqa: ANN001
        self.log.append((self.name, "stop", token))

    def unload(self) -> None:
        pass

    def shutdown(self, timeout: float = 1.0) -> None:
        self.log.append((self.name, "shutdown", ""))


def test_the_player_is_never_swapped_under_a_media_check_handing_it_media(tmp_path) -> None:
    calls: list = []
    gate = threading.Event()
    rt = Runtime(
        load_config(write_config(tmp_path)), player=RecordingPlayer("old", calls, slow=gate)
    )
    rt.player_factory = lambda: RecordingPlayer("new", calls)
    write_wav(rt.cfg.content_dir / "a.wav", 0.5)
    rt.open()
    try:
        rt.media.submit("tok", "a.wav", None, 0.0, paused=True)
        wait_for(lambda: rt.media.lock.locked(), 5, 0.005, "the check to hand over the media")
        swapper = threading.Thread(target=rt._restart_player, args=("test",))
        swapper.start()
        time.sleep(0.2)
        assert rt.player.name == "old", "swapped while the old player was being handed media"
        gate.set()
        swapper.join(5)
        assert rt.player.name == "new"
        wait_for(lambda: ("old", "shutdown", "") in calls, 5, 0.02, "the old player's shutdown")
        assert calls.index(("old", "preroll", "tok")) < calls.index(("old", "shutdown", ""))
    finally:
        rt.shutdown()


# -- the duration cap with real libvlc -------------------------------------------------------


def test_the_duration_cap_stops_real_playback_and_the_next_slot_starts_on_time(tmp_path) -> None:
    rt = _runtime(tmp_path)
    write_wav(rt.cfg.content_dir / "long.wav", 30.0)
    write_wav(rt.cfg.content_dir / "next.wav", 1.0)
    start = time.time() + 2.0
    items = [
        one_off("long", start, "long.wav", course={"max_minutes": 0.05}),  # a 3 s cap
        one_off("next", start + 6.0, "next.wav"),
    ]
    apply_schedule(rt.cfg.state_dir, schedule(2, items))
    rt.reload_schedules("test")
    stopped: list[float] = []
    orig = rt._post_player

    def spy(ev) -> None:  # noqa: ANN001
        if ev.kind == "stopped":
            stopped.append(time.time())
        orig(ev)

    rt.player.post = spy
    t = _run(rt)
    try:

        def finals():
            return rt.call(lambda: [r for r in rt.store.records() if r.outcome])

        recs = wait_for(lambda: len(finals()) == 2 and finals(), 20, 0.1, "both records")
    finally:
        _stop(rt, t)
    cap, nxt = recs
    assert cap.outcome == "completed" and "cap" in cap.reason, cap
    assert stopped, "the player was never stopped at the cap"
    assert stopped[0] - (start + 3.0) < 1.0, stopped[0] - start
    assert nxt.outcome == "completed", nxt
    assert abs(_ts(nxt.started_at) - (start + 6.0)) < 0.5
    assert cap.played_seconds < 4.5, "it kept playing past its cap"


def _ts(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_hostile_inbox_document_is_parsed_off_the_core_thread(tmp_path) -> None:
    import os
    import sys

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    deep = inbox / "deep.yaml"
    deep.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    old = time.time() - 60
    os.utime(deep, (old, old))
    rt = _runtime(tmp_path, schedule_dir=str(inbox), schedule_poll_seconds=0.2)
    parsed_on: set[str] = set()

    def watch(frame, event, arg):  # noqa: ANN001
        if event == "call" and frame.f_code.co_name == "read_untrusted":
            parsed_on.add(threading.current_thread().name)

    threading.setprofile(watch)
    sys.setprofile(watch)
    t = _run(rt)
    try:
        reason = inbox / "rejected" / "deep.yaml.reason.txt"
        started = time.monotonic()
        while not reason.exists() and time.monotonic() - started < 10:
            t0 = time.monotonic()
            rt.call(lambda: None, timeout=5)
            assert time.monotonic() - t0 < 0.5, "the core thread stalled"
            time.sleep(0.05)
        assert reason.exists()
    finally:
        threading.setprofile(None)
        sys.setprofile(None)
        _stop(rt, t)
    assert parsed_on == {"schedule-inbox"}, parsed_on
