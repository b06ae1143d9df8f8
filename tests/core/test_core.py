"""The core as a pure state machine: events in, actions out, a FakeClock, no threads, no I/O."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from agent.adapters.schedule_files import parse_schedule
from agent.domain import core as c
from agent.domain.records import Record
from agent.testing.fakes import FakeClock
from tests.helpers import TZ

T0 = dt.datetime(2026, 12, 1, 19, 0, tzinfo=TZ).timestamp()  # a Tuesday, 19:00 local


def item(
    item_id: str,
    offset_s: float,
    *,
    priority: int = 10,
    slot: float | None = 30,
    cap: float | None = None,
    weekly: dict | None = None,
) -> dict:
    course = {"id": item_id.upper(), "title": f"Course {item_id}", "media": f"{item_id}.wav"}
    if cap is not None:
        course["max_minutes"] = cap
    out = {"id": item_id, "priority": priority, "course": course}
    if slot is not None:
        out["slot_minutes"] = slot
    if weekly:
        out["weekly"] = weekly
    else:
        out["at"] = dt.datetime.fromtimestamp(T0 + offset_s, TZ).replace(tzinfo=None).isoformat()
    return out


class Harness:
    """Drives a Core like the runtime would, and keeps the 'store' as a dict of records."""

    def __init__(
        self,
        items: list[dict],
        *,
        now: float = T0 - 60,
        history=None,
        lkg: float = 0.0,
        responsible_since: float | None = None,
        synced: bool | None = True,
        new_id=None,
        **settings,
    ) -> None:
        self.clock = FakeClock(now)
        doc = parse_schedule(json.dumps({"version": 1, "items": items}), "t")
        base = dict(
            grace_s=600,
            preroll_s=5,
            checkpoint_s=60,
            stall_s=15,
            start_timeout_s=20,
            retries=2,
            retry_delay_s=10,
        )
        base.update(settings)
        ids = {} if new_id is None else {"new_id": new_id}
        self.core = c.Core(
            c.CoreSettings(terminal="t-001", boot_id="boot-1", **base),
            self.clock,
            layers={"terminal": doc},
            since={"terminal": 0.0},
            history=history or {},
            next_seq=1,
            lkg=lkg,
            synced=synced,
            responsible_since=responsible_since if responsible_since is not None else now - 86400,
            **ids,
        )
        self.records: dict[str, Record] = {}
        self.log: list[c.Action] = []

    def feed(self, event: object) -> list[c.Action]:
        actions = self.core.handle(event)
        for a in actions:
            if isinstance(a, c.SaveRecord):
                if a.new:
                    assert a.record.record_id not in self.records, "record inserted twice"
                else:
                    assert a.record.record_id in self.records, "update of a record never inserted"
                self.records[a.record.record_id] = copy.deepcopy(a.record)
        self.log.extend(actions)
        return actions

    def tick(self) -> list[c.Action]:
        return self.feed(c.Tick())

    def run_until(self, wall: float, step: float = 1.0) -> list[c.Action]:
        out = []
        while self.clock.wall() + step <= wall + 1e-9:
            self.clock.advance(step)
            out += self.tick()
        return out

    def player(
        self, kind: str, token: str, position: float = 0.0, length: float = 0.0, detail: str = ""
    ) -> list[c.Action]:
        return self.feed(
            c.PlayerUpdate(
                token, kind, self.clock.wall(), self.clock.monotonic(), position, length, detail
            )
        )

    def of(self, kind: type) -> list:
        return [a for a in self.log if isinstance(a, kind)]

    def by_outcome(self, outcome: str | None) -> list[Record]:
        return [r for r in self.records.values() if r.outcome == outcome]


def test_scheduled_course_prerolls_starts_on_time_and_completes() -> None:
    h = Harness([item("a", 0)])
    h.run_until(T0 - 6)
    assert h.of(c.Preroll) == []
    h.run_until(T0 - 5)
    (pre,) = h.of(c.Preroll)
    assert pre.media == "a.wav"
    assert h.core.next_wakeup() == pytest.approx(T0)
    h.player("ready", pre.token)
    h.clock.advance(5)
    acts = h.tick()
    # the record is saved (open) before the player is told to start
    kinds = [type(a) for a in acts]
    assert kinds.index(c.SaveRecord) < kinds.index(c.Start)
    (rec,) = h.records.values()
    assert rec.outcome is None and rec.planned_start == "2026-12-01T11:00:00.000Z"
    h.clock.advance(0.002)
    h.player("playing", pre.token)
    assert h.records[rec.record_id].started_at == "2026-12-01T11:00:00.002Z"
    for i in range(1, 91):
        h.clock.advance(1)
        h.player("progress", pre.token, position=i, length=90)
    h.player("ended", pre.token, position=89.5, length=90)
    done = h.records[rec.record_id]
    assert (done.outcome, done.completion, done.media_duration) == ("completed", 1.0, 90.0)
    assert done.played_seconds == pytest.approx(90, abs=0.01)
    assert done.trigger == "schedule" and done.schedule_version == 1 and done.item_id == "a"
    assert done.clock_state == "synced" and done.seq == 1
    # learned duration: the planner now knows the course is 90 s long
    assert h.core.durations["A"] == 90


def test_progress_is_checkpointed_at_the_configured_interval() -> None:
    h = Harness([item("a", 0)], now=T0 - 1, checkpoint_s=30)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 100):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=600)
    cps = h.of(c.Checkpoint)
    assert len(cps) == 3  # 99 s of play, one every 30 s
    assert [round(cp.position) for cp in cps] == [30, 60, 90]


def test_late_start_within_grace_plays_cold_from_the_beginning() -> None:
    h = Harness([item("a", 0)], now=T0 + 240)
    h.tick()
    (play,) = h.of(c.Play)
    assert play.start_at == 0
    assert any(isinstance(a, c.Log) and a.kind == "late_start" for a in h.log)


def test_past_grace_is_missed_with_the_reason() -> None:
    h = Harness([item("a", 0)], now=T0 + 11 * 60, responsible_since=T0 - 3600)
    h.tick()
    assert h.of(c.Play) == [] and h.of(c.Start) == []
    (missed,) = h.by_outcome("missed")
    assert "agent was not running" in missed.reason
    h.tick()
    assert len(h.records) == 1  # recorded once, not every tick


def test_a_fresh_install_does_not_report_the_past_as_missed() -> None:
    h = Harness([item("a", -7200, slot=30), item("b", 0)], now=T0 - 60, responsible_since=T0 - 60)
    h.run_until(T0 + 1)
    assert h.by_outcome("missed") == []
    assert [r.item_id for r in h.records.values()] == ["b"]


def test_clock_jump_forward_by_days_never_plays_a_backlog() -> None:
    daily = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "time": "19:00"}
    h = Harness(
        [item("d", 0, weekly=daily, slot=30)],
        now=T0 - 3600,
        lookback_s=72 * 3600,
        responsible_since=T0 - 3600,
    )
    h.tick()
    h.clock.jump(3 * 86400 + 3600 + 120)  # now 3 days later, 19:02 local
    h.feed(c.ClockJump(3 * 86400 + 3600 + 120))
    plays = h.of(c.Play) + h.of(c.Start)
    assert len(plays) == 1  # only the slot in progress, within grace
    missed = h.by_outcome("missed")
    assert len(missed) == 2  # the two jumped-over slots within the 72 h lookback
    assert all("clock jumped" in r.reason for r in missed)


def test_clock_jump_back_an_hour_does_not_replay_a_finished_course() -> None:
    h = Harness([item("a", 0, slot=20)], now=T0 - 1)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    h.clock.advance(60)
    h.player("ended", token, position=60, length=60)
    assert len(h.by_outcome("completed")) == 1
    h.clock.jump(-3600 + 30)
    h.feed(c.ClockJump(-3570))
    h.run_until(h.clock.wall() + 3700)
    assert len(h.of(c.Play)) == 1 and len(h.records) == 1


def test_clock_jump_back_during_a_course_keeps_it_playing() -> None:
    h = Harness([item("a", 0, slot=20)], now=T0 - 1)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 31):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=120)
    h.clock.jump(-3600)
    h.feed(c.ClockJump(-3600))
    for i in range(31, 121):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=120)
    h.player("ended", token, position=120, length=120)
    (rec,) = h.records.values()
    assert rec.outcome == "completed" and rec.played_seconds == pytest.approx(120, abs=0.01)


def test_implausible_clock_holds_slots_until_it_is_plausible() -> None:
    lkg = T0 + 400  # an unsynchronised clock reads earlier than a time known to have passed
    h = Harness([item("a", 0)], now=T0 - 300, lkg=lkg, synced=False)
    h.run_until(T0 + 120)
    assert h.of(c.Play) == [] and h.of(c.Start) == [] and h.of(c.Preroll) == []
    assert any(isinstance(a, c.Log) and a.kind == "clock_hold" for a in h.log)
    h.clock.jump(200)  # NTP corrects it: now T0 + 320 s, within grace
    h.feed(c.ClockSync(True))
    h.feed(c.ClockJump(200))
    assert len(h.of(c.Play)) == 1
    (rec,) = h.records.values()
    assert rec.clock_state == "synced"


def test_require_synced_clock_option() -> None:
    h = Harness([item("a", 0)], now=T0 - 2, require_synced_clock=True)
    h.feed(c.ClockSync(False))
    h.run_until(T0 + 5)
    assert h.of(c.Play) == [] and h.of(c.Start) == []
    h.feed(c.ClockSync(True))
    h.tick()
    assert len(h.of(c.Play)) == 1


def test_stall_is_detected_retried_from_position_then_error() -> None:
    h = Harness([item("a", 0)], now=T0 - 1, stall_s=15, retries=1, retry_delay_s=10)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 11):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=600)
    h.run_until(h.clock.wall() + 16)  # no progress: a stall
    assert any(isinstance(a, c.Stop) for a in h.log)
    h.run_until(h.clock.wall() + 10)
    retry = h.of(c.Play)[-1]
    assert retry.start_at == pytest.approx(10) and retry.token != token
    h.player("playing", retry.token)
    h.run_until(h.clock.wall() + 16)
    (rec,) = h.records.values()
    assert rec.outcome == "error" and "stalled" in rec.reason
    assert rec.completion == pytest.approx(10 / 600, abs=1e-3)


def test_start_timeout_counts_as_a_failure() -> None:
    h = Harness([item("a", 0)], now=T0 - 1, retries=0, start_timeout_s=20)
    h.run_until(T0 + 21)
    (rec,) = h.records.values()
    assert rec.outcome == "error" and "did not start" in rec.reason


def test_vlc_error_and_unplayable_media() -> None:
    h = Harness([item("a", 0)], now=T0 - 1, retries=0)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    h.player("ended", token, position=0, length=0)  # VLC "played" a file with no content
    (rec,) = h.records.values()
    assert rec.outcome == "error" and "no playable content" in rec.reason


def test_missing_media_at_preroll_is_skipped_with_reason() -> None:
    h = Harness([item("a", 0)], now=T0 - 10)
    h.run_until(T0 - 5)
    token = h.of(c.Preroll)[0].token
    h.feed(c.MediaRejected(token, "missing", "media file a.wav is missing"))
    (rec,) = h.records.values()
    assert rec.outcome == "skipped" and rec.reason.startswith("missing")
    h.run_until(T0 + 60)
    assert len(h.records) == 1 and h.of(c.Play) == [] and h.of(c.Start) == []


def test_higher_priority_preempts_and_lower_priority_waits_its_turn_as_missed() -> None:
    h = Harness(
        [
            item("low", 0, priority=1, slot=60),
            item("high", 600, priority=9, slot=10),
            item("other", 900, priority=1, slot=5),
        ],
        now=T0 - 1,
    )
    h.run_until(T0)
    low = h.of(c.Play)[0].token
    h.player("playing", low)
    for _ in range(600):
        h.clock.advance(1)
        h.player("progress", low, position=h.clock.wall() - T0, length=3600)
        h.tick()
    stopped = [r for r in h.records.values() if r.item_id == "low"][0]
    assert stopped.outcome == "stopped" and "preempted by high" in stopped.reason
    assert h.of(c.Play)[-1].media == "high.wav"
    high = h.of(c.Play)[-1].token
    h.player("playing", high)
    h.run_until(T0 + 901)
    missed = [r for r in h.records.values() if r.item_id == "other"][0]
    assert missed.outcome == "missed" and "overlapped by high" in missed.reason


def test_running_course_is_not_cut_by_a_lower_priority_one_started_later() -> None:
    h = Harness(
        [item("long", 0, priority=5, slot=1), item("next", 120, priority=5, slot=5)], now=T0 - 1
    )
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 181):  # the media runs longer than its 1-minute slot
        h.clock.advance(1)
        h.player("progress", token, position=i, length=600)
    assert h.core.current is not None and h.core.current.token == token
    nxt = [r for r in h.records.values() if r.item_id == "next"][0]
    assert nxt.outcome == "missed" and "still playing" in nxt.reason


def test_duration_cap_ends_the_course_as_completed() -> None:
    h = Harness([item("a", 0, cap=1, slot=None)], now=T0 - 1)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 62):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=3600)
    (rec,) = h.records.values()
    assert rec.outcome == "completed" and "cap" in rec.reason
    assert [a.token for a in h.of(c.Stop)] == [token], "the cap must stop the player"


def test_interrupted_occurrence_resumes_from_its_checkpoint_with_a_new_record() -> None:
    key = "terminal/a/20261201T110000Z"
    history = {key: c.History("interrupted", "old-record", 120.0)}
    h = Harness([item("a", 0, slot=60)], now=T0 + 20 * 60, history=history)  # past the grace
    h.tick()
    (play,) = h.of(c.Play)
    assert play.start_at == 120.0
    (rec,) = h.records.values()
    assert rec.resumed_from == "old-record" and rec.occurrence_key == key


def test_on_demand_play_and_stop_commands() -> None:
    h = Harness([item("a", 3600)], now=T0)
    acts = h.feed(c.PlayCommand("A", None, None, "admin"))
    reply = [a for a in acts if isinstance(a, c.Reply)][0]
    assert reply.ok and reply.data["course_id"] == "A"
    (rec,) = h.records.values()
    assert rec.trigger == "admin" and rec.occurrence_key is None
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    h.clock.advance(30)
    h.player("progress", token, position=30, length=100)
    acts = h.feed(c.StopCommand("admin"))
    assert [a for a in acts if isinstance(a, c.Reply)][0].ok
    rec = h.records[rec.record_id]
    assert rec.outcome == "stopped" and rec.reason == "stopped by admin"
    assert rec.completion == pytest.approx(0.3)
    bad = h.feed(c.PlayCommand("NOPE", None, None, "remote"))
    assert not [a for a in bad if isinstance(a, c.Reply)][0].ok
    bad = h.feed(c.PlayCommand(None, "../etc/passwd", None, "remote"))
    assert "content folder" in [a for a in bad if isinstance(a, c.Reply)][0].message


def test_schedule_change_drops_a_stale_preroll() -> None:
    h = Harness([item("a", 0)], now=T0 - 10)
    h.run_until(T0 - 5)
    token = h.of(c.Preroll)[0].token
    new = parse_schedule(json.dumps({"version": 2, "items": [item("b", 60)]}), "t")
    acts = h.feed(c.ScheduleChanged({"terminal": new}, {"terminal": T0 - 5}))
    assert any(isinstance(a, c.Stop) and a.token == token for a in acts)
    h.run_until(T0 + 61)
    assert [r.item_id for r in h.records.values()] == ["b"]


def test_seq_numbers_are_consecutive_across_record_kinds() -> None:
    h = Harness(
        [item("a", -1200, slot=5), item("b", 0, slot=5)], now=T0 - 1, responsible_since=T0 - 7200
    )
    h.run_until(T0)
    assert sorted(r.seq for r in h.records.values()) == [1, 2]


def test_libvlc_is_released_after_the_configured_idle_time() -> None:
    h = Harness([item("a", 0)], now=T0 - 1, idle_unload_s=30)
    h.run_until(T0)
    token = h.core.current.token
    h.player("playing", token)
    h.player("ended", token, position=10, length=10)
    h.run_until(T0 + 29)
    assert h.of(c.UnloadPlayer) == []
    h.run_until(T0 + 32)
    assert len(h.of(c.UnloadPlayer)) == 1
