"""The collector's storage rules, run the same way against SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from agent.cli.county.storage import StorageError, open_storage
from agent.cli.county.storage import schema as s
from agent.domain import protocol as p
from tests.county.conftest import (
    COUNTY,
    at,
    event,
    heartbeat,
    item,
    link_summary,
    record,
    state,
)

NOW = at("2026-10-10 12:00")


def one(storage, sql: str, *args):
    rows = storage.rows(sql, args)
    assert len(rows) == 1, rows
    return rows[0]


def test_builders_follow_the_protocol() -> None:
    assert p.validate("record", record("t-1", 1, start="2026-10-03 19:30")) == []
    assert p.validate("record", record("t-1", 2, start=None, outcome="missed")) == []
    assert p.validate("event", event("t-1", "disk_low", "raised", "2026-10-03 10:00")) == []
    assert p.validate("heartbeat", heartbeat("t-1", 1)) == []
    assert p.validate("state", state("t-1", "online", 1)) == []
    assert p.validate("link_summary", link_summary("t-1", "2026-10-03 10:00")) == []


def test_schema_is_created_and_versioned(storage, db_url) -> None:
    assert storage.schema_version() == s.VERSION
    storage.close()
    again = open_storage(db_url)  # opening again migrates nothing and keeps the version
    try:
        assert again.schema_version() == s.VERSION
        assert again.count() == 0
    finally:
        again.close()


def test_records_highest_rev_wins_and_duplicates_are_counted(storage) -> None:
    r1 = record("t-1", 1, start="2026-10-03 19:30", attendance=None)
    first = storage.store([item("record", r1)], "c-a", now=NOW)
    assert (first.new, first.duplicates) == (1, 0)
    assert dict(first.acks) == {(COUNTY, "t-1"): [(r1["record_id"], 1)]}

    r2 = {**r1, "rev": 2, "attendance": 14}
    again = storage.store([item("record", r2), item("record", r1)], "c-b", now=NOW + 5)
    assert (again.new, again.duplicates) == (0, 2)
    # both are acknowledged (the terminal forgets what it has, up to the rev it was told)
    assert sorted(again.acks[(COUNTY, "t-1")]) == [(r1["record_id"], 1), (r1["record_id"], 2)]
    row = one(storage, "SELECT rev, attendance, deliveries, stored_by FROM records")
    assert row == {"rev": 2, "attendance": 14, "deliveries": 3, "stored_by": "c-b"}

    storage.store([item("record", {**r1, "rev": 1, "attendance": 1})], "c-a", now=NOW + 9)
    row = one(storage, "SELECT rev, attendance, deliveries, stored_by FROM records")
    assert row == {"rev": 2, "attendance": 14, "deliveries": 4, "stored_by": "c-b"}
    assert storage.count() == 1


def test_times_are_stored_in_one_form(storage) -> None:
    r = record("t-1", 1, start="2026-10-03 19:30")
    r["started_at"] = "2026-10-03T19:30:00+08:00"
    storage.store([item("record", r)], "c", now=NOW)
    row = one(storage, "SELECT started_at, planned_start FROM records")
    assert row["started_at"] == "2026-10-03T11:30:00.000Z" == row["planned_start"]


def test_another_terminals_record_or_event_is_rejected_not_acked(storage) -> None:
    mine = record("t-1", 1, start="2026-10-03 19:30", attendance=5)
    ev = event("t-1", "disk_low", "raised", "2026-10-03 10:00")
    storage.store([item("record", mine), item("event", ev)], "c", now=NOW)
    forged = {**mine, "terminal": "t-2", "rev": 9, "attendance": 999}
    out = storage.store(
        [item("record", forged), item("event", {**ev, "terminal": "t-2"})], "c", now=NOW
    )
    assert dict(out.acks) == {} and len(out.rejected) == 2
    assert all("belongs to terminal t-1" in why for _, why in out.rejected)
    row = one(storage, "SELECT terminal, rev, attendance FROM records")
    assert row == {"terminal": "t-1", "rev": 1, "attendance": 5}
    assert one(storage, "SELECT COUNT(*) AS n FROM rejected")["n"] == 2


def test_events_links_states_heartbeats_and_content(storage) -> None:
    ev = event("t-1", "content_missing", "raised", "2026-10-03 10:00", files=["a.mp4"])
    link = link_summary("t-1", "2026-10-03 10:00", availability=0.98)
    batch = [
        item("event", ev),
        item("event", ev),
        item("link_summary", link),
        item("link_summary", link),
        item("state", state("t-1", "online", 4)),
        item("state", state("t-1", "online", 4)),  # the retained copy again
        item("state", state("t-1", "offline", 4, "will")),
        item("heartbeat", heartbeat("t-1", 1, content={"needed": 3, "ready": 2})),
        item("heartbeat", heartbeat("t-1", 2)),
    ]
    storage.store(batch, "c", now=NOW)
    storage.store([item("heartbeat", heartbeat("t-1", 3))], "c", now=NOW + 600)
    storage.store([item("heartbeat", heartbeat("t-1", 4))], "c", now=NOW + 3600)

    assert one(storage, "SELECT deliveries, detail FROM events") == {
        "deliveries": 2,
        "detail": '{"files": ["a.mp4"]}',
    }
    row = one(storage, "SELECT availability, deliveries, period_start FROM link_summaries")
    assert row == {"availability": 0.98, "deliveries": 2, "period_start": link["period_start"]}
    states = storage.rows("SELECT session, state, reason FROM state_changes ORDER BY state")
    assert states == [
        {"session": 4, "state": "offline", "reason": "will"},
        {"session": 4, "state": "online", "reason": "connect"},
    ]
    hours = storage.rows(
        "SELECT hour, beats, first_seen, last_seen FROM heartbeat_hours ORDER BY hour"
    )
    assert [(h["hour"], h["beats"]) for h in hours] == [
        ("2026-10-10T04", 3),
        ("2026-10-10T05", 1),
    ]
    assert hours[0]["first_seen"] < hours[0]["last_seen"]
    content = one(storage, "SELECT readiness FROM content")
    assert content["readiness"] == '{"needed": 3, "ready": 2}'


def test_content_keeps_the_newest_status(storage) -> None:
    def status(ts: str, files: list) -> dict:
        return {
            "ts": ts,
            "terminal": "t-1",
            "county": COUNTY,
            "content": {"readiness": {"needed": len(files)}, "files": files, "files_total": 1},
        }

    new = status("2026-10-05T00:00:00.000Z", [{"path": "b.mp4", "status": "ready"}])
    old = status("2026-10-04T00:00:00.000Z", [{"path": "a.mp4", "status": "missing"}])
    storage.store([item("status", new)], "c", now=NOW)
    storage.store([item("status", old)], "c", now=NOW + 1)
    row = one(storage, "SELECT files, status_ts FROM content")
    assert "b.mp4" in row["files"] and row["status_ts"] == "2026-10-05T00:00:00.000Z"


def test_both_backends_store_the_same_rows(tmp_path: Path, pg_url: str) -> None:
    batch = [
        item("record", record("t-1", 1, start="2026-10-03 19:30", attendance=3)),
        item("record", record("t-2", 1, start=None, outcome="missed", reason="power off")),
        item("event", event("t-1", "disk_low", "raised", "2026-10-03 10:00", free_mb=90)),
        item("link_summary", link_summary("t-2", "2026-10-03 10:00")),
        item("state", state("t-1", "online", 2)),
        item("heartbeat", heartbeat("t-2", 1)),
    ]
    dumps = []
    for url in (str(tmp_path / "a.db"), pg_url):
        st = open_storage(url)
        try:
            st.store(batch, "c", now=NOW)
            st.store(batch[:2], "c", now=NOW + 1)
            dump = {}
            for table, key in [
                ("records", "record_id"),
                ("events", "msg_id"),
                ("link_summaries", "msg_id"),
                ("state_changes", "terminal"),
                ("heartbeat_hours", "terminal"),
            ]:
                dump[table] = st.rows(f"SELECT * FROM {table} ORDER BY {key}")
            dumps.append(dump)
        finally:
            st.close()
    assert dumps[0] == dumps[1]


def test_two_writers_on_the_same_keys(pg_url: str) -> None:
    """Two collectors storing overlapping batches at once: no error, every record once."""
    recs = [record(f"t-{i % 7}", i, start="2026-10-03 19:30") for i in range(300)]
    errors: list[BaseException] = []

    def write(order: list) -> None:
        st = open_storage(pg_url)
        try:
            for i in range(0, len(order), 25):
                st.store([item("record", r) for r in order[i : i + 25]], "c", now=NOW)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            st.close()

    threads = [
        threading.Thread(target=write, args=(recs,)),
        threading.Thread(target=write, args=(recs[::-1],)),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    st = open_storage(pg_url)
    try:
        assert st.count() == 300
        assert one(st, "SELECT SUM(deliveries) AS n FROM records")["n"] == 600
    finally:
        st.close()


def test_a_database_of_the_first_collector_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    for sql in s.statements(
        1, {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "blob": "BLOB"}
    ):
        con.execute(sql)
    con.execute(
        "INSERT INTO records(record_id, rev, terminal, county, payload, first_received_at, "
        "received_at) VALUES('r-000001', 1, 't-1', 'c-01', '{}', 'x', 'x')"
    )
    con.commit()
    con.close()
    st = open_storage(path)
    try:
        assert st.schema_version() == s.VERSION
        assert one(st, "SELECT record_id, ts, stored_by FROM records") == {
            "record_id": "r-000001",
            "ts": "x",
            "stored_by": None,
        }
    finally:
        st.close()


def test_a_newer_schema_or_a_bad_address_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    open_storage(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="newer than this countyctl"):
        open_storage(path)
    with pytest.raises(StorageError, match="postgresql://"):
        open_storage("mysql://x/y")
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL"):
        open_storage("postgresql://nobody@127.0.0.1:1/none")
