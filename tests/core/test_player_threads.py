"""The player's threads, with real libvlc (dummy outputs): VLC callbacks only hand a tagged notice
to the worker; the worker alone checks whose media it was, changes state and calls libvlc."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.adapters.vlc_player import PlayerEvent, VlcPlayer
from agent.testing.media import write_wav
from tests.helpers import DUMMY_VLC, wait_for


class Events:
    """Everything the player posts, with the name of the thread that posted it."""

    def __init__(self) -> None:
        self.items: list[tuple[PlayerEvent, str]] = []
        self.lock = threading.Lock()

    def __call__(self, ev: PlayerEvent) -> None:
        with self.lock:
            self.items.append((ev, threading.current_thread().name))

    def of(self, token: str, kind: str | None = None) -> list[PlayerEvent]:
        with self.lock:
            return [e for e, _ in self.items if e.token == token and kind in (None, e.kind)]

    def threads(self) -> set[str]:
        with self.lock:
            return {name for e, name in self.items if e.kind not in ("loaded", "unloaded")}


@pytest.fixture
def player():
    events = Events()
    p = VlcPlayer(DUMMY_VLC, events)
    p.start_thread()
    p.load()
    wait_for(lambda: p.loaded, 10, 0.01, "libvlc loaded")
    yield p, events
    p.shutdown()


def _progress_after(events: Events, token: str, since: float) -> list[PlayerEvent]:
    return [e for e in events.of(token, "progress") if e.mono > since]


def test_every_event_is_posted_by_the_worker_thread(player, tmp_path: Path) -> None:
    p, events = player
    media = write_wav(tmp_path / "one.wav", 1.0, tone_hz=440)
    p.preroll("A", str(media))
    wait_for(lambda: events.of("A", "ready"), 5, 0.01, "ready")
    p.start("A")
    wait_for(lambda: events.of("A", "ended"), 10, 0.01, "ended")
    kinds = {e.kind for e in events.of("A")}
    assert {"ready", "playing", "ended"} <= kinds, kinds
    assert events.threads() == {"player"}


def test_a_stale_end_callback_does_not_stop_the_current_media(player, tmp_path: Path) -> None:
    p, events = player
    short = write_wav(tmp_path / "a.wav", 5.0)
    long = write_wav(tmp_path / "b.wav", 30.0)
    p.play("A", str(short))
    wait_for(lambda: events.of("A", "playing"), 5, 0.01, "A playing")
    stale = p._tag  # what VLC hands back to A's callbacks
    p.play("B", str(long))
    wait_for(lambda: events.of("B", "playing"), 5, 0.01, "B playing")
    injected = time.monotonic()
    p._on_end(None, stale)  # A's end, arriving late on a VLC thread
    p._on_error(None, stale)
    time.sleep(1.3)
    after = _progress_after(events, "B", injected)
    assert len(after) >= 2, "B's progress stopped after A's late end"
    assert after[-1].position > after[0].position
    assert not events.of("B", "ended") and not events.of("B", "error")
    assert p.stale_notices >= 2


def test_play_b_right_after_a_keeps_b_going(player, tmp_path: Path) -> None:
    """A reaches its end around the moment B replaces it: whatever VLC says about A, B plays on.

    Whether A's end lands behind B's start in the worker's queue depends on timing, so this sweep
    cannot force the stale path; the injected-callback test above does."""
    p, events = player
    short = write_wav(tmp_path / "a.wav", 0.05)
    long = write_wav(tmp_path / "b.wav", 30.0)
    for i in range(40):
        p.play(f"A{i}", str(short))
        time.sleep(0.002 * i)  # sweep across the moment A reaches its end
        p.play(f"B{i}", str(long))
        wait_for(lambda n=i: events.of(f"B{n}", "playing"), 5, 0.005, f"B{i} playing")
    last = "B39"
    since = time.monotonic()
    time.sleep(1.3)
    after = _progress_after(events, last, since)
    assert len(after) >= 2 and after[-1].position > after[0].position
    for i in range(40):
        assert not events.of(f"B{i}", "ended") and not events.of(f"B{i}", "error")
