"""``VlcPlayer``: the core's commands, the worker thread that runs them, and VLC's callbacks.

Every method the core calls puts a command on the worker's queue and returns. The worker alone
touches libvlc (``LibVlcMedia``) and the playback state (``Playback``). VLC's callbacks run on VLC
threads, where calling back into libvlc can deadlock (a getter waits for the lock that ``stop``
holds while it joins the very thread running the callback), so a callback only queues a tagged
notice for the worker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .events import TAIL_MARGIN_S, MediaTag, PlayerEvent, caching_seconds
from .media import LibVlcMedia
from .playback import Playback

log = logging.getLogger("agent.adapters.vlc_player")


class VlcPlayer:
    """Owns one libvlc instance and one media player, driven by commands from the core."""

    def __init__(
        self, options: list[str], post: Callable[[PlayerEvent], None], volume: int = 100
    ) -> None:
        self.options = list(options)
        self.post = post
        self._cmds: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="player", daemon=True)
        # Worker-thread state. ``post`` is looked up per event: it may be replaced after start.
        self._media = LibVlcMedia(
            self.options,
            volume,
            {
                "MediaPlayerPlaying": self._on_playing,
                "MediaPlayerPaused": self._on_paused,
                "MediaPlayerEndReached": self._on_end,
                "MediaPlayerEncounteredError": self._on_error,
            },
        )
        self._playback = Playback(
            self._media,
            lambda event: self.post(event),
            caching_seconds(self.options) + TAIL_MARGIN_S,
        )
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
        return self._media.loaded

    @property
    def stale_notices(self) -> int:
        """VLC notices dropped because their media was no longer current."""
        return self._playback.stale_notices

    # Read-only views of the worker's state for tests; only the worker thread changes them.

    @property
    def _tag(self) -> MediaTag | None:
        """The current media player's tag (what its callbacks are handed); None when none."""
        return self._media.tag

    @property
    def _mp(self) -> Any:
        """The current libvlc media player; None when none is open."""
        return self._media.mp

    @property
    def _state(self) -> str:
        """One of ``playback.STATES``."""
        return self._playback.state

    # -- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        playback = self._playback
        while not self._stop:
            # ``last_alive`` says when the worker last passed here, which may be long ago when
            # idle; a stuck libvlc call is told by ``busy_since``, set around every pass below.
            self.last_alive = time.monotonic()
            try:
                cmd, args = self._cmds.get(timeout=playback.wait_s())
            except queue.Empty:
                cmd, args = "", ()
            self.last_alive = time.monotonic()
            if cmd == "quit":
                break
            self.busy_since = time.monotonic()
            try:
                if cmd:
                    self._handle(cmd, args)
                playback.tick()
            except Exception as exc:  # a libvlc failure must become an event, not a dead thread
                log.exception("player command %s failed", cmd)
                playback.fail(f"{type(exc).__name__}: {exc}")
            finally:
                self.busy_since = None
        playback.close()

    def _handle(self, cmd: str, args: tuple[Any, ...]) -> None:
        playback = self._playback
        match cmd:
            case "load":
                playback.load()
            case "unload":
                playback.unload()
            case "preroll":
                token, mrl, start_at = args
                # The slot may already have come while the media was being checked: play at once.
                self._new_player(token, mrl, start_at, paused=playback.pending_start != token)
                playback.pending_start = None
            case "play":
                token, mrl, start_at = args
                self._new_player(token, mrl, start_at, paused=False)
            case "start":
                playback.start(*args)
            case "stop":
                playback.stop(*args)
            case "volume":
                self._media.set_volume(*args)
            case "vlc":
                playback.notice(*args)
            case _:
                raise ValueError(f"unknown player command {cmd!r}")

    def _new_player(self, token: str, mrl: str, start_at: float, paused: bool) -> None:
        """Open ``mrl`` on a fresh media player (the one libvlc call a hang shows up in)."""
        self._playback.begin(token, mrl, start_at, paused)

    # -- VLC callbacks (VLC threads): queue a tagged notice and return, nothing else --------

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
