"""Records from opening to their one final outcome.

A record is saved (``SaveRecord``, new) when its session opens, before the player is told to
start; its progress is checkpointed at a bounded interval; it ends in exactly one final
outcome: completed, stopped, error, interrupted, skipped or missed (not played, with the
reason). Every save carries a snapshot, so what is written is what was true when it was emitted.
"""

from __future__ import annotations

from agent.domain.clockrules import IMPLAUSIBLE
from agent.domain.core.actions import Action, Checkpoint, Log, SaveRecord, Stop
from agent.domain.core.escalation import escalate, recovered
from agent.domain.core.session import History, Session, Step
from agent.domain.core.state import CoreState
from agent.domain.planner import Occurrence
from agent.domain.records import Record, utc_text
from agent.domain.schedule import Course


def new_session(
    core: CoreState, course: Course, rank: tuple[int, int], trigger: str, occ: Occurrence | None
) -> Session:
    """A session with a fresh record (not yet saved: ``open_record`` does that)."""
    rec = Record(
        record_id=core.new_id(),
        seq=0,
        terminal=core.s.terminal,
        course_id=course.id,
        title=course.title,
        media=course.media,
        trigger=trigger,
        clock_state=core.clock_state(),
        boot_id=core.s.boot_id,
        occurrence_key=occ.key if occ else None,
        schedule_layer=occ.layer if occ else None,
        schedule_version=occ.version if occ else None,
        item_id=occ.item.id if occ else None,
        planned_start=utc_text(occ.start) if occ else None,
    )
    return Session(token=rec.record_id, record=rec, course=course, rank=rank, occ=occ)


def open_record(core: CoreState, session: Session, out: list[Action]) -> None:
    """Make ``session`` the current one and save its record for the first time."""
    session.record.seq = core.take_seq()
    session.record.clock_state = core.clock_state()
    core.current = session
    if session.occ is not None:
        core.history[session.occ.key] = History(None, session.record.record_id)
    out.append(SaveRecord(session.record, new=True))
    session.checkpoint_mono = core.clock.monotonic()


def missed(core: CoreState, occ: Occurrence, reason: str, out: list[Action]) -> None:
    """Record an occurrence that was not played, and why."""
    rec = new_session(core, occ.item.course, occ.rank, "schedule", occ).record
    rec.seq = core.take_seq()
    rec.outcome = "missed"
    rec.reason = reason
    rec.ended_at = utc_text(core.clock.wall())
    core.history[occ.key] = History("missed", rec.record_id)
    out.append(SaveRecord(rec, new=True))
    out.append(
        Log(
            "warning",
            "missed",
            f"{occ.item.course.title} at {utc_text(occ.start)} was missed: {reason}",
            {"record_id": rec.record_id, "occurrence": occ.key},
        )
    )


def account(session: Session, mono: float) -> None:
    """Add the time played since the last mark (only while playing: ``mark_mono`` is set)."""
    if session.mark_mono is not None:
        session.record.played_seconds += max(0.0, mono - session.mark_mono)
        session.mark_mono = mono


def completion(session: Session) -> float:
    """Share of the media reached, 0..1 (0 while its length is unknown)."""
    if session.length <= 0:
        return 0.0
    return min(1.0, session.max_position / session.length)


def checkpoint(session: Session, out: list[Action]) -> None:
    """Save the progress of the playing session (its record keeps the same values)."""
    rec = session.record
    rec.position = round(session.max_position, 3)
    rec.completion = round(completion(session), 4)
    out.append(
        Checkpoint(rec.record_id, rec.position, round(rec.played_seconds, 3), rec.completion)
    )


def finish(
    core: CoreState,
    session: Session,
    outcome: str,
    reason: str | None,
    out: list[Action],
    completed_fully: bool = False,
) -> None:
    """Give the session's record its final ``outcome``, save it, and escalate or recover."""
    session.move(Step.FINISH)
    mono = core.clock.monotonic()
    account(session, mono)
    session.mark_mono = None
    rec = session.record
    rec.outcome = outcome
    rec.reason = reason
    rec.ended_at = utc_text(core.clock.wall())
    rec.position = round(session.max_position, 3)
    rec.media_duration = round(session.length, 3) if session.length > 0 else rec.media_duration
    rec.completion = 1.0 if completed_fully else round(completion(session), 4)
    rec.played_seconds = round(rec.played_seconds, 3)
    state = core.clock_state()
    if state != "synced" and rec.clock_state == "synced" or state == IMPLAUSIBLE:
        rec.clock_state = state
    rec.rev += 1
    if session.length > 0 and core.durations.get(session.course.id) != session.length:
        core.durations[session.course.id] = session.length
        core.cached_plan = None
    if session.occ is not None:
        core.history[session.occ.key] = History(outcome, rec.record_id, rec.position)
    if core.current is session:
        core.current = None
        core.idle_since_mono = mono
        if not completed_fully:  # the player may still be playing (a cap, a stop, an error)
            out.append(Stop(session.token))
    out.append(SaveRecord(rec, new=False))
    if outcome == "error":
        escalate(core, session, reason or "error", out)
    elif outcome == "completed":
        recovered(core, session, out)
    level = "info" if outcome == "completed" else "warning"
    out.append(
        Log(
            level,
            f"record_{outcome}",
            f"{rec.title}: {outcome}" + (f" ({reason})" if reason else ""),
            {
                "record_id": rec.record_id,
                "completion": rec.completion,
                "played_seconds": rec.played_seconds,
            },
        )
    )
