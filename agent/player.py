"""Player adapter over python-vlc. All libvlc calls happen on one worker thread.

Why a worker thread: libvlc calls (stop in particular) can block, and the core must never block.
VLC's own callbacks run on VLC threads; they only hand an event to ``post`` and return, since
calling back into libvlc from a callback can deadlock.

libvlc is imported only when a course is near (``load``) and released after a while idle, which
keeps the idle agent small (python-vlc pulls in libvlc and its plugin cache).

Events posted (all ``PlayerEvent``): ``ready`` (prerolled, paused at the start position),
``playing``, ``progress`` (position/length, about twice a second), ``ended``, ``error``,
``stopped``, ``loaded``/``unloaded``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


@dataclass
class PlayerEvent:
    token: str
    kind: str
    wall: float
    mono: float
    position: float = 0.0  # seconds
    length: float = 0.0  # seconds, 0 when unknown
    detail: str = ""


class VlcPlayer:
    """Owns one libvlc instance and one media player, driven by commands from the core."""

    def __init__(
        self, options: list[str], post: Callable[[PlayerEvent], None], volume: int = 100
    ) -> None:
        self.options = list(options)
        self.post = post
        self.volume = volume
        self._cmds: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="player", daemon=True)
        self._vlc: Any = None
        self._instance: Any = None
        self._mp: Any = None
        self._token = ""
        self._state = "idle"  # idle | prerolling | ready | playing
        self._start_requested = False
        self._pending_start: str | None = None  # start arrived before its preroll
        self._last_progress = 0.0
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

    def _emit(self, kind: str, detail: str = "", token: str | None = None) -> None:
        pos, length = self._position()
        self.post(
            PlayerEvent(
                token if token is not None else self._token,
                kind,
                time.time(),
                time.monotonic(),
                pos,
                length,
                detail,
            )
        )

    def _position(self) -> tuple[float, float]:
        mp = self._mp
        if mp is None:
            return 0.0, 0.0
        t = mp.get_time()
        length = mp.get_length()
        return (max(t, 0) / 1000.0, max(length, 0) / 1000.0)

    def _run(self) -> None:
        while not self._stop:
            self.last_alive = time.monotonic()
            try:
                cmd, args = self._cmds.get(timeout=PROGRESS_INTERVAL_S)
            except queue.Empty:
                cmd, args = "", ()
            self.last_alive = time.monotonic()
            if cmd == "quit":
                break
            self.busy_since = time.monotonic()
            try:
                if cmd:
                    getattr(self, f"_do_{cmd}")(*args)
                if self._state == "playing":
                    now = time.monotonic()
                    if now - self._last_progress >= PROGRESS_INTERVAL_S:
                        self._last_progress = now
                        self._emit("progress")
            except Exception as exc:  # a libvlc failure must become an event, not a dead thread
                log.exception("player command %s failed", cmd)
                self._state = "idle"
                self._emit("error", f"{type(exc).__name__}: {exc}")
            finally:
                self.busy_since = None
        self._release_player()
        self._release_instance()

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
        self._start_requested = not paused
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
        # Callbacks run on VLC's threads: post and return, nothing else.
        events.event_attach(et.MediaPlayerPlaying, self._on_playing, token)
        events.event_attach(et.MediaPlayerPaused, self._on_paused, token)
        events.event_attach(et.MediaPlayerEndReached, self._on_end, token)
        events.event_attach(et.MediaPlayerEncounteredError, self._on_error, token)
        self._mp = mp
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

    # -- VLC callbacks (VLC threads) -------------------------------------------------------

    def _on_playing(self, _event: Any, token: str) -> None:
        if self._start_requested:
            self.post(PlayerEvent(token, "playing", time.time(), time.monotonic()))

    def _on_paused(self, _event: Any, token: str) -> None:
        if not self._start_requested:
            self.post(PlayerEvent(token, "ready", time.time(), time.monotonic()))

    def _on_end(self, _event: Any, token: str) -> None:
        self._state = "idle"
        pos, length = self._position_safe()
        self.post(PlayerEvent(token, "ended", time.time(), time.monotonic(), pos, length))

    def _on_error(self, _event: Any, token: str) -> None:
        self._state = "idle"
        self.post(
            PlayerEvent(
                token,
                "error",
                time.time(),
                time.monotonic(),
                detail="VLC could not open or decode the media",
            )
        )

    def _position_safe(self) -> tuple[float, float]:
        # Reading time/length from a callback is a plain getter on the player; it takes no
        # lock that the callback's own thread holds (unlike stop/release).
        try:
            return self._position()
        except Exception:  # noqa: BLE001
            return 0.0, 0.0
