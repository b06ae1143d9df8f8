"""Actions are frozen and carry snapshots; record ids come from the injected factory."""

from __future__ import annotations

import dataclasses
import itertools
import typing
import uuid

import pytest

from agent.domain import core as c
from agent.domain.records import Record
from tests.core.test_core import T0, Harness, item


def _saves(h: Harness) -> list[c.SaveRecord]:
    return h.of(c.SaveRecord)


def test_an_emitted_save_keeps_the_record_as_it_was_after_later_events() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    acts = h.run_until(T0)
    (opened,) = [a for a in acts if isinstance(a, c.SaveRecord)]
    assert opened.new and opened.record.outcome is None
    as_emitted = dataclasses.asdict(opened.record)
    token = h.of(c.Play)[0].token
    h.player("playing", token)
    for i in range(1, 31):
        h.clock.advance(1)
        h.player("progress", token, position=i, length=30)
    h.player("ended", token, position=30, length=30)
    assert [s.record.outcome for s in _saves(h)] == [None, None, "completed"]
    assert dataclasses.asdict(opened.record) == as_emitted, "a later event changed a sent action"
    assert opened.record.started_at is None and opened.record.played_seconds == 0.0
    started = _saves(h)[1]
    assert started.record.started_at is not None and started.record.outcome is None


def test_a_held_save_is_not_changed_by_the_session_going_on() -> None:
    """What the runtime buffers while the disk is full must write what was true then."""
    h = Harness([item("a", 0)], now=T0 - 1, checkpoint_s=10)
    h.run_until(T0)
    token = h.of(c.Play)[0].token
    (started,) = [a for a in h.player("playing", token) if isinstance(a, c.SaveRecord)]
    live = h.core.current
    assert live is not None and started.record is not live.record
    h.clock.advance(20)
    h.player("progress", token, position=20, length=600)
    h.feed(c.StopCommand("admin"))
    assert live.record.outcome == "stopped" and live.record.played_seconds > 0
    assert started.record.outcome is None and started.record.played_seconds == 0.0
    assert started.record.rev == 1


def test_a_snapshot_refuses_assignment_and_so_does_the_action() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    h.run_until(T0)
    (save,) = _saves(h)
    with pytest.raises(dataclasses.FrozenInstanceError):
        save.record.outcome = "completed"
    with pytest.raises(dataclasses.FrozenInstanceError):
        del save.record.reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        save.record = save.record  # type: ignore[misc]
    assert save.record.outcome is None


def test_a_snapshot_is_a_record_equal_to_its_source() -> None:
    rec = Record("r-1", 7, "t-001", "A", "Course a", "a.wav", "admin", "synced", "boot-1")
    snap = c.RecordSnapshot.of(rec)
    assert isinstance(snap, Record) and snap is not rec
    assert snap == rec and rec == snap and snap.to_dict() == rec.to_dict()
    assert c.RecordSnapshot.of(snap) is snap
    assert c.SaveRecord(snap, new=True).record is snap
    rec.outcome = "stopped"
    assert snap != rec and snap.outcome is None


def test_a_save_built_from_a_live_record_snapshots_it() -> None:
    rec = Record("r-1", 7, "t-001", "A", "Course a", "a.wav", "admin", "synced", "boot-1")
    save = c.SaveRecord(rec, new=False)
    rec.position = 42.0
    assert save.record.position == 0.0 and isinstance(save.record, c.RecordSnapshot)


def test_every_action_and_event_is_frozen() -> None:
    for cls in typing.get_args(c.Action) + typing.get_args(c.Event):
        assert cls.__dataclass_params__.frozen, cls.__name__


def test_record_ids_and_tokens_come_from_the_injected_factory() -> None:
    counter = itertools.count(1)
    h = Harness(
        [item("a", 0), item("b", 3600)],
        now=T0 - 1,
        new_id=lambda: f"id-{next(counter)}",
    )
    h.run_until(T0)
    (play,) = h.of(c.Play)
    assert play.token == "id-1"
    h.player("playing", play.token)
    h.player("ended", play.token, position=10, length=10)
    h.feed(c.PlayCommand(None, "extra.wav", "Extra", "admin"))
    assert list(h.records) == ["id-1", "id-2"]
    assert h.records["id-2"].trigger == "admin"


def test_the_default_id_is_uuid4_text() -> None:
    h = Harness([item("a", 0)], now=T0 - 1)
    h.run_until(T0)
    (rid,) = h.records
    assert uuid.UUID(rid).version == 4 and str(uuid.UUID(rid)) == rid
    assert h.core.new_id is c.uuid_text
