"""The core: all playback state and decisions, as pure logic.

It reads only its injected clock, takes events and returns actions; it never touches VLC,
SQLite, sockets or files (the runtime does, in that order, before the next event). Tests drive
it with a FakeClock and no threads, in the manner of h11.

Record lifecycle: a record is saved (action SaveRecord) *before* the player is told to start;
progress is checkpointed at a bounded interval; every occurrence ends in exactly one final
outcome: completed, stopped, error, interrupted (set at the next start after a crash),
skipped (media missing/damaged) or missed (not played, with the reason).

The modules, by job:

    settings     CoreSettings
    events       what the runtime tells the core (Tick, PlayerUpdate, PlayCommand, ...)
    actions      what the core asks of the runtime (SaveRecord, Play, Alarm, ...), frozen
    session      a session's phases and the transition table between them
    state        CoreState: everything the core knows
    planning     the plan, what is due, what was missed, clock jumps
    lifecycle    records: open, checkpoint, finish, missed
    playback     preroll, start, retry, the player's reports
    escalation   quarantine, libvlc restart, process restart, alarms
    commands     play and stop on request
    facade       Core, which dispatches events to the above

Everything the rest of the agent uses is importable from here (``from agent.domain import
core as c``; ``c.Core``, ``c.Tick``, ``c.SaveRecord``...).
"""

from __future__ import annotations

from agent.domain.core.actions import (
    Action,
    Alarm,
    Checkpoint,
    ExitProcess,
    Log,
    Play,
    Preroll,
    RecordSnapshot,
    Reply,
    RestartPlayer,
    SaveRecord,
    Start,
    Stop,
    UnloadPlayer,
)
from agent.domain.core.events import (
    AttendanceSet,
    ClockJump,
    ClockSync,
    Event,
    LibraryChanged,
    MediaRejected,
    PlayCommand,
    PlayerHung,
    PlayerUpdate,
    ScheduleChanged,
    StopCommand,
    Tick,
)
from agent.domain.core.facade import Core
from agent.domain.core.session import (
    TRANSITIONS,
    History,
    Phase,
    Session,
    Step,
    TransitionError,
)
from agent.domain.core.settings import CoreSettings
from agent.domain.core.state import CoreState, uuid_text
from agent.domain.records import NOT_RESUMABLE as FINAL_NOT_RESUMABLE

__all__ = [
    "FINAL_NOT_RESUMABLE",
    "TRANSITIONS",
    "Action",
    "Alarm",
    "Checkpoint",
    "ClockJump",
    "ClockSync",
    "Core",
    "CoreSettings",
    "CoreState",
    "Event",
    "ExitProcess",
    "History",
    "Log",
    "MediaRejected",
    "Phase",
    "Play",
    "PlayCommand",
    "PlayerHung",
    "PlayerUpdate",
    "Preroll",
    "RecordSnapshot",
    "Reply",
    "RestartPlayer",
    "SaveRecord",
    "LibraryChanged",
    "ScheduleChanged",
    "Session",
    "Start",
    "Step",
    "Stop",
    "AttendanceSet",
    "StopCommand",
    "Tick",
    "TransitionError",
    "UnloadPlayer",
    "uuid_text",
]
