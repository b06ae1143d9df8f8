"""The outbox queries the MQTT link runs through the store's ``outbox`` view, and the command
ledger through ``commands``: a real SQLite file, no link, no runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.adapters.sqlite import commands as ledger_mod
from agent.adapters.sqlite.store import Store
from agent.domain.outbox import OTHER, RECORDS
from agent.runtime import ports
from tests.helpers import a_record


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state/agent.db")
    yield s
    s.close()


def _protocol_members(proto: type) -> set[str]:
    return {n for n in vars(proto) if not n.startswith("_")}


def test_the_store_offers_every_member_of_the_ports_the_link_holds_it_by(store: Store) -> None:
    for name in _protocol_members(ports.LinkStore):
        assert hasattr(store, name), name
    for view, proto in (
        (store.outbox, ports.OutboxQueue),
        (store.commands, ports.CommandLedger),
        (store.alarms, ports.AlarmLog),
    ):
        for name in _protocol_members(proto):
            assert callable(getattr(view, name)), (proto.__name__, name)


def test_fetch_keeps_the_two_streams_apart_in_id_order(store: Store) -> None:
    store.enqueue("record", "r-1", "record", {"rev": 1})
    store.enqueue("event", "e-1", "event", {"x": 1})
    store.enqueue("record", "r-2", "record", {"rev": 3})
    store.enqueue("reply", "p-1", "cmd/reply", {"ok": True}, retain=True)
    records = store.outbox.fetch(RECORDS, 0, 10)
    others = store.outbox.fetch(OTHER, 0, 10)
    assert [r.msg_id for r in records] == ["r-1", "r-2"]
    assert [r.rev for r in records] == [1, 3]
    assert [r.msg_id for r in others] == ["e-1", "p-1"]
    assert [r.rev for r in others] == [None, None]
    assert others[1].retain is True and others[0].retain is False
    assert [r.msg_id for r in store.outbox.fetch(RECORDS, records[0].id, 10)] == ["r-2"]
    assert len(store.outbox.fetch(OTHER, 0, 1)) == 1


def test_fetch_ids_returns_only_rows_still_waiting(store: Store) -> None:
    for i in range(3):
        store.enqueue("event", f"e-{i}", "event", {"i": i})
    ids = [r.id for r in store.outbox.fetch(OTHER, 0, 10)]
    store.outbox.confirm([ids[1]], [], [])
    assert [r.id for r in store.outbox.fetch_ids(ids[::-1])] == [ids[0], ids[2]]
    assert store.outbox.fetch_ids([]) == []


def test_confirm_deletes_by_row_and_by_record_ack_but_keeps_a_newer_revision(
    store: Store,
) -> None:
    store.enqueue("record", "r-1", "record", {"rev": 1})
    store.enqueue("record", "r-2", "record", {"rev": 2})
    store.enqueue("event", "e-1", "event", {})
    rows = {r.msg_id: r for r in store.outbox.fetch(RECORDS, 0, 10)}
    event = store.outbox.fetch(OTHER, 0, 10)[0]
    # r-2 is at rev 2: an ack for rev 1 must not remove it; r-1's ack for rev 1 does.
    deleted = store.outbox.confirm([event.id], [("r-1", 1), ("r-2", 1)], [rows["r-2"].id])
    assert deleted == 2
    left = store.outbox.fetch(RECORDS, 0, 10)
    assert [r.msg_id for r in left] == ["r-2"]
    attempts = store.db.execute("SELECT attempts FROM outbox WHERE msg_id='r-2'").fetchone()[0]
    assert attempts == 1
    assert store.outbox.confirm([], [], []) == 0


def test_confirm_handles_more_ids_than_one_statement_takes(store: Store) -> None:
    for i in range(1200):
        store.enqueue("event", f"e-{i}", "event", {})
    ids = [r.id for r in store.outbox.fetch(OTHER, 0, 2000)]
    assert store.outbox.confirm(ids, [], []) == 1200
    assert store.outbox_depth() == 0


def test_last_id_moves_with_every_enqueue_even_after_deletes(store: Store) -> None:
    assert store.outbox.last_id() == 0
    store.enqueue("event", "e-1", "event", {})
    first = store.outbox.last_id()
    store.outbox.confirm([first], [], [])
    store.enqueue("event", "e-2", "event", {})
    assert store.outbox.last_id() == first + 1


def test_the_command_ledger_runs_an_id_once_and_keeps_its_reply(store: Store) -> None:
    assert store.commands.begin("c-1", "ping") is None
    with store.transaction() as conn:
        store.commands.finish("c-1", "done", {"ok": True}, conn)
        store.commands.finish(None, "done", {"ok": True}, conn)  # anonymous: nothing to note
    again = store.commands.begin("c-1", "ping")
    assert again is not None
    assert again["cmd"] == "ping" and again["status"] == "done"
    assert again["reply"] == {"ok": True}


def test_the_command_ledger_forgets_the_oldest_ids_beyond_its_bound(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_mod, "COMMANDS_KEPT", 3)
    for i in range(6):
        store.commands.begin(f"c-{i}", "ping")
    kept = [r[0] for r in store.db.execute("SELECT id FROM mqtt_commands ORDER BY rowid")]
    assert kept == ["c-3", "c-4", "c-5"]
    assert store.commands.begin("c-0", "ping") is None  # forgotten: it would run again


def test_restart_queries_give_latest_durations_and_recent_history(store: Store) -> None:
    store.insert_record(
        a_record(1, course_id="a", media_duration=100.0, planned_start="2026-01-01T08:00:00.000Z")
    )
    store.insert_record(
        a_record(
            2,
            course_id="a",
            media_duration=90.0,
            occurrence_key="k-2",
            outcome="completed",
            position=90.0,
            planned_start="2026-01-02T08:00:00.000Z",
        )
    )
    store.insert_record(a_record(3, course_id="b", media_duration=0.0, occurrence_key="k-3"))
    assert store.latest_durations() == {"a": 90.0}
    assert store.occurrence_history("2026-01-02T00:00:00.000Z") == [
        ("k-2", "completed", "rec-0002", 90.0)
    ]
