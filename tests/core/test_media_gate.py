"""Media checks (sha256 of a large file) run off the core thread; a slot that comes while the
check runs starts as soon as it ends, and a stop during the check means the media never opens."""

from __future__ import annotations

import hashlib
import threading
import time

from agent.adapters.media_files import HashCache
from agent.adapters.sqlite.store import Store
from agent.domain.core import PlayCommand, StopCommand
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule, wait_for, write_config

SLOW_S = 1.5


class SlowHashes(HashCache):
    """Hashing as slow as a large video on a small board."""

    def sha256(self, path):  # noqa: ANN001
        time.sleep(SLOW_S)
        return super().sha256(path)


def _runtime(tmp_path, **cfg) -> Runtime:
    rt = Runtime(load_config(write_config(tmp_path, **cfg)))
    rt.media.hashes = SlowHashes()
    return rt


def test_core_stays_responsive_and_the_slot_starts_when_the_check_ends(tmp_path) -> None:
    rt = _runtime(tmp_path, vlc={"preroll_seconds": 1.0})
    media = write_wav(rt.cfg.content_dir / "big.wav", 1.0)
    digest = hashlib.sha256(media.read_bytes()).hexdigest()
    slot = time.time() + 1.5
    apply_schedule(
        rt.cfg.state_dir, schedule(1, [one_off("big", slot, "big.wav", course={"sha256": digest})])
    )
    rt.open()
    t = threading.Thread(target=rt.run, kwargs={"duration": 15}, daemon=True)
    t.start()
    try:
        time.sleep(0.8)  # the check (started at slot - 1 s) is running now
        t0 = time.monotonic()
        assert rt.call(lambda: 42, timeout=5) == 42
        assert time.monotonic() - t0 < 0.3  # the core thread is not hashing

        def done():
            s = Store(rt.cfg.db_path, readonly=True)
            try:
                return [r for r in s.records() if r.outcome]
            finally:
                s.close()

        (rec,) = wait_for(done, 12, 0.1, "the course")
    finally:
        rt.request_stop()
        t.join(10)
    assert rec.outcome == "completed", rec
    import datetime as dt

    started = dt.datetime.fromisoformat(rec.started_at.replace("Z", "+00:00")).timestamp()
    # the check ended about 0.5 s after the slot; it started then, not at the next retry
    assert 0.2 < started - slot < 1.5, started - slot


def test_stop_during_the_check_means_the_media_never_opens(tmp_path) -> None:
    rt = _runtime(tmp_path)
    media = write_wav(rt.cfg.content_dir / "big.wav", 5.0)
    digest = hashlib.sha256(media.read_bytes()).hexdigest()
    apply_schedule(
        rt.cfg.state_dir,
        schedule(1, [one_off("x", time.time() + 3600, "big.wav", course={"sha256": digest})]),
    )
    rt.open()
    t = threading.Thread(target=rt.run, kwargs={"duration": 10}, daemon=True)
    t.start()
    try:
        acts = rt.submit(PlayCommand("x", None, None, "admin"))
        assert any(getattr(a, "ok", False) for a in acts)
        time.sleep(0.3)
        rt.submit(StopCommand("admin"))
        time.sleep(SLOW_S + 1.0)  # the check finishes after the stop
        assert rt.player._mp is None and rt.player._state == "idle"
        (rec,) = rt.call(lambda: rt.store.records())
        assert rec.outcome == "stopped" and rec.started_at is None
    finally:
        rt.request_stop()
        t.join(10)
