"""What the core asks the runtime to do, in order, before the next event.

Actions are frozen and carry snapshots: a ``SaveRecord`` holds the record as it stood when the
action was emitted, never the core's live record, so an action held back (the runtime buffers
writes while the disk is full) still writes what was true then, whatever the core did since.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field, fields
from typing import Any

from agent.domain.records import Record

_RECORD_FIELDS = tuple(f.name for f in fields(Record))


class RecordSnapshot(Record):
    """A read-only copy of a ``Record``: assigning to a field raises ``FrozenInstanceError``.

    A subclass rather than a second record type, so the store and the wire code that take a
    ``Record`` take a snapshot unchanged, and a snapshot equals a record with the same fields.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_sealed", False)
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_sealed", True)

    @classmethod
    def of(cls, rec: Record) -> RecordSnapshot:
        """``rec`` as it is now (a snapshot is returned as it is: it cannot change)."""
        if isinstance(rec, cls):
            return rec
        return cls(**{name: getattr(rec, name) for name in _RECORD_FIELDS})

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_sealed", False):
            raise FrozenInstanceError(f"cannot assign to field {name!r} of a record snapshot")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r} of a record snapshot")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _RECORD_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # equal to a mutable Record, so not hashable


@dataclass(frozen=True)
class SaveRecord:
    """Insert (``new``) or update a record; the record is snapshotted on construction."""

    record: Record
    new: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "record", RecordSnapshot.of(self.record))


@dataclass(frozen=True)
class Checkpoint:
    """Save an open record's progress (cheaper than a whole ``SaveRecord``)."""

    record_id: str
    position: float
    played: float
    completion: float


@dataclass(frozen=True)
class Preroll:
    """Open the media paused, so that the slot starts on time."""

    token: str
    media: str
    sha256: str | None
    start_at: float


@dataclass(frozen=True)
class Start:
    """Unpause what was prerolled under ``token``."""

    token: str


@dataclass(frozen=True)
class Play:
    """Open the media and play it at once (no preroll, a retry or a command)."""

    token: str
    media: str
    sha256: str | None
    start_at: float


@dataclass(frozen=True)
class Stop:
    """Stop (or forget) whatever the player holds under ``token``."""

    token: str


@dataclass(frozen=True)
class UnloadPlayer:
    """Release libvlc: nothing has been played for a while."""


@dataclass(frozen=True)
class RestartPlayer:
    """Throw the libvlc instance (and its worker) away and start a fresh one."""

    reason: str


@dataclass(frozen=True)
class ExitProcess:
    """Last resort: exit non-zero so systemd starts a fresh process."""

    reason: str


@dataclass(frozen=True)
class Alarm:
    """Raise or clear a named alarm (persisted, then published)."""

    name: str
    action: str  # raised | cleared
    severity: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Log:
    """An event for the journal and the store's event log."""

    level: str  # info | warning | error
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """The answer to a command event (the runtime hands it back to whoever asked)."""

    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)


Action = (
    SaveRecord
    | Checkpoint
    | Preroll
    | Start
    | Play
    | Stop
    | UnloadPlayer
    | RestartPlayer
    | ExitProcess
    | Alarm
    | Log
    | Reply
)
