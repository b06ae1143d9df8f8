"""Player adapter over python-vlc. All libvlc calls happen on one worker thread.

Why a worker thread: libvlc calls (stop in particular) can block, and the core must never block.
VLC's own callbacks run on VLC threads and only queue a notice, tagged with the media it belongs
to, for the worker; the worker alone owns the player state.

    player.py    VlcPlayer: the core's commands, the worker loop, VLC's callbacks
    playback.py  Playback: the state machine on the worker (notices, progress, the held end)
    media.py     LibVlcMedia: the libvlc instance and the current media player
    events.py    PlayerEvent, what the player posts, and its timing constants

libvlc is imported only when a course is near (``load``) and released after a while idle, which
keeps the idle agent small (python-vlc pulls in libvlc and its plugin cache).

Events posted (all ``PlayerEvent``, all from the worker thread): ``ready`` (prerolled, paused at
the start position), ``playing``, ``progress`` (position/length, about twice a second), ``ended``,
``error``, ``stopped``, ``loaded``/``unloaded``. Positions are of the media *shown*: never
ahead of the wall clock since ``playing`` (see ``playback.py`` on a media clock that jumps).
"""

from .events import (
    CLOCK_SLACK_S,
    DEFAULT_CACHING_S,
    PROGRESS_INTERVAL_S,
    TAIL_MARGIN_S,
    MediaTag,
    PlayerEvent,
    caching_seconds,
)
from .player import VlcPlayer

__all__ = [
    "CLOCK_SLACK_S",
    "DEFAULT_CACHING_S",
    "PROGRESS_INTERVAL_S",
    "TAIL_MARGIN_S",
    "MediaTag",
    "PlayerEvent",
    "VlcPlayer",
    "caching_seconds",
]
