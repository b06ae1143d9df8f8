"""An H.264/MP4 course whose first key frame is seconds in: VLC starts there and reaches the end
early. The record must say what was shown, never ``completed`` for the part VLC jumped over.

The clips are made as the sandbox check and the memory-cap bench make theirs: a still picture
encoded by libvlc's x264 into MP4. VLC's MP4 muxer marks no key frame at the start of such a
clip; the first one is where x264's ``keyint`` puts it (a frame every 0.1 s), and VLC's MP4
demuxer starts playing from the first key frame. ``keyint=1`` gives a key frame at 0.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest

from agent.adapters.vlc_player import PlayerEvent, VlcPlayer
from tests.core.test_playback_vlc import agent  # noqa: F401 - the fixture
from tests.helpers import DUMMY_VLC, apply_schedule, one_off, schedule

vlc = pytest.importorskip("vlc")

SECONDS = 8.0  # the clip: 8 s of a still picture (VLC's length for it: 7.8 s)
KEYINT_SKIPPING = 50  # first key frame at frame 51: 4.9 s in


def h264_still(path: Path, seconds: float, keyint: int) -> Path:
    """A still picture as an H.264/MP4 clip, first key frame ``keyint`` frames (0.1 s) in."""
    from tests.ops.sandbox.media import png

    still = path.with_suffix(".png")
    png(str(still), 160, 120)
    sout = (
        f":sout=#transcode{{vcodec=h264,venc=x264{{preset=ultrafast,keyint={keyint}}},"
        f"fps=25,acodec=none}}:std{{access=file,mux=mp4,dst={path}}}"
    )
    inst = vlc.Instance("--quiet")
    player = inst.media_player_new()
    player.set_media(inst.media_new(str(still), f":image-duration={seconds}", sout))
    player.play()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and player.get_state() not in (
        vlc.State.Ended,
        vlc.State.Error,
    ):
        time.sleep(0.05)
    player.stop()
    player.release()
    inst.release()
    assert path.exists() and path.stat().st_size > 1000, f"could not make {path}"
    return path


def _until(q: queue.Queue[PlayerEvent], kinds: tuple[str, ...]) -> PlayerEvent:
    while True:
        ev = q.get(timeout=30)
        if ev.kind in kinds:
            return ev


def _play(media: Path, preroll: bool) -> tuple[PlayerEvent, list[PlayerEvent], PlayerEvent]:
    events: queue.Queue[PlayerEvent] = queue.Queue()
    player = VlcPlayer(DUMMY_VLC, events.put)
    player.start_thread()
    try:
        if preroll:
            player.preroll("A", str(media))
            assert _until(events, ("ready", "error")).kind == "ready"
            player.start("A")
        else:
            player.play("A", str(media))
        playing = _until(events, ("playing", "error"))
        assert playing.kind == "playing", playing
        progress = []
        while (ev := _until(events, ("progress", "ended", "error"))).kind == "progress":
            progress.append(ev)
    finally:
        player.shutdown()
    return playing, progress, ev


@pytest.mark.parametrize("preroll", [False, True], ids=["cold", "prerolled"])
def test_a_jump_to_the_first_key_frame_is_reported_as_not_shown(
    tmp_path: Path, preroll: bool
) -> None:
    clip = h264_still(tmp_path / "skips.mp4", SECONDS, KEYINT_SKIPPING)
    playing, progress, ended = _play(clip, preroll)
    assert ended.kind == "ended", ended
    shown = ended.mono - playing.mono
    # VLC really starts 4.9 s in: the end comes after about 3 s of play, not 7.8 s.
    assert shown < SECONDS - 3.0, shown
    # No report claims more of the media than the wall clock allows since "playing".
    for ev in [*progress, ended]:
        assert ev.position <= ev.mono - playing.mono + 1.0 + 0.3, (ev, playing)
    assert ended.length == pytest.approx(7.8, abs=0.3)
    assert "not shown" in ended.detail, ended


def test_a_clip_with_a_key_frame_at_the_start_plays_whole(tmp_path: Path) -> None:
    clip = h264_still(tmp_path / "whole.mp4", 4.0, 1)
    playing, progress, ended = _play(clip, preroll=True)
    assert ended.kind == "ended" and ended.detail == "", ended
    assert ended.mono - playing.mono == pytest.approx(3.8, abs=0.5)
    assert ended.position == pytest.approx(ended.length) == pytest.approx(3.8, abs=0.2)
    assert [p.position for p in progress] == sorted(p.position for p in progress)


def test_the_record_of_a_skipping_course_is_not_completed(agent) -> None:  # noqa: F811
    a = agent()
    h264_still(a.cfg.content_dir / "skips.mp4", SECONDS, KEYINT_SKIPPING)
    apply_schedule(a.cfg.state_dir, schedule(1, [one_off("c1", time.time() + 3.0, "skips.mp4")]))
    a.start()
    (rec,) = a.final(timeout=40)
    assert rec.outcome == "error", rec
    assert "not shown" in rec.reason, rec.reason
    assert 1.5 < rec.played_seconds < 5.0, rec
    # What was shown, by the wall clock: about 3 s of 7.8 s, well under the 90 % that counts
    # as watched.
    assert rec.completion == pytest.approx(rec.played_seconds / 7.8, abs=0.2), rec
    assert rec.completion < 0.7, rec


def test_the_record_of_a_whole_h264_course_is_completed(agent) -> None:  # noqa: F811
    a = agent()
    h264_still(a.cfg.content_dir / "whole.mp4", 4.0, 1)
    apply_schedule(a.cfg.state_dir, schedule(1, [one_off("c1", time.time() + 3.0, "whole.mp4")]))
    a.start()
    (rec,) = a.final(timeout=40)
    assert rec.outcome == "completed" and rec.completion == 1.0, rec
    assert rec.played_seconds == pytest.approx(3.8, abs=0.8), rec
