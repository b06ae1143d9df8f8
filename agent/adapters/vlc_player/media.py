"""The libvlc side of the player: the instance, the one current media player, its callbacks.

Used on the player's worker thread only; nothing here is locked. libvlc is imported on the first
``load`` (python-vlc pulls in libvlc and its plugin cache), so an idle agent that never plays
does not carry it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .events import MediaTag

log = logging.getLogger("agent.adapters.vlc_player")

# A libvlc event callback: called on a VLC thread with the event and the media's tag.
Callback = Callable[[Any, MediaTag], None]


class LibVlcMedia:
    """One libvlc instance and at most one media player, each media player tagged.

    ``callbacks`` maps libvlc event type names (``"MediaPlayerEndReached"``) to the callbacks
    attached to every new media player, with that player's tag as their argument: a notice
    that arrives late for an older player carries the older tag and can be told apart.
    """

    def __init__(self, options: list[str], volume: int, callbacks: Mapping[str, Callback]) -> None:
        self.options = options
        self.volume = volume
        self._callbacks = dict(callbacks)
        self._vlc: Any = None
        self._instance: Any = None
        self._serial = 0
        self.mp: Any = None
        self.tag: MediaTag | None = None  # the current media player's tag; None when none

    @property
    def loaded(self) -> bool:
        return self._instance is not None

    def load(self) -> bool:
        """Start libvlc; False when it was already running."""
        if self._instance is not None:
            return False
        import vlc  # noqa: PLC0415 - deliberately lazy: libvlc is large

        self._vlc = vlc
        self._instance = vlc.Instance(*self.options)
        if self._instance is None:
            raise RuntimeError(f"libvlc failed to start with options {self.options}")
        return True

    def new_tag(self, token: str) -> MediaTag:
        """The tag of the next media player: the core's token and a fresh serial."""
        self._serial += 1
        return (token, self._serial)

    def open(self, tag: MediaTag, mrl: str, start_at: float, paused: bool) -> None:
        """Make the media player for ``mrl`` current (not yet playing); the old one is released."""
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
        et = self._vlc.EventType
        for name, callback in self._callbacks.items():
            events.event_attach(getattr(et, name), callback, tag)
        self.mp = mp
        self.tag = tag

    def play(self, mrl: str) -> None:
        if self.mp.play() == -1:
            raise RuntimeError(f"libvlc refused to play {mrl}")

    def resume(self) -> None:
        self.mp.set_pause(0)

    def set_volume(self, volume: int) -> None:
        self.volume = volume
        if self.mp is not None:
            self.mp.audio_set_volume(volume)

    def position(self) -> tuple[float, float]:
        """(position, length) in seconds of the current media; zeros when there is none."""
        mp = self.mp
        if mp is None:
            return 0.0, 0.0
        t = mp.get_time()
        length = mp.get_length()
        return (max(t, 0) / 1000.0, max(length, 0) / 1000.0)

    def release_player(self) -> None:
        """Stop and free the media player; its notices still queued become stale."""
        self.tag = None
        if self.mp is not None:
            try:
                self.mp.stop()
                self.mp.release()
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.exception("releasing the media player failed")
            self.mp = None

    def release_instance(self) -> None:
        if self._instance is not None:
            try:
                self._instance.release()
            except Exception:  # noqa: BLE001
                log.exception("releasing libvlc failed")
            self._instance = None
