"""The player's state on its worker thread: commands and VLC notices in, ``PlayerEvent`` out.

A notice whose tag is not the current media player's is the late word of an earlier one (the end
of the previous file arriving after the next has started) and is dropped, counted in
``stale_notices``.

The end of a file: VLC reports it when its input has read and decoded everything, which with an
output that does not drain its buffer (the dummy one; measured with libvlc 3.0 and a WAV) is up to
the input caching (1 s by default) before the media clock reaches the end. ``ended`` is then held
(state ``draining``) until the media clock would have got there, so a completed course is counted
for its whole length; an output that drains (ALSA) reports the end at the end and nothing is held.

A media clock that jumps ahead: VLC's MP4 demuxer starts at the first key frame of a track, and
a file whose first key frame is seconds in (an encoder that did not mark the opening frame) is
played from there; VLC's time jumps to it and the end comes that much early. What the room saw
is bounded by the wall clock since "playing", so every position posted is the shown one, at
most ``CLOCK_SLACK_S`` ahead of that bound, and an end reached by a jump says how much was not
shown (``detail``): the core must not count media VLC jumped over as watched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .events import CLOCK_SLACK_S, PROGRESS_INTERVAL_S, MediaTag, PlayerEvent
from .media import LibVlcMedia

log = logging.getLogger("agent.adapters.vlc_player")

STATES = ("idle", "prerolling", "ready", "playing", "draining")
TIMED_STATES = ("playing", "draining")  # the only states with work between commands


class Playback:
    """What the current media is doing, and the events that say so; worker thread only."""

    def __init__(
        self, media: LibVlcMedia, post: Callable[[PlayerEvent], None], max_tail_s: float
    ) -> None:
        self.media = media
        self.post = post
        self.max_tail_s = max_tail_s
        self.token = ""
        self.state = "idle"  # one of STATES
        self.start_requested = False
        # When the start was asked for: a "playing" notice from before it is the preroll's.
        self.start_mono = 0.0
        self.start_at = 0.0  # the position asked for (a resumed course)
        self.pending_start: str | None = None  # start arrived before its preroll
        self.last_progress = 0.0
        self.clock_base: tuple[float, float] | None = None  # (mono, position) at "playing"
        self.drain_until: float | None = None
        self.stale_notices = 0  # VLC notices dropped because their media was no longer current

    # -- commands ------------------------------------------------------------------------------

    def load(self) -> None:
        if self.media.load():
            self.post(PlayerEvent("", "loaded", time.time(), time.monotonic()))

    def unload(self) -> None:
        if self.state != "idle":
            return
        self.close()
        self.post(PlayerEvent("", "unloaded", time.time(), time.monotonic()))

    def begin(self, token: str, mrl: str, start_at: float, paused: bool) -> None:
        """A new media player for ``mrl``: prerolled and paused, or playing at once."""
        self.load()
        self.release()
        self.token = token
        tag = self.media.new_tag(token)
        self.start_requested = not paused
        self.start_mono = time.monotonic()
        self.start_at = start_at
        self.media.open(tag, mrl, start_at, paused)
        self.state = "prerolling" if paused else "playing"
        self.media.play(mrl)

    def start(self, token: str) -> None:
        if token != self.token or self.media.mp is None:
            self.pending_start = token  # its preroll is still on the way (media check)
            return
        self.start_requested = True
        self.start_mono = time.monotonic()
        self.state = "playing"
        self.media.resume()

    def stop(self, token: str) -> None:
        if self.pending_start == token:
            self.pending_start = None
        if token != self.token:
            return
        self.release()
        self.state = "idle"
        self.post(PlayerEvent(token, "stopped", time.time(), time.monotonic()))

    def fail(self, detail: str) -> None:
        """A command failed inside libvlc: say so, and wait for the next command idle."""
        self.state = "idle"
        self.drain_until = None
        self.emit("error", detail)

    def release(self) -> None:
        """Free the current media player; its notices still queued become stale."""
        self.media.release_player()
        self.drain_until = None
        self.clock_base = None

    def close(self) -> None:
        """Free the media player and libvlc itself."""
        self.release()
        self.media.release_instance()

    # -- timed work ------------------------------------------------------------------------------

    def wait_s(self) -> float | None:
        """How long the worker may sleep on its queue; None is until the next command.

        Only playing (and draining) has timed work: progress about twice a second and the end
        of a drain. Otherwise everything that can change the state arrives on the queue (a
        command or a VLC notice), so an idle, loaded or paused player does not wake at all.
        """
        if self.state not in TIMED_STATES:
            return None
        due = self.last_progress + PROGRESS_INTERVAL_S
        if self.drain_until is not None:
            due = min(due, self.drain_until)
        return max(0.0, due - time.monotonic())

    def tick(self) -> None:
        """Timed work between commands: the end of a drain, progress while playing."""
        now = time.monotonic()
        if self.state == "draining" and self.drain_until is not None and now >= self.drain_until:
            self._finish_drain()
            return
        if self.state in TIMED_STATES and now - self.last_progress >= PROGRESS_INTERVAL_S:
            self.last_progress = now
            self.emit("progress")

    # -- VLC notices -----------------------------------------------------------------------------

    def notice(self, kind: str, tag: MediaTag, wall: float, mono: float) -> None:
        """A VLC callback's word, taken on the worker; ``wall``/``mono`` are when VLC said it."""
        if tag != self.media.tag or self.media.mp is None:
            self.stale_notices += 1
            log.debug("dropped a late %s notice for %s (current %s)", kind, tag, self.media.tag)
            return
        if kind == "playing":
            self._playing(wall, mono)
        elif kind == "paused":
            if not self.start_requested and self.state == "prerolling":
                self.state = "ready"
                self.emit("ready", at=(wall, mono))
        elif kind == "ended":
            self._ended(mono)
        elif kind == "error":
            self.state = "idle"
            self.drain_until = None
            self.emit("error", "VLC could not open or decode the media", at=(wall, mono))

    def _playing(self, wall: float, mono: float) -> None:
        # With :start-paused VLC says "playing" before it pauses: only a requested start counts.
        if not self.start_requested or mono < self.start_mono:
            return
        self.state = "playing"
        pos, _ = self.media.position()
        # Right after a start VLC may still say 0 for a course resumed further on.
        self.clock_base = (mono, max(pos, self.start_at))
        self.emit("playing", at=(wall, mono))

    def _ended(self, mono: float) -> None:
        pos, length = self.media.position()
        bound = self._wall_bound(mono)
        if bound is not None and pos - bound > CLOCK_SLACK_S:
            self.state = "idle"
            base_pos = self.clock_base[1] if self.clock_base else 0.0
            self.emit(
                "ended",
                f"VLC reached the end after {bound - base_pos:.1f} s of play from "
                f"{base_pos:.1f} s: its clock jumped ahead, {pos - bound:.1f} s of the "
                f"{length:.1f} s media were not shown (the file may lack a key frame there)",
            )
            return
        tail = self._buffered_tail(mono, pos, length)
        if tail > 0:
            self.state = "draining"
            self.drain_until = mono + tail
            return
        self.state = "idle"
        self.emit("ended")

    def _wall_bound(self, mono: float) -> float | None:
        """The furthest media position that can have been shown by ``mono`` at normal rate:
        where "playing" found it plus the time since. None before "playing"."""
        if self.clock_base is None:
            return None
        base_mono, base_pos = self.clock_base
        return base_pos + max(0.0, mono - base_mono)

    def shown(self, mono: float, pos: float) -> float:
        """VLC's position, held to what can have been shown by ``mono`` (see module doc)."""
        bound = self._wall_bound(mono)
        return pos if bound is None else min(pos, bound + CLOCK_SLACK_S)

    def _buffered_tail(self, mono: float, pos: float, length: float) -> float:
        """Seconds the media clock still lacked when VLC reported the end (see module doc).

        The clock is judged by the later of two readings: VLC's own time, and the time since
        "playing" at normal rate (VLC's time lags by a fraction of a second). A gap larger than
        the input caching is not a buffered tail but a file shorter than its header says: no hold.
        """
        if length <= 0 or self.clock_base is None:
            return 0.0
        base_mono, base_pos = self.clock_base
        clock = max(pos, base_pos + (mono - base_mono))
        gap = length - clock
        return gap if 0.0 < gap <= self.max_tail_s else 0.0

    def _finish_drain(self) -> None:
        _, length = self.media.position()
        self.state = "idle"
        self.drain_until = None
        now = (time.time(), time.monotonic())
        self.post(PlayerEvent(self.token, "ended", now[0], now[1], length, length))

    def emit(
        self,
        kind: str,
        detail: str = "",
        token: str | None = None,
        at: tuple[float, float] | None = None,
    ) -> None:
        """Post an event with the position read now (the shown one); ``at`` is (wall, mono)
        when it happened."""
        pos, length = self.media.position()
        wall, mono = at if at is not None else (time.time(), time.monotonic())
        pos = self.shown(time.monotonic(), pos)
        self.post(
            PlayerEvent(
                token if token is not None else self.token, kind, wall, mono, pos, length, detail
            )
        )
