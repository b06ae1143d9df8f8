"""What a play request would open, and why the player would refuse it, asked before playing.

Both doors for a remote "play" (the control socket, the MQTT ``cmd`` topic) check the media the
way the player will, so that nobody is told "playing" for a course that then ends ``skipped``.
The rule is one, so it lives here, between the two adapters, not in either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.adapters.media_files import MediaError, resolve
from agent.domain.schedule import is_url


def play_target(core: Any, course_id: str | None, media: str | None) -> str | None:
    """The media a play request would open, by the core's rule: a course of the running
    schedule wins over a media path. Core thread only (it reads the schedule)."""
    if course_id:
        course = core.find_course(course_id)
        if course is not None:
            return str(course.media)
    return media


def media_problem(content_dir: Path, media: str | None) -> MediaError | None:
    """Why the player would refuse ``media`` (its own check, ``agent.adapters.media_files.resolve``:
    inside the content folder after symlinks, present, a regular readable file), or None.

    Runs on the asking thread (control client, MQTT link), never on the core thread. The sha256
    of a course is not checked here (hashing a large video takes seconds); a damaged file is
    still found when it is opened, and its record ends ``skipped`` ("checksum: ...").
    """
    if not media or is_url(media):
        return None
    try:
        resolve(content_dir, media)
    except MediaError as exc:
        return exc
    return None
