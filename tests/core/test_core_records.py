"""The core's record and clock rules that once lost viewing time or invented records.

Pure: a FakeClock, no threads; the Harness is the one in test_core.py.
"""

from __future__ import annotations

import pytest

from agent.domain import core as c
from tests.core.test_core import T0, Harness, item


def test_the_duration_cap_stops_the_player_and_the_next_slot_starts() -> None:
    h = Harness([item("a", 0, cap=1, slot=None), item("b", 90, slot=5)], now=T0 - 1)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    stops: list[c.Stop] = []
    for i in range(1, 62):
        h.clock.advance(1)
        acts = h.player("progress", token, position=i, length=3600)
        stops += [a for a in acts if isinstance(a, c.Stop) and a.token == token]
    assert len(stops) == 1, "the cap must stop the player once"
    rec = next(r for r in h.records.values() if r.item_id == "a")
    assert rec.outcome == "completed" and "cap" in rec.reason
    h.run_until(T0 + 90)
    b = next(r for r in h.records.values() if r.item_id == "b")
    assert b.outcome is None and h.core.current is not None
    assert h.core.current.record.record_id == b.record_id


def test_a_completed_course_that_ended_by_itself_needs_no_stop() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    acts = h.player("ended", token, position=10, length=10)
    assert not [a for a in acts if isinstance(a, c.Stop)]


def test_a_resumed_record_starts_at_its_resume_position() -> None:
    key = "terminal/a/20261201T110000Z"
    history = {key: c.History("interrupted", "old-record", 120.0)}
    h = Harness([item("a", 0, slot=60)], now=T0 + 20 * 60, history=history)
    h.tick()
    (rec,) = h.records.values()
    assert rec.position == 120.0, "opened at 0: a kill before the first checkpoint loses it"
    assert h.core.current is not None and h.core.current.max_position == 120.0


def test_two_quick_interruptions_never_restart_a_course_from_zero() -> None:
    """Closed as the runtime closes it after a kill: at its last saved position."""
    key = "terminal/a/20261201T110000Z"
    history = {key: c.History("interrupted", "old-record", 15.0)}
    h = Harness([item("a", 0, slot=60)], now=T0 + 60, history=history)
    h.tick()
    (rec,) = h.records.values()
    # killed before the first checkpoint: the stored row is all that is left
    h2 = Harness(
        [item("a", 0, slot=60)],
        now=T0 + 90,
        history={key: c.History("interrupted", rec.record_id, rec.position)},
    )
    h2.tick()
    (play,) = h2.of(c.Play)
    assert play.start_at == 15.0


def test_checkpoints_keep_the_in_memory_record_current() -> None:
    """A later save of the open record must not write back stale position and played time."""
    h = Harness([item("a", 0, slot=60)], now=T0 - 1, checkpoint_s=10)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 26):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=600)
    (cp, *_) = h.of(c.Checkpoint)
    rec = h.core.current.record
    assert cp.played >= 9.0
    assert rec.played_seconds >= cp.played and rec.position >= cp.position > 0


def test_interrupting_keeps_the_played_time() -> None:
    h = Harness([item("a", 0, slot=60)], now=T0 - 1, checkpoint_s=60)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 8):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=600)
    h.feed_all = h.core.interrupt_current("stopping")
    for a in h.feed_all:
        if isinstance(a, c.SaveRecord):
            h.records[a.record.record_id] = a.record
    (rec,) = h.records.values()
    assert rec.outcome == "interrupted"
    assert rec.played_seconds == pytest.approx(7.0, abs=0.01)


def test_ignored_occurrences_are_not_listed_as_upcoming() -> None:
    # an item from before the agent became responsible, still inside its slot but past grace
    h = Harness([item("a", -1200, slot=60)], now=T0, responsible_since=T0)
    h.core.since["terminal"] = T0
    h.tick()
    assert h.core.history, "the occurrence should have been looked at"
    assert all(o.item.id != "a" for o in h.core.upcoming(5))


def test_history_stays_bounded_over_many_days() -> None:
    weekly = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "19:00"}
    h = Harness([item("a", 0, slot=1, weekly=weekly)], now=T0 - 1, lookback_s=3600)
    answered = 0
    end = T0 + 30 * 86400
    while h.clock.wall() < end:
        h.clock.advance(30)
        h.tick()
        for play in h.of(c.Play)[answered:]:
            h.player("playing", play.token)
            h.player("ended", play.token, position=10, length=10)
        answered = len(h.of(c.Play))
    assert len(h.by_outcome("completed")) == 30
    assert len(h.core.history) <= 4, len(h.core.history)


# -- the clock: a synced clock is authoritative; an unsynced one cannot run away ----------------


def test_a_synced_clock_wins_over_a_last_known_good_time_in_the_future() -> None:
    h = Harness([item("a", 0)], now=T0 - 60, lkg=T0 + 10 * 86400)
    assert h.core.clock_state() == "synced"
    h.run_until(T0)
    assert h.of(c.Preroll) and h.of(c.Start), "a synced clock must not hold the slot"
    assert h.core.lkg <= T0 + 1, "a synced clock lowers the last-known-good time"


def test_an_unsynced_clock_holds_while_earlier_than_the_last_known_good_time() -> None:
    h = Harness([item("a", 0)], now=T0 - 60, lkg=T0 + 10 * 86400, synced=False)
    h.run_until(T0 + 5)
    assert not h.of(c.Play)
    assert h.core.clock_state() == "implausible"


def test_an_unsynced_clock_advances_the_last_known_good_time_only_by_the_step() -> None:
    h = Harness([item("a", 0)], now=T0, lkg=T0 - 10, synced=False, max_lkg_step_s=3600)
    h.clock.jump(20 * 365 * 86400)  # the clock reads 2046
    h.feed(c.ClockJump(20 * 365 * 86400))
    h.feed(c.ClockSync(False))
    assert T0 - 10 < h.core.lkg <= T0 + 3600 + 1
    h.clock.advance(600)
    h.feed(c.ClockSync(False))
    assert h.core.lkg <= T0 + 3600 + 600 + 1
    h.feed(c.ClockSync(True))
    assert h.core.lkg == h.clock.wall(), "a synced clock is believed"


def test_a_forward_jump_of_an_unsynced_clock_invents_no_missed_slots() -> None:
    weekly = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "08:00"}
    h = Harness([item("a", 0, slot=30, weekly=weekly)], now=T0, lkg=T0 - 10, synced=False)
    h.clock.jump(10 * 365 * 86400)
    h.feed(c.ClockJump(10 * 365 * 86400))
    h.tick()
    assert h.by_outcome("missed") == []


def test_an_agent_started_with_a_clock_far_past_the_last_known_good_time_reports_no_backlog() -> (
    None
):
    weekly = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "08:00"}
    far = T0 + 10 * 365 * 86400
    h = Harness(
        [item("a", 0, slot=30, weekly=weekly)], now=far, lkg=T0, responsible_since=T0, synced=False
    )
    h.tick()
    assert h.by_outcome("missed") == []


def test_a_media_that_ends_during_its_preroll_is_opened_cold_at_the_slot() -> None:
    h = Harness([item("a", 0)], now=T0 - 10)
    h.run_until(T0 - 4)
    (pre,) = h.of(c.Preroll)
    h.player("ended", pre.token, position=0, length=0)
    h.run_until(T0)
    assert not [s for s in h.of(c.Start) if s.token == pre.token]
    (play,) = h.of(c.Play)
    h.player("ended", play.token, position=0, length=0)
    rec = next(iter(h.records.values()))
    assert rec.outcome is None or rec.outcome == "error"
    assert h.core.current is None or h.core.current.phase == "retry_wait"


def test_attendance_on_the_session_playing_now_is_kept_in_its_next_save() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    h.run_until(T0)
    token = h.core.current.token
    rid = h.core.current.record.record_id
    h.player("playing", token)
    h.feed(c.AttendanceSet(rid, 17, 2))
    assert h.core.current.record.attendance == 17 and h.core.current.record.rev == 2
    h.feed(c.AttendanceSet("another-record", 3, 5))
    assert h.core.current.record.attendance == 17
    h.player("ended", token, position=10, length=10)
    final = h.records[rid]
    assert final.outcome == "completed" and final.attendance == 17 and final.rev == 3
