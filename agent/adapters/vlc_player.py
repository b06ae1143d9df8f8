"""Player adapter over python-vlc. All libvlc calls happen on one worker thread.

Why a worker thread: libvlc calls (stop in particular) can block, and the core must never block.
VLC's own callbacks run on VLC threads; calling back into libvlc from one can deadlock (a getter
waits for the lock that ``stop`` holds while it joins the very thread running the callback). So a
callback does one thing: it puts a notice, tagged with the media it belongs to, on the worker's
queue. The worker alone owns the player state: it drops a notice whose tag is not the current
media's (the late end of the previous file), changes state and reads position and length.

libvlc is imported only when a course is near (``load``) and released after a while idle, which
keeps the idle agent small (python-vlc pulls in libvlc and its plugin cache).

Events posted (all ``PlayerEvent``, all from the worker thread): ``ready`` (prerolled, paused at
the start position), ``playing``, ``progress`` (position/length, about twice a second), ``ended``,
``error``, ``stopped``, ``loaded``/``unloaded``.

The end of a file: VLC reports it when its input has read and decoded everything, which with an
output that does not drain its buffer (the dummy one; measured with libvlc 3.0 and a WAV) is up to
the input caching (1 s by default) before the media clock reaches the end. The worker then holds
``ended`` until the media clock would have got there, so a completed course is counted for its
whole length; an output that drains (ALSA) reports the end at the end and nothing is held.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
DEFAULT_CACHING_S = 1.0  # libvlc 3.0's input caching when no --*-caching option is given
TAIL_MARGIN_S = 0.5  # how far past the caching an early end may still be a buffered tail

MediaTag = tuple[str, int]  # (the core's token, the worker's serial for one media player)


@dataclass
class PlayerEvent:
    token: str
    kind: str
    wall: float
    mono: float
    position: float = 0.0  # seconds
    length: float = 0.0  # seconds, 0 when unknown
    detail: str = ""


def caching_seconds(options: list[str]) -> float:
    """The largest input caching in libvlc options (``--file-caching=1500`` is 1.5 s)."""
    found = [
        int(m.group(1)) / 1000.0
        for opt in options
        if (m := re.fullmatch(r"--(?:file|network|live|disc)-caching=(\d+)", opt))
    ]
    return max(found, default=DEFAULT_CACHING_S)


class VlcPlayer:
    """Owns one libvlc instance and one media player, driven by commands from the core."""

    def __init__(
        self, options: list[str], post: Callable[[PlayerEvent], None], volume: int = 100
    ) -> None:
        self.options = list(options)
        self.post = post
        self.volume = volume
        self.max_tail_s = caching_seconds(self.options) + TAIL_MARGIN_S
        self._cmds: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="player", daemon=True)
        # Everything below belongs to the worker thread.
        self._vlc: Any = None
        self._instance: Any = None
        self._mp: Any = None
        self._token = ""
        self._serial = 0
        self._tag: MediaTag | None = None  # the current media player's tag; None when none
        self._state = "idle"  # idle | prerolling | ready | playing | draining
        self._start_requested = False
        # When the start was asked for: a "playing" notice from before it is the preroll's.
        self._start_mono = 0.0
        self._start_at = 0.0  # the position asked for (a resumed course)
        self._pending_start: str | None = None  # start arrived before its preroll
        self._last_progress = 0.0
        self._clock_base: tuple[float, float] | None = None  # (mono, position) at "playing"
        self._drain_until: float | None = None
        self.stale_notices = 0  # VLC notices dropped because their media was no longer current
        self.last_alive = time.monotonic()  # the worker's own heartbeat, for hang detection
        self.busy_since: float | None = None
        self._stop = False

    # -- commands from the core (never block) ----------------------------------------------

    def start_thread(self) -> None:
        self._thread.start()

    def load(self) -> None:
        self._cmds.put(("load", ()))

    def unload(self) -> None:
        self._cmds.put(("unload", ()))

    def preroll(self, token: str, mrl: str, start_at: float = 0.0) -> None:
        self._cmds.put(("preroll", (token, mrl, start_at)))

    def start(self, token: str) -> None:
        self._cmds.put(("start", (token,)))

    def play(self, token: str, mrl: str, start_at: float = 0.0) -> None:
        self._cmds.put(("play", (token, mrl, start_at)))

    def stop(self, token: str) -> None:
        self._cmds.put(("stop", (token,)))

    def set_volume(self, volume: int) -> None:
        self._cmds.put(("volume", (volume,)))

    def shutdown(self, timeout: float = 3.0) -> None:
        self._stop = True
        self._cmds.put(("quit", ()))
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def loaded(self) -> bool:
        return self._instance is not None

    # -- worker ----------------------------------------------------------------------------

    def _emit(
        self,
        kind: str,
        detail: str = "",
        token: str | None = None,
        at: tuple[float, float] | None = None,
    ) -> None:
        """Post an event with the position read now; ``at`` is (wall, mono) when it happened."""
        pos, length = self._position()
        wall, mono = at if at is not None else (time.time(), time.monotonic())
        self.post(
            PlayerEvent(
                token if token is not None else self._token, kind, wall, mono, pos, length, detail
            )
        )

    def _position(self) -> tuple[float, float]:
        mp = self._mp
        if mp is None:
            return 0.0, 0.0
        t = mp.get_time()
        length = mp.get_length()
        return (max(t, 0) / 1000.0, max(length, 0) / 1000.0)

    def _wait_s(self) -> float | None:
        """How long the worker may sleep on its queue; None is until the next command.

        Only playing (and draining) has timed work: progress about twice a second and the end
        of a drain. Otherwise everything that can change the state arrives on the queue (a
        command or a VLC notice), so an idle, loaded or paused player does not wake at all.
        """
        if self._state not in ("playing", "draining"):
            return None
        due = self._last_progress + PROGRESS_INTERVAL_S
        if self._drain_until is not None:
            due = min(due, self._drain_until)
        return max(0.0, due - time.monotonic())

    def _run(self) -> None:
        while not self._stop:
            # ``last_alive`` says when the worker last passed here, which may be long ago when
            # idle; a stuck libvlc call is told by ``busy_since``, set around every pass below.
            self.last_alive = time.monotonic()
            try:
                cmd, args = self._cmds.get(timeout=self._wait_s())
            except queue.Empty:
                cmd, args = "", ()
            self.last_alive = time.monotonic()
            if cmd == "quit":
                break
            self.busy_since = time.monotonic()
            try:
                if cmd:
                    getattr(self, f"_do_{cmd}")(*args)
                self._tick()
            except Exception as exc:  # a libvlc failure must become an event, not a dead thread
                log.exception("player command %s failed", cmd)
                self._state = "idle"
                self._drain_until = None
                self._emit("error", f"{type(exc).__name__}: {exc}")
            finally:
                self.busy_since = None
        self._release_player()
        self._release_instance()

    def _tick(self) -> None:
        """Timed work between commands: the end of a drain, progress while playing."""
        now = time.monotonic()
        if self._state == "draining" and self._drain_until is not None and now >= self._drain_until:
            self._finish_drain()
            return
        if (
            self._state in ("playing", "draining")
            and now - self._last_progress >= PROGRESS_INTERVAL_S
        ):
            self._last_progress = now
            self._emit("progress")

    def _do_load(self) -> None:
        if self._instance is not None:
            return
        import vlc  # noqa: PLC0415 - deliberately lazy: libvlc is large

        self._vlc = vlc
        self._instance = vlc.Instance(*self.options)
        if self._instance is None:
            raise RuntimeError(f"libvlc failed to start with options {self.options}")
        self.post(PlayerEvent("", "loaded", time.time(), time.monotonic()))

    def _do_unload(self) -> None:
        if self._state != "idle":
            return
        self._release_player()
        self._release_instance()
        self.post(PlayerEvent("", "unloaded", time.time(), time.monotonic()))

    def _release_player(self) -> None:
        """Stop and free the media player; its notices still queued become stale."""
        self._tag = None
        self._drain_until = None
        self._clock_base = None
        if self._mp is not None:
            try:
                self._mp.stop()
                self._mp.release()
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.exception("releasing the media player failed")
            self._mp = None

    def _release_instance(self) -> None:
        if self._instance is not None:
            try:
                self._instance.release()
            except Exception:  # noqa: BLE001
                log.exception("releasing libvlc failed")
            self._instance = None

    def _new_player(self, token: str, mrl: str, start_at: float, paused: bool) -> None:
        self._do_load()
        self._release_player()
        vlc = self._vlc
        self._token = token
        self._serial += 1
        tag: MediaTag = (token, self._serial)
        self._start_requested = not paused
        self._start_mono = time.monotonic()
        self._start_at = start_at
        media = (
            self._instance.media_new(mrl) if "://" in mrl else self._instance.media_new_path(mrl)
        )
        if paused:
            media.add_option(":start-paused")
        if start_at > 0:
            media.add_option(f":start-time={start_at:.3f}")
        mp = self._instance.media_player_new()
        mp.set_media(media)
        media.release()
        mp.audio_set_volume(self.volume)
        events = mp.event_manager()
        et = vlc.EventType
        events.event_attach(et.MediaPlayerPlaying, self._on_playing, tag)
        events.event_attach(et.MediaPlayerPaused, self._on_paused, tag)
        events.event_attach(et.MediaPlayerEndReached, self._on_end, tag)
        events.event_attach(et.MediaPlayerEncounteredError, self._on_error, tag)
        self._mp = mp
        self._tag = tag
        self._state = "prerolling" if paused else "playing"
        if mp.play() == -1:
            raise RuntimeError(f"libvlc refused to play {mrl}")

    def _do_preroll(self, token: str, mrl: str, start_at: float) -> None:
        # The slot may already have come while the media was being checked: play at once.
        self._new_player(token, mrl, start_at, paused=self._pending_start != token)
        self._pending_start = None

    def _do_play(self, token: str, mrl: str, start_at: float) -> None:
        self._new_player(token, mrl, start_at, paused=False)

    def _do_start(self, token: str) -> None:
        if token != self._token or self._mp is None:
            self._pending_start = token  # its preroll is still on the way (media check)
            return
        self._start_requested = True
        self._start_mono = time.monotonic()
        self._state = "playing"
        self._mp.set_pause(0)

    def _do_stop(self, token: str) -> None:
        if self._pending_start == token:
            self._pending_start = None
        if token != self._token:
            return
        self._release_player()
        self._state = "idle"
        self.post(PlayerEvent(token, "stopped", time.time(), time.monotonic()))

    def _do_volume(self, volume: int) -> None:
        self.volume = volume
        if self._mp is not None:
            self._mp.audio_set_volume(volume)

    # -- VLC notices, handled on the worker --------------------------------------------------

    def _do_vlc(self, kind: str, tag: MediaTag, wall: float, mono: float) -> None:
        if tag != self._tag or self._mp is None:
            self.stale_notices += 1
            log.debug("dropped a late %s notice for %s (current %s)", kind, tag, self._tag)
            return
        if kind == "playing":
            self._vlc_playing(wall, mono)
        elif kind == "paused":
            if not self._start_requested and self._state == "prerolling":
                self._state = "ready"
                self._emit("ready", at=(wall, mono))
        elif kind == "ended":
            self._vlc_ended(mono)
        elif kind == "error":
            self._state = "idle"
            self._drain_until = None
            self._emit("error", "VLC could not open or decode the media", at=(wall, mono))

    def _vlc_playing(self, wall: float, mono: float) -> None:
        # With :start-paused VLC says "playing" before it pauses: only a requested start counts.
        if not self._start_requested or mono < self._start_mono:
            return
        self._state = "playing"
        pos, _ = self._position()
        # Right after a start VLC may still say 0 for a course resumed further on.
        self._clock_base = (mono, max(pos, self._start_at))
        self._emit("playing", at=(wall, mono))

    def _vlc_ended(self, mono: float) -> None:
        pos, length = self._position()
        tail = self._buffered_tail(mono, pos, length)
        if tail > 0:
            self._state = "draining"
            self._drain_until = mono + tail
            return
        self._state = "idle"
        self._emit("ended")

    def _buffered_tail(self, mono: float, pos: float, length: float) -> float:
        """Seconds the media clock still lacked when VLC reported the end (see module doc).

        The clock is judged by the later of two readings: VLC's own time, and the time since
        "playing" at normal rate (VLC's time lags by a fraction of a second). A gap larger than
        the input caching is not a buffered tail but a file shorter than its header says: no hold.
        """
        if length <= 0 or self._clock_base is None:
            return 0.0
        base_mono, base_pos = self._clock_base
        clock = max(pos, base_pos + (mono - base_mono))
        gap = length - clock
        return gap if 0.0 < gap <= self.max_tail_s else 0.0

    def _finish_drain(self) -> None:
        _, length = self._position()
        self._state = "idle"
        self._drain_until = None
        now = (time.time(), time.monotonic())
        self.post(PlayerEvent(self._token, "ended", now[0], now[1], length, length))

    # -- VLC callbacks (VLC threads): post a tagged notice and return, nothing else --------

    def _notice(self, kind: str, tag: MediaTag) -> None:
        self._cmds.put(("vlc", (kind, tag, time.time(), time.monotonic())))

    def _on_playing(self, _event: Any, tag: MediaTag) -> None:
        self._notice("playing", tag)

    def _on_paused(self, _event: Any, tag: MediaTag) -> None:
        self._notice("paused", tag)

    def _on_end(self, _event: Any, tag: MediaTag) -> None:
        self._notice("ended", tag)

    def _on_error(self, _event: Any, tag: MediaTag) -> None:
        self._notice("error", tag)
