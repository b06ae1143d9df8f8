"""Opening the store under faults: only real corruption moves a store aside.

Real files throughout: a second process holding the database lock, a full tmpfs, a tmpfs
remounted read-only, garbage bytes and a damaged page. In every case that is not corruption the
unsent outbox and the record sequence survive.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.adapters.sqlite.store import Store
from agent.domain import core as c
from agent.domain.records import Record
from agent.runtime.boot import boot_id
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from tests.helpers import tmpfs, wait_for, write_config

# -- real faults: a tmpfs, a full disk, a lock held by another process ---------------------------


def remount(mnt: Path, mode: str) -> None:
    r = subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], capture_output=True, text=True)
    assert r.returncode == 0, f"remount {mode} of {mnt} failed: {r.stderr}"


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * chunk)
    return filler


HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
con.executescript(sys.argv[2])
print("held", flush=True)
time.sleep(float(sys.argv[3]))
con.execute("COMMIT")
con.close()
"""


def hold_lock(db: Path, script: str, seconds: float) -> subprocess.Popen[str]:
    """Another process that takes the database lock with ``script`` and keeps it ``seconds``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), script, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "held", (
        f"the lock holder did not start: {proc.stderr.read() if proc.stderr else ''}"
    )
    return proc


WRITER_LOCK = "BEGIN IMMEDIATE; INSERT INTO kv VALUES('holder', '1');"
EXCLUSIVE_LOCK = (
    "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; INSERT INTO kv VALUES('holder', '1');"
)


def seed(db: Path, records: int = 3) -> None:
    """A healthy store: ``records`` completed records and the last one unsent in the outbox."""
    s = Store(db)
    for seq in range(1, records + 1):
        s.insert_record(
            Record(
                record_id=f"old-{seq}",
                seq=seq,
                terminal="t-001",
                course_id="OLD",
                title="Old course",
                media="old.wav",
                trigger="schedule",
                clock_state="synced",
                boot_id="earlier-boot",
                outcome="completed",
                media_duration=600.0,
            )
        )
    s.enqueue("record", f"old-{records}", "record", {"record_id": f"old-{records}"})
    s.close()


def assert_intact(db: Path, records: int = 3) -> None:
    """The store at ``db`` is the original one: its records, its unsent outbox, its sequence."""
    s = Store(db, readonly=True)
    try:
        assert [r.record_id for r in s.records()][:records] == [
            f"old-{i}" for i in range(1, records + 1)
        ]
        unsent = [r[0] for r in s.db.execute("SELECT msg_id FROM outbox WHERE kind='record'")]
        assert f"old-{records}" in unsent
    finally:
        s.close()


def moved_aside(folder: Path) -> list[str]:
    return sorted(
        p.name
        for p in folder.iterdir()
        if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))
    )


def runtime_on(tmp_path: Path, state_dir: Path) -> Runtime:
    cfg = load_config(write_config(tmp_path, state_dir=str(state_dir)))
    return Runtime(cfg)


def skipped_record(rt: Runtime) -> str:
    """One on-demand record that ends ``skipped`` (its media is missing), as the core makes it."""
    assert rt.core is not None
    rt._execute(rt.core.handle(c.PlayCommand(None, "missing.wav", "Missing course", "admin")))
    cur = rt.core.current
    assert cur is not None
    rid = cur.record.record_id
    rt._execute(rt.core.handle(c.MediaRejected(cur.token, "missing", "media file is missing")))
    return rid


def alarm_rows(db: Path) -> list[tuple[str, bool, dict]]:
    s = Store(db, readonly=True)
    try:
        rows = s.db.execute("SELECT name, cleared_at IS NOT NULL, detail FROM alarms ORDER BY id")
        return [(name, bool(cleared), json.loads(detail or "{}")) for name, cleared, detail in rows]
    finally:
        s.close()


def retry_until_flushed(rt: Runtime, timeout: float = 10.0) -> None:
    def flushed() -> bool:
        rt._retry_pending()
        return not rt.pending_writes and not rt.write_trouble

    wait_for(flushed, timeout, 0.2, "the held writes to reach the store")


# -- a lock is waited for, never taken for corruption --------------------------------------------


def test_a_writer_holding_the_lock_past_the_busy_timeout_does_not_move_the_store(tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    rt = runtime_on(tmp_path, state)
    seed(rt.cfg.db_path)
    holder = hold_lock(rt.cfg.db_path, WRITER_LOCK, 6.5)
    try:
        rt.open()  # the first write waits for the lock and is held when it does not come
    finally:
        holder.wait(20)
    try:
        assert moved_aside(state) == [] and rt.corrupt_store_moved is None
        assert rt.core is not None and rt.core.next_seq == 4
        retry_until_flushed(rt)
        rid = skipped_record(rt)
        assert rt.store is not None and rt.store.get_record(rid).seq == 4
    finally:
        rt.store.close()
    assert_intact(rt.cfg.db_path)
    names = [(n, cleared, d.get("reason")) for n, cleared, d in alarm_rows(rt.cfg.db_path)]
    assert ("store_unwritable", True, "locked") in names


def test_a_lock_that_is_released_is_waited_for_with_retries(tmp_path) -> None:
    db = tmp_path / "agent.db"
    seed(db)
    holder = hold_lock(db, EXCLUSIVE_LOCK, 2.0)
    started = time.monotonic()
    try:
        store, moved = Store.open_or_recover(db, timeout=0.3)  # several short waits, then in
        store.close()
    finally:
        holder.wait(10)
    assert moved is None and moved_aside(tmp_path) == []
    assert time.monotonic() - started >= 1.5  # it did wait for the holder
    assert_intact(db)


def test_a_lock_that_never_ends_is_a_clear_error_and_the_store_stays(tmp_path, monkeypatch) -> None:
    db = tmp_path / "agent.db"
    seed(db)
    monkeypatch.setattr(Store, "lock_wait_s", 1.0, raising=False)
    holder = hold_lock(db, EXCLUSIVE_LOCK, 30.0)
    try:
        with pytest.raises(Exception) as err:
            Store.open_or_recover(db)
    finally:
        holder.kill()
        holder.wait(10)
    assert type(err.value).__name__ == "StoreLocked"
    text = str(err.value)
    assert str(db) in text and "locked" in text and str(holder.pid) in text  # names the holder
    assert moved_aside(tmp_path) == []
    assert_intact(db)


# -- a full disk or a read-only file system keeps the store; the agent plays on --------------------


def test_a_full_disk_keeps_the_store_and_holds_records_until_space_returns(tmp_path) -> None:
    with tmpfs(tmp_path / "state") as state:
        rt = runtime_on(tmp_path, state)
        seed(rt.cfg.db_path)
        filler = fill(state)
        rt.open()
        try:
            assert moved_aside(state) == [] and rt.corrupt_store_moved is None
            assert rt.core is not None and rt.core.next_seq == 4  # seq continues
            assert rt.disk_full_since is not None
            rid = skipped_record(rt)
            held = [a for a in rt.pending_writes if isinstance(a, c.SaveRecord)]
            assert (
                held and held[-1].record.record_id == rid and held[-1].record.outcome == "skipped"
            )
            filler.unlink()
            retry_until_flushed(rt)
            assert rt.disk_full_since is None
            rec = rt.store.get_record(rid)
            assert rec is not None and rec.seq == 4 and rec.outcome == "skipped"
            # back to the normal shared mode: another reader gets in while the agent has it open
            other = sqlite3.connect(f"file:{rt.cfg.db_path}?mode=ro", uri=True, timeout=1)
            unsent = [r[0] for r in other.execute("SELECT msg_id FROM outbox WHERE kind='record'")]
            other.close()
            assert "old-3" in unsent and rid in unsent
        finally:
            rt.store.close()
        assert_intact(rt.cfg.db_path)
        assert ("disk_full", True) in [(n, cl) for n, cl, _ in alarm_rows(rt.cfg.db_path)]


def test_a_read_only_file_system_keeps_the_store_and_holds_records(tmp_path) -> None:
    with tmpfs(tmp_path / "state") as state:
        rt = runtime_on(tmp_path, state)
        seed(rt.cfg.db_path)
        s = Store(rt.cfg.db_path)  # a course was playing when the power went
        playing = Record(
            record_id="cut-4",
            seq=4,
            terminal="t-001",
            course_id="CUT",
            title="Cut course",
            media="cut.wav",
            trigger="schedule",
            clock_state="synced",
            boot_id="earlier-boot",
            occurrence_key="terminal/cut/20261201T110000Z",
            position=42.0,
        )
        s.insert_record(playing)
        s.close()
        remount(state, "ro")
        rt.open()
        try:
            assert moved_aside(state) == [] and rt.corrupt_store_moved is None
            assert rt.core is not None and rt.core.next_seq == 5
            assert "store_unwritable" in rt.write_trouble
            (closed,) = [a for a in rt.pending_writes if isinstance(a, c.SaveRecord)]
            assert closed.record.record_id == "cut-4" and closed.record.outcome == "interrupted"
            assert rt.core.history[playing.occurrence_key].outcome == "interrupted"  # resumable
            rid = skipped_record(rt)
            assert any(
                isinstance(a, c.SaveRecord) and a.record.record_id == rid for a in rt.pending_writes
            )
            remount(state, "rw")
            retry_until_flushed(rt)
            rec = rt.store.get_record(rid)
            assert rec is not None and rec.seq == 5 and rec.outcome == "skipped"
            assert rt.store.get_record("cut-4").outcome == "interrupted"
            assert rt.store.outbox_depth("record") == 3  # old-3, cut-4 and the new one
        finally:
            rt.store.close()
        assert_intact(rt.cfg.db_path)
        rows = alarm_rows(rt.cfg.db_path)
        assert [(n, cl) for n, cl, _ in rows] == [("store_unwritable", True)]
        assert rows[0][2]["reason"] == "read-only"


# -- real corruption is moved aside, once per boot --------------------------------------------------


def test_garbage_is_moved_aside_and_the_boot_is_marked(tmp_path) -> None:
    db = tmp_path / "agent.db"
    db.write_bytes(b"this is not a database at all" * 500)
    store, moved = Store.open_or_recover(db)
    try:
        assert moved is not None and moved.exists() and store.integrity_check() == "ok"
    finally:
        store.close()
    marker = json.loads((tmp_path / "store-moved-aside.json").read_text())
    assert marker["boot_id"] == boot_id() and marker["moved_to"] == moved.name


def test_a_damaged_page_is_moved_aside(tmp_path) -> None:
    db = tmp_path / "agent.db"
    seed(db, records=400)  # several pages of records
    page = 4096
    assert db.stat().st_size > 8 * page
    with open(db, "r+b") as fh:
        fh.seek(5 * page)
        fh.write(os.urandom(page))
    store, moved = Store.open_or_recover(db)
    try:
        assert moved is not None and moved.exists()
        assert store.integrity_check() == "ok" and store.next_record_seq() == 1
    finally:
        store.close()


def test_a_second_corruption_in_the_same_boot_is_refused(tmp_path) -> None:
    db = tmp_path / "agent.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    store, first = Store.open_or_recover(db)  # this boot
    store.close()
    assert first is not None
    damaged_again = b"SQLite format 3\x00" + os.urandom(8192)
    db.write_bytes(damaged_again)
    with pytest.raises(Exception) as err:
        Store.open_or_recover(db)
    assert type(err.value).__name__ == "StoreRefused"
    text = str(err.value)
    assert str(db) in text and first.name in text and "store-moved-aside.json" in text
    assert db.read_bytes() == damaged_again  # left where it is for a person to look at
    assert moved_aside(tmp_path) == [first.name]
    # the next boot may move it aside again (one per boot), and so may a person clearing the marker
    store, second = Store.open_or_recover(db, boot="another-boot")
    store.close()
    assert second is not None and second != first
    db.write_bytes(damaged_again)
    (tmp_path / "store-moved-aside.json").unlink()  # a person looked and cleared the marker
    store, third = Store.open_or_recover(db, boot="another-boot")
    store.close()
    assert third is not None and len(moved_aside(tmp_path)) == 3
