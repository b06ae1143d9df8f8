"""Viewing records and their outcomes: the facts the county judges a station by.

Plain data, stdlib only: the core creates and changes records, the SQLite adapter stores them,
the MQTT adapter publishes them. Times are UTC RFC 3339 text (``utc_text``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How a record ended: every occurrence ends in exactly one of these."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    ERROR = "error"
    INTERRUPTED = "interrupted"  # set at the next start after a crash or power cut
    SKIPPED = "skipped"  # media missing, damaged or quarantined
    MISSED = "missed"  # not played, with the reason


OUTCOMES = tuple(o.value for o in Outcome)
# Final outcomes after which an occurrence is not played again (interrupted ones resume).
NOT_RESUMABLE = tuple(o.value for o in Outcome if o is not Outcome.INTERRUPTED)

TRIGGERS = ("schedule", "admin", "remote")


@dataclass
class Record:
    """One viewing record. Times are UTC RFC 3339 strings; durations are seconds."""

    record_id: str
    seq: int
    terminal: str
    course_id: str
    title: str
    media: str
    trigger: str
    clock_state: str
    boot_id: str
    occurrence_key: str | None = None
    schedule_layer: str | None = None
    schedule_version: int | None = None
    item_id: str | None = None
    planned_start: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    played_seconds: float = 0.0
    media_duration: float | None = None
    position: float = 0.0
    completion: float = 0.0
    outcome: str | None = None
    reason: str | None = None
    attendance: int | None = None
    resumed_from: str | None = None
    rev: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: Any) -> Record:
        """From a mapping with ``keys()`` (an ``sqlite3.Row``); unknown columns are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: row[k] for k in row.keys() if k in names})  # noqa: SIM118


RECORD_COLUMNS = [f.name for f in fields(Record)]


def utc_now_text(ts: float | None = None) -> str:
    return utc_text(time.time() if ts is None else ts)


def utc_text(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-28T11:30:00.000Z."""
    whole = int(ts // 1)
    ms = int(round((ts - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"
