"""When a file ends, with real libvlc and the dummy outputs: the end is reported when the media
clock reaches the length, not when VLC's input has merely read the last bytes (about 1 s earlier
with an output that does not drain, as the dummy one)."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from agent.adapters.vlc_player import PlayerEvent, VlcPlayer, caching_seconds
from agent.testing.media import write_wav
from tests.helpers import DUMMY_VLC


def _until(q: queue.Queue[PlayerEvent], kinds: tuple[str, ...]) -> PlayerEvent:
    while True:
        ev = q.get(timeout=15)
        if ev.kind in kinds:
            return ev


@pytest.mark.parametrize(("length", "start_at"), [(2.0, 0.0), (4.0, 1.5)], ids=["whole", "resumed"])
def test_ended_comes_when_the_media_clock_reaches_the_length(
    tmp_path: Path, length: float, start_at: float
) -> None:
    events: queue.Queue[PlayerEvent] = queue.Queue()
    player = VlcPlayer(DUMMY_VLC, events.put)
    player.start_thread()
    try:
        media = write_wav(tmp_path / "m.wav", length, tone_hz=440)
        player.play("A", str(media), start_at)
        playing = _until(events, ("playing", "error"))
        assert playing.kind == "playing", playing
        ended = _until(events, ("ended", "error"))
    finally:
        player.shutdown()
    assert ended.kind == "ended", ended
    assert ended.mono - playing.mono == pytest.approx(length - start_at, abs=0.3)
    assert ended.position == pytest.approx(length) and ended.length == pytest.approx(length)


def test_caching_option_bounds_the_hold() -> None:
    assert caching_seconds(["--vout=dummy"]) == 1.0
    assert caching_seconds(["--file-caching=300", "--network-caching=2500"]) == 2.5
