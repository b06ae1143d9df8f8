"""What the runtime tells the core: one of these per ``Core.handle`` call.

Each event is a fact that already happened (time passed, the player said something, a command
arrived); the core decides what follows. Frozen, so the runtime cannot change one after posting.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.domain.schedule import Course, ScheduleDoc


@dataclass(frozen=True)
class Tick:
    """Time passes. The runtime sends one at least every second and at every wakeup."""


@dataclass(frozen=True)
class ClockJump:
    """The wall clock moved apart from the monotonic one (NTP, an admin, a bad RTC)."""

    delta_s: float  # wall minus monotonic drift since the previous tick (+ forward)


@dataclass(frozen=True)
class ClockSync:
    """The kernel's word on the clock (read every minute and at every jump)."""

    synced: bool | None


@dataclass(frozen=True)
class PlayerUpdate:
    """The player's report on the media it was given under ``token``."""

    token: str
    kind: str  # ready | playing | progress | ended | error | stopped
    wall: float
    mono: float
    position: float = 0.0
    length: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class MediaRejected:
    """The media check refused the file before the player saw it."""

    token: str
    reason: str  # missing | unreadable | checksum | bad_path
    message: str


@dataclass(frozen=True)
class PlayerHung:
    """The player worker has been stuck in one libvlc call for too long."""

    seconds: float


@dataclass(frozen=True)
class ScheduleChanged:
    """New schedule layers were applied; the plan is rebuilt from them."""

    layers: dict[str, ScheduleDoc]
    since: dict[str, float]  # layer -> wall time it was applied


@dataclass(frozen=True)
class LibraryChanged:
    """The on-demand library changed (a course manifest was applied): course id -> the course
    as a play request opens it (its first file)."""

    courses: dict[str, Course]


@dataclass(frozen=True)
class PlayCommand:
    """Play a course (or a bare media path) now, on an admin's or the county's request."""

    course_id: str | None
    media: str | None
    title: str | None
    trigger: str  # admin | remote
    priority: int | None = None


@dataclass(frozen=True)
class StopCommand:
    """Stop whatever is playing."""

    trigger: str


@dataclass(frozen=True)
class AttendanceSet:
    """The admin entered the attendance of a record (already stored at revision ``rev``); if it
    is the session playing now, its record follows, so the core's next save keeps it."""

    record_id: str
    attendance: int
    rev: int


Event = (
    Tick
    | ClockJump
    | ClockSync
    | PlayerUpdate
    | MediaRejected
    | PlayerHung
    | ScheduleChanged
    | PlayCommand
    | StopCommand
    | AttendanceSet
)
