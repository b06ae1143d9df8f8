"""A playback session: one attempt at playing one course, and the phases it goes through.

The phases and the moves between them are data (``TRANSITIONS``), in the manner of h11's
``_state.py``: ``Session.move`` looks a move up before anything changes, and a move the table
does not hold raises ``TransitionError`` with the session untouched. Player reports that do not
apply to the phase a session is in (a late or duplicate report) are filtered by the caller with
``Session.can`` and ignored, so the error only ever signals a fault in the core itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from agent.domain.planner import Occurrence
from agent.domain.records import Record
from agent.domain.schedule import Course


class Phase(StrEnum):
    """Where a session is. String-valued: the status shows it, and tests compare to text."""

    PREROLLING = "prerolling"  # opened paused ahead of its slot (or just created)
    READY = "ready"  # prerolled: paused on its first frame, waiting for the slot
    STARTING = "starting"  # told to start or play; the player has not said "playing" yet
    PLAYING = "playing"
    RETRY_WAIT = "retry_wait"  # an attempt failed; the next one is due at ``retry_at_mono``
    FINISHED = "finished"  # its record has a final outcome; nothing may happen to it again


class Step(StrEnum):
    """What moves a session from one phase to the next."""

    READY = "ready"  # the player prerolled it
    START = "start"  # the core told the player to start (prerolled) or play (cold, retry)
    PLAYING = "playing"  # the player reports playback running
    RETRY = "retry"  # an attempt failed and another is allowed
    FINISH = "finish"  # the record got its final outcome


TRANSITIONS: dict[Phase, dict[Step, Phase]] = {
    Phase.PREROLLING: {
        Step.READY: Phase.READY,
        Step.START: Phase.STARTING,
        # a start that never came within the timeout counts as a failed attempt
        Step.RETRY: Phase.RETRY_WAIT,
        # media rejected or quarantined before the slot
        Step.FINISH: Phase.FINISHED,
    },
    Phase.READY: {
        Step.START: Phase.STARTING,
        Step.FINISH: Phase.FINISHED,
    },
    Phase.STARTING: {
        Step.PLAYING: Phase.PLAYING,
        Step.RETRY: Phase.RETRY_WAIT,
        Step.FINISH: Phase.FINISHED,
    },
    Phase.PLAYING: {
        Step.RETRY: Phase.RETRY_WAIT,
        Step.FINISH: Phase.FINISHED,
    },
    Phase.RETRY_WAIT: {
        Step.START: Phase.STARTING,
        # the failed attempt's player did start after all (its token is still current until
        # the retry): playback is running, so it is taken as it is
        Step.PLAYING: Phase.PLAYING,
        # a late error of the failed attempt, or a hung player, uses up another attempt
        Step.RETRY: Phase.RETRY_WAIT,
        # stopped, replaced or interrupted while waiting
        Step.FINISH: Phase.FINISHED,
    },
    Phase.FINISHED: {},
}


class TransitionError(RuntimeError):
    """A session was asked to make a move its phase does not allow: a fault in the core."""

    def __init__(self, token: str, phase: Phase, step: Step) -> None:
        allowed = ", ".join(s.value for s in TRANSITIONS[phase]) or "nothing"
        super().__init__(
            f"session {token}: {step.value!r} is not allowed in phase {phase.value!r} "
            f"(allowed: {allowed})"
        )
        self.token = token
        self.phase = phase
        self.step = step


@dataclass
class History:
    """What is known about an occurrence from the store (or from this run)."""

    outcome: str | None
    record_id: str
    position: float = 0.0


@dataclass
class Session:
    """The live state of one course being prerolled, started, played or retried.

    ``record`` is the core's own, changing record; actions carry snapshots of it.
    """

    token: str
    record: Record
    course: Course
    rank: tuple[int, int]
    occ: Occurrence | None = None
    phase: Phase = Phase.PREROLLING
    start_at: float = 0.0  # media position to start from (resume)
    requested_mono: float = 0.0
    mark_mono: float | None = None  # last time played seconds were accounted
    advance_mono: float = 0.0  # last time the position moved
    position: float = 0.0
    max_position: float = 0.0
    length: float = 0.0
    checkpoint_mono: float = 0.0
    attempts: int = 0
    retry_at_mono: float = 0.0

    def can(self, step: Step) -> bool:
        """Whether ``step`` is allowed in the session's phase."""
        return step in TRANSITIONS[self.phase]

    def check(self, step: Step) -> Phase:
        """The phase ``step`` leads to; raises ``TransitionError`` if it is not allowed."""
        target = TRANSITIONS[self.phase].get(step)
        if target is None:
            raise TransitionError(self.token, self.phase, step)
        return target

    def move(self, step: Step) -> Phase:
        """Make the move ``step`` (checked first: a refused move changes nothing)."""
        self.phase = self.check(step)
        return self.phase
