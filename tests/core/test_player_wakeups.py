"""The player's worker blocks on its queue while nothing plays and wakes for progress only while
playing; a stuck libvlc call is still visible through ``busy_since``."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

from agent.adapters.vlc_player import PlayerEvent, VlcPlayer
from agent.testing.media import write_wav
from tests.helpers import DUMMY_VLC, wait_for

IDLE_S = 3.0


class CountingQueue(queue.Queue[Any]):
    """The worker's command queue, recording the timeout of each of its waits."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self.waits.append(timeout)
        return super().get(block, timeout)


class Events:
    def __init__(self) -> None:
        self.items: list[PlayerEvent] = []
        self.lock = threading.Lock()

    def __call__(self, ev: PlayerEvent) -> None:
        with self.lock:
            self.items.append(ev)

    def of(self, kind: str) -> list[PlayerEvent]:
        with self.lock:
            return [e for e in self.items if e.kind == kind]


def voluntary_switches(thread: threading.Thread) -> int | None:
    """The kernel's count of times the thread went to sleep (None where /proc is not Linux's)."""
    try:
        status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return None


def counted_player(
    events: Events, cls: type[VlcPlayer] = VlcPlayer
) -> tuple[VlcPlayer, CountingQueue]:
    player = cls(DUMMY_VLC, events)
    cmds = CountingQueue()
    player._cmds = cmds
    return player, cmds


def test_an_idle_player_thread_blocks_without_a_timeout() -> None:
    player, cmds = counted_player(Events())
    player.start_thread()
    try:
        wait_for(lambda: cmds.waits, 5, 0.01, "the worker's first wait")
        switches_before = voluntary_switches(player._thread)
        time.sleep(IDLE_S)
        switches_after = voluntary_switches(player._thread)
        assert cmds.waits == [None]
        if switches_before is not None and switches_after is not None:
            assert switches_after - switches_before <= 1, (switches_before, switches_after)
    finally:
        player.shutdown()
    assert not player._thread.is_alive()


def test_a_loaded_but_stopped_player_blocks_too(tmp_path: Path) -> None:
    events = Events()
    player, cmds = counted_player(events)
    player.start_thread()
    try:
        media = write_wav(tmp_path / "m.wav", 10.0, tone_hz=440)
        player.play("A", str(media))
        wait_for(lambda: events.of("playing"), 10, 0.01, "playing")
        player.stop("A")
        wait_for(lambda: events.of("stopped"), 10, 0.01, "stopped")
        wait_for(lambda: cmds.waits[-1] is None, 5, 0.01, "the worker back to an idle wait")
        passes = len(cmds.waits)
        time.sleep(IDLE_S)
        # VLC's own late notices for the stopped media may still arrive, but no timer.
        late = len(cmds.waits) - passes
        assert late <= 2, cmds.waits[passes:]
        assert all(w is None for w in cmds.waits[passes - 1 :]), cmds.waits[passes - 1 :]
        assert player.loaded
    finally:
        player.shutdown()


def test_progress_comes_about_twice_a_second_while_playing(tmp_path: Path) -> None:
    events = Events()
    player, cmds = counted_player(events)
    player.start_thread()
    try:
        media = write_wav(tmp_path / "m.wav", 10.0, tone_hz=440)
        player.play("A", str(media))
        wait_for(lambda: events.of("playing"), 10, 0.01, "playing")
        t0 = time.monotonic()
        time.sleep(IDLE_S)
        window = [e for e in events.of("progress") if t0 <= e.mono < t0 + IDLE_S]
        waits = [w for w in cmds.waits if w is not None]
    finally:
        player.shutdown()
    assert IDLE_S * 2 - 1 <= len(window) <= IDLE_S * 2 + 1, [e.mono for e in window]
    gaps = [b.mono - a.mono for a, b in zip(window, window[1:], strict=False)]
    assert all(0.45 <= g <= 0.8 for g in gaps), gaps
    assert waits and all(0.0 <= w <= 0.5 for w in waits), waits


class StuckPlayer(VlcPlayer):
    """A play() that blocks inside the worker, as a hung libvlc does."""

    release = threading.Event()

    def _new_player(self, token: str, mrl: str, start_at: float, paused: bool) -> None:
        StuckPlayer.release.wait(10)


def test_busy_since_shows_a_stuck_call_after_an_idle_wait(tmp_path: Path) -> None:
    StuckPlayer.release.clear()
    player, cmds = counted_player(Events(), StuckPlayer)
    player.start_thread()
    try:
        wait_for(lambda: cmds.waits == [None], 5, 0.01, "the idle wait")
        assert player.busy_since is None
        asked = time.monotonic()
        player.play("A", str(tmp_path / "m.wav"))
        wait_for(lambda: player.busy_since is not None, 5, 0.01, "busy_since")
        busy = player.busy_since
        assert busy is not None and asked <= busy < asked + 0.5
        time.sleep(0.3)
        assert player.busy_since == busy  # still stuck: the runtime's hang check sees it
    finally:
        StuckPlayer.release.set()
        player.shutdown()
    assert player.busy_since is None
