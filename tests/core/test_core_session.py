"""Session phases as a transition table: each allowed move, and every other one refused.

A refused move raises ``TransitionError`` before anything changes, whether it is asked of a
bare session or made by the core's own job modules.
"""

from __future__ import annotations

import copy
import itertools
from collections import deque

import pytest

from agent.domain import core as c
from agent.domain.core import lifecycle, playback
from agent.domain.records import Record
from agent.domain.schedule import Course
from tests.core.test_core import T0, Harness, item

ALLOWED = [(p, s) for p in c.Phase for s in c.Step if s in c.TRANSITIONS[p]]
REFUSED = [(p, s) for p in c.Phase for s in c.Step if s not in c.TRANSITIONS[p]]


def _session(phase: c.Phase) -> c.Session:
    rec = Record("r-1", 1, "t-001", "A", "Course a", "a.wav", "schedule", "synced", "boot-1")
    course = Course(id="A", title="Course a", media="a.wav")
    return c.Session(token="r-1", record=rec, course=course, rank=(0, 10), phase=phase)


def test_the_table_has_a_row_for_every_phase_and_names_only_phases() -> None:
    assert set(c.TRANSITIONS) == set(c.Phase)
    for row in c.TRANSITIONS.values():
        assert set(row) <= set(c.Step) and set(row.values()) <= set(c.Phase)


def test_the_phases_keep_the_text_the_status_shows() -> None:
    assert [p.value for p in c.Phase] == [
        "prerolling",
        "ready",
        "starting",
        "playing",
        "retry_wait",
        "finished",
    ]
    assert c.Session.__dataclass_fields__["phase"].default == "prerolling"


def test_finished_is_final_and_every_other_phase_can_finish() -> None:
    assert c.TRANSITIONS[c.Phase.FINISHED] == {}
    for phase in c.Phase:
        if phase is not c.Phase.FINISHED:
            assert c.TRANSITIONS[phase][c.Step.FINISH] is c.Phase.FINISHED


def test_every_phase_is_reachable_from_a_new_session() -> None:
    seen, todo = {c.Phase.PREROLLING}, deque([c.Phase.PREROLLING])
    while todo:
        for nxt in c.TRANSITIONS[todo.popleft()].values():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(c.Phase)


@pytest.mark.parametrize(("phase", "step"), ALLOWED, ids=lambda v: str(v))
def test_an_allowed_move_goes_where_the_table_says(phase: c.Phase, step: c.Step) -> None:
    s = _session(phase)
    assert s.can(step)
    assert s.move(step) is c.TRANSITIONS[phase][step]
    assert s.phase is c.TRANSITIONS[phase][step]


@pytest.mark.parametrize(("phase", "step"), REFUSED, ids=lambda v: str(v))
def test_a_move_not_in_the_table_is_refused_and_changes_nothing(
    phase: c.Phase, step: c.Step
) -> None:
    s = _session(phase)
    before = copy.deepcopy(s)
    assert not s.can(step)
    with pytest.raises(c.TransitionError) as err:
        s.move(step)
    assert s == before
    assert (err.value.phase, err.value.step, err.value.token) == (phase, step, "r-1")
    assert f"{step.value!r} is not allowed in phase {phase.value!r}" in str(err.value)


def test_known_wrong_moves_are_refused() -> None:
    """Moves the core must never make: a finished record reopened, a playing one restarted."""
    for phase, step in [
        (c.Phase.FINISHED, c.Step.FINISH),
        (c.Phase.FINISHED, c.Step.START),
        (c.Phase.PLAYING, c.Step.START),
        (c.Phase.PLAYING, c.Step.READY),
        (c.Phase.READY, c.Step.PLAYING),
        (c.Phase.STARTING, c.Step.START),
    ]:
        assert (phase, step) in REFUSED


def _playing(h: Harness) -> c.Session:
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    assert h.core.current is not None and h.core.current.phase == "playing"
    return h.core.current


def test_the_core_refuses_to_finish_a_session_twice_before_changing_anything() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    session = _playing(h)
    h.player("ended", session.token, position=10, length=10)
    assert session.phase is c.Phase.FINISHED and h.core.current is None
    record, seq, history = copy.deepcopy(session.record), h.core.next_seq, dict(h.core.history)
    out: list[c.Action] = []
    with pytest.raises(c.TransitionError, match="'finish' is not allowed in phase 'finished'"):
        lifecycle.finish(h.core, session, "stopped", "again", out)
    assert out == []
    assert session.record == record and h.core.next_seq == seq and h.core.history == history


def test_the_core_refuses_to_restart_a_playing_session_before_changing_anything() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    session = _playing(h)
    before = copy.deepcopy(session)
    out: list[c.Action] = []
    with pytest.raises(c.TransitionError, match="'start' is not allowed in phase 'playing'"):
        playback.play(h.core, session, out)
    assert out == [] and session == before


def test_the_core_refuses_a_retry_of_a_finished_session() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    session = _playing(h)
    h.feed(c.StopCommand("admin"))
    before = copy.deepcopy(session)
    out: list[c.Action] = []
    with pytest.raises(c.TransitionError, match="'retry' is not allowed in phase 'finished'"):
        playback.fail(h.core, session, "late error", out)
    assert out == [] and session == before


def test_late_or_repeated_player_reports_are_ignored_not_refused() -> None:
    h = Harness([item("a", 0)])
    h.run_until(T0 - 5)
    (pre,) = h.of(c.Preroll)
    h.player("ready", pre.token)
    assert h.player("ready", pre.token) == []  # a second "ready" changes nothing
    assert h.core.prerolled is not None and h.core.prerolled.phase is c.Phase.READY
    h.run_until(T0)
    h.player("playing", pre.token)
    assert h.player("playing", pre.token) == []
    h.player("ended", pre.token, position=30, length=30)
    assert h.player("playing", pre.token) == [] and h.core.current is None


def test_a_session_walks_the_table_through_a_retry_to_completion() -> None:
    h = Harness([item("a", 0)], now=T0 - 1, retries=1)
    session = _playing(h)
    phases = [session.phase]
    h.player("error", session.token, detail="decoder")
    phases.append(session.phase)
    h.run_until(T0 + 11)
    phases.append(session.phase)
    h.player("playing", session.token)
    phases.append(session.phase)
    h.player("ended", session.token, position=5, length=5)
    phases.append(session.phase)
    assert phases == ["playing", "retry_wait", "starting", "playing", "finished"]
    for before, after in itertools.pairwise(phases):
        assert after in c.TRANSITIONS[c.Phase(before)].values()
