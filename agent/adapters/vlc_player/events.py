"""What the player posts to the core, and the numbers its timing rests on."""

from __future__ import annotations

import re
from dataclasses import dataclass

PROGRESS_INTERVAL_S = 0.5
DEFAULT_CACHING_S = 1.0  # libvlc 3.0's input caching when no --*-caching option is given
TAIL_MARGIN_S = 0.5  # how far past the caching an early end may still be a buffered tail
# How far VLC's media clock may run ahead of the wall clock since "playing" before the media
# in between counts as not shown (VLC jumped over it: a file whose first key frame is late).
CLOCK_SLACK_S = 1.0

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
