"""A record or alarm that cannot be written is held and retried, never only logged.

Real SQLite files: a trigger that refuses inserts into ``records`` stands for a write that fails
(the store is otherwise healthy), a second process holds the write lock, and an update names a
record id that is not in the table.
"""

from __future__ import annotations

import logging
import sqlite3

from agent.adapters.sqlite.store import Store
from agent.domain import core as c
from agent.domain.records import Record
from tests.core.test_store_recovery import (
    WRITER_LOCK,
    alarm_rows,
    hold_lock,
    retry_until_flushed,
    runtime_on,
    skipped_record,
)

REFUSE = "CREATE TRIGGER refuse_records BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'records refused'); END"


def _opened(tmp_path):  # noqa: ANN202
    rt = runtime_on(tmp_path, tmp_path / "state")
    rt.open()
    return rt


def _sql(db, statement: str) -> None:  # noqa: ANN001
    con = sqlite3.connect(db)
    try:
        con.execute(statement)
        con.commit()
    finally:
        con.close()


def _record(rid: str, seq: int) -> Record:
    return Record(
        record_id=rid,
        seq=seq,
        terminal="t-001",
        course_id="X",
        title="Course X",
        media="x.wav",
        trigger="admin",
        clock_state="synced",
        boot_id="b",
        outcome="completed",
    )


def test_a_record_write_that_fails_is_held_alarmed_and_written_later(tmp_path) -> None:
    rt = _opened(tmp_path)
    db = rt.cfg.db_path
    try:
        _sql(db, REFUSE)
        rid = skipped_record(rt)
        held = [a for a in rt.pending_writes if isinstance(a, c.SaveRecord)]
        assert [(a.record.record_id, a.new) for a in held] == [(rid, True), (rid, False)]
        assert held[-1].record.outcome == "skipped"
        rt._retry_pending()  # the alarm goes in while the record still cannot
        open_alarms = [(n, d) for n, cleared, d in alarm_rows(db) if not cleared]
        assert [n for n, _ in open_alarms] == ["record_write_failed"]
        assert (
            open_alarms[0][1]["record_id"] == rid
            and "records refused" in open_alarms[0][1]["error"]
        )
        _sql(db, "DROP TRIGGER refuse_records")
        retry_until_flushed(rt)
        rec = rt.store.get_record(rid)
        assert rec is not None and rec.outcome == "skipped"
        assert rt.store.outbox_depth("record") == 1
    finally:
        rt.store.close()
    assert [(n, cleared) for n, cleared, _ in alarm_rows(db)] == [("record_write_failed", True)]


def test_a_lock_held_past_the_busy_timeout_holds_records_and_alarms(tmp_path) -> None:
    rt = _opened(tmp_path)
    db = rt.cfg.db_path
    try:
        rt.store.db.execute("PRAGMA busy_timeout=100")
        holder = hold_lock(db, WRITER_LOCK, 2.0)
        try:
            rid = skipped_record(rt)
            rt._execute([c.Alarm("display_disconnected", "raised", "warning", {"port": "HDMI-1"})])
            kinds = [type(a).__name__ for a in rt.pending_writes]
            assert kinds == ["SaveRecord", "SaveRecord", "Alarm"]  # open, final, alarm
        finally:
            holder.wait(10)
        retry_until_flushed(rt)
        assert rt.store.get_record(rid).outcome == "skipped"
    finally:
        rt.store.close()
    rows = alarm_rows(db)
    assert ("display_disconnected", False) in [(n, cl) for n, cl, _ in rows]
    assert [(cl, d["reason"]) for n, cl, d in rows if n == "store_unwritable"] == [(True, "locked")]


def test_an_update_that_matches_no_row_is_a_bug_alarm_and_the_record_is_kept(tmp_path) -> None:
    rt = _opened(tmp_path)
    db = rt.cfg.db_path
    try:
        ghost = _record("ghost-1", rt.core.next_seq)
        rt._execute([c.SaveRecord(ghost, new=False)])
        kept = rt.store.get_record("ghost-1")
        assert kept is not None and kept.outcome == "completed"  # nothing lost
        assert not rt.pending_writes
        errors = [r[0] for r in rt.store.db.execute("SELECT kind FROM events WHERE level='error'")]
    finally:
        rt.store.close()
    bugs = [d for n, _, d in alarm_rows(db) if n == "record_write_bug"]
    assert bugs and bugs[0]["record_id"] == "ghost-1"
    assert "record_write_bug" in errors


def test_a_checkpoint_that_matches_no_row_is_a_bug_alarm(tmp_path) -> None:
    rt = _opened(tmp_path)
    db = rt.cfg.db_path
    try:
        rt._execute([c.Checkpoint("no-such-record", 12.0, 12.0, 0.5)])
    finally:
        rt.store.close()
    bugs = [d for n, _, d in alarm_rows(db) if n == "record_write_bug"]
    assert bugs and bugs[0]["record_id"] == "no-such-record"


def test_record_writes_report_the_rows_they_touched(tmp_path) -> None:
    s = Store(tmp_path / "agent.db")
    try:
        rec = _record("r-1", 1)
        assert s.insert_record(rec) == 1
        rec.title = "Renamed"
        assert s.update_record(rec) == 1
        assert s.update_record(_record("absent", 2)) == 0
        assert s.checkpoint_record("r-1", 1.0, 1.0, 0.1) == 1
        assert s.checkpoint_record("absent", 1.0, 1.0, 0.1) == 0
    finally:
        s.close()


def test_records_still_held_at_exit_go_to_the_journal_in_full(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="agent")
    rt = _opened(tmp_path)
    try:
        _sql(rt.cfg.db_path, REFUSE)
        rid = skipped_record(rt)
        rt._flush_held_at_exit()
    finally:
        rt.store.close()
    logged = [r.getMessage() for r in caplog.records if "not in the store" in r.getMessage()]
    assert len(logged) == 1 and rid in logged[0] and '"outcome": "skipped"' in logged[0]
