"""Real libvlc (dummy outputs) playing real files, driven by the real runtime and SQLite store."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from agent.adapters.sqlite.store import Store
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from agent.testing.media import write_garbage, write_truncated_wav, write_wav
from tests.helpers import apply_schedule, one_off, schedule, wait_for, write_config


class Agent:
    def __init__(self, tmp_path: Path, **cfg) -> None:
        self.cfg = load_config(write_config(tmp_path, **cfg))
        self.rt = Runtime(self.cfg)
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.rt.open()
        self.thread = threading.Thread(target=self.rt.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.rt.request_stop()
        if self.thread:
            self.thread.join(10)

    def records(self) -> list:
        s = Store(self.cfg.db_path, readonly=True)
        try:
            return s.records()
        finally:
            s.close()

    def final(self, n: int = 1, timeout: float = 20) -> list:
        return wait_for(
            lambda: (r := [x for x in self.records() if x.outcome]) and len(r) >= n and r,
            timeout,
            0.1,
            f"{n} final record(s)",
        )


@pytest.fixture
def agent(tmp_path):
    created = []

    def make(**cfg) -> Agent:
        a = Agent(tmp_path, **cfg)
        created.append(a)
        return a

    yield make
    for a in created:
        a.stop()


def test_scheduled_course_plays_to_the_end_on_time(agent) -> None:
    a = agent()
    write_wav(a.cfg.content_dir / "c1.wav", 2.0, tone_hz=440)
    start = time.time() + 3.0
    apply_schedule(a.cfg.state_dir, schedule(1, [one_off("c1", start, "c1.wav")]))
    a.start()
    (rec,) = a.final()
    assert rec.outcome == "completed", rec
    assert rec.completion == 1.0 and rec.media_duration == pytest.approx(2.0, abs=0.1)
    assert 0.5 < rec.played_seconds < 3.0
    assert rec.trigger == "schedule" and rec.schedule_version == 1 and rec.terminal == "t-001"
    started = _parse(rec.started_at)
    assert abs(started - _parse(rec.planned_start)) < 0.1, (rec.started_at, rec.planned_start)
    assert rec.clock_state in ("synced", "unsynced")


def _parse(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_missing_media_is_skipped_and_recorded(agent) -> None:
    a = agent()
    apply_schedule(
        a.cfg.state_dir, schedule(1, [one_off("gone", time.time() + 2.5, "nowhere.wav")])
    )
    a.start()
    (rec,) = a.final()
    assert rec.outcome == "skipped" and rec.reason.startswith("missing"), rec


def test_checksum_mismatch_and_truncated_download_are_skipped(agent) -> None:
    a = agent()
    good = write_wav(a.cfg.content_dir / "full.wav", 3.0)
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    write_truncated_wav(a.cfg.content_dir / "cut.wav", 3.0, 1.0)
    now = time.time()
    apply_schedule(
        a.cfg.state_dir,
        schedule(
            1,
            [
                one_off("cut", now + 2.5, "cut.wav", course={"sha256": digest}, slot_minutes=0.05),
            ],
        ),
    )
    a.start()
    (rec,) = a.final()
    assert rec.outcome == "skipped" and rec.reason.startswith("checksum"), rec


def test_symlink_out_of_the_content_root_is_refused(agent, tmp_path) -> None:
    a = agent()
    outside = write_wav(tmp_path / "outside.wav", 1.0)
    os.symlink(outside, a.cfg.content_dir / "link.wav")
    apply_schedule(a.cfg.state_dir, schedule(1, [one_off("l", time.time() + 2.5, "link.wav")]))
    a.start()
    (rec,) = a.final()
    assert rec.outcome == "skipped" and rec.reason.startswith("bad_path"), rec


def test_corrupt_file_ends_as_error_after_retries(agent) -> None:
    a = agent(playback={"retries": 1, "retry_delay_seconds": 0.5})
    write_garbage(a.cfg.content_dir / "junk.mp4")
    apply_schedule(a.cfg.state_dir, schedule(1, [one_off("junk", time.time() + 2.5, "junk.mp4")]))
    a.start()
    (rec,) = a.final(timeout=20)
    assert rec.outcome == "error", rec
    assert rec.completion == 0.0


def test_stalled_stream_is_stopped_and_recorded(agent, tmp_path) -> None:
    """A stream that stops delivering mid-play (a stuck county media server on loopback)."""
    import socket

    a = agent(vlc={"stall_seconds": 3}, playback={"retries": 0})
    wav = write_wav(tmp_path / "src.wav", 60.0).read_bytes()
    release = threading.Event()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve() -> None:
        conns = []
        srv.settimeout(30)
        while not release.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                break
            conns.append(conn)
            conn.recv(4096)
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {len(wav)}\r\n\r\n"
            )
            conn.sendall(head.encode() + wav[: 44 + 8000])  # header and one second, then silence
        for conn in conns:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{port}/stuck.wav"
    apply_schedule(a.cfg.state_dir, schedule(1, [one_off("stuck", time.time() + 2.5, url)]))
    a.start()
    try:
        (rec,) = a.final(timeout=25)
    finally:
        release.set()
        srv.close()
    assert rec.outcome == "error", rec
    assert "stalled" in rec.reason or "did not start" in rec.reason, rec.reason


def test_on_demand_play_through_the_core_thread(agent) -> None:
    from agent.domain.core import PlayCommand, Reply, StopCommand

    a = agent()
    write_wav(a.cfg.content_dir / "od.wav", 30.0)
    a.start()
    acts = a.rt.submit(PlayCommand(None, "od.wav", "On demand", "admin"))
    reply = next(x for x in acts if isinstance(x, Reply))
    assert reply.ok, reply
    wait_for(lambda: a.records() and a.records()[0].started_at, 10, 0.05, "playing")
    time.sleep(1.0)
    acts = a.rt.submit(StopCommand("admin"))
    (rec,) = a.final()
    assert rec.outcome == "stopped" and rec.trigger == "admin" and rec.reason == "stopped by admin"
    assert 0 < rec.completion < 0.5 and rec.played_seconds > 0.5


def test_schedule_file_dropped_into_the_inbox_is_applied_or_rejected(agent, tmp_path) -> None:
    import json

    a = agent(schedule_dir="inbox")
    inbox = a.cfg.schedule_dir
    a.start()
    good = inbox / "good.json"
    good.write_text(json.dumps(schedule(5, [one_off("x", time.time() + 3600, "x.wav")])))
    bad = inbox / "bad.yaml"
    bad.write_text("version: 6\nitems: [{id: y}]\n")
    old = time.time() - 30
    os.utime(good, (old, old))
    os.utime(bad, (old, old))
    wait_for(lambda: (inbox / "applied" / "good.json").exists(), 10, 0.1, "applied")
    wait_for(lambda: (inbox / "rejected" / "bad.yaml").exists(), 10, 0.1, "rejected")
    reason = (inbox / "rejected" / "bad.yaml.reason.txt").read_text()
    assert "items[0].course" in reason and "required" in reason
    assert a.rt.call(lambda: a.rt.schedule_versions()) == {"terminal": 5}


def test_played_seconds_of_a_completed_wav_is_its_length(agent) -> None:
    """Prerolled (scheduled) and cold (on-demand) starts both count the whole media, no more."""
    from agent.domain.core import PlayCommand, Reply

    a = agent()
    write_wav(a.cfg.content_dir / "three.wav", 3.0, tone_hz=440)
    write_wav(a.cfg.content_dir / "two.wav", 2.0, tone_hz=440)
    apply_schedule(a.cfg.state_dir, schedule(1, [one_off("s3", time.time() + 2.5, "three.wav")]))
    a.start()
    (scheduled,) = a.final()
    acts = a.rt.submit(PlayCommand(None, "two.wav", "On demand", "admin"))
    assert next(x for x in acts if isinstance(x, Reply)).ok
    on_demand = next(r for r in a.final(2) if r.record_id != scheduled.record_id)
    for rec, length in ((scheduled, 3.0), (on_demand, 2.0)):
        assert rec.outcome == "completed", rec
        assert rec.played_seconds == pytest.approx(length, abs=0.3), (rec.title, rec)
