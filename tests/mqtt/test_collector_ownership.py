"""At the county collector a record belongs to the terminal whose topic it came on: no terminal
can overwrite, or add deliveries to, another terminal's record or event. What does not belong is
kept in ``rejected`` with the reason (nothing is lost), never stored over another terminal's row,
and never acknowledged to the sender as stored."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.cli.county.client import CountyClient
from agent.cli.county.collector import CollectorDb
from agent.domain import protocol as p
from agent.domain import topics as t
from tests.mqtt.conftest import COUNTY, county_cfg, db_rows, start_collector, wait_rows
from tests.mqtt.test_link import record

OWNER, OTHER = "t-002", "t-001"


def owned(rev: int = 1, rid: str | None = None) -> dict:
    return {**record(5, rev=rev, rid=rid), "terminal": OWNER, "attendance": 12}


def forged(original: dict, rev: int) -> dict:
    """The owner's record, re-labelled as the other terminal's and with a higher rev."""
    return {**original, "terminal": OTHER, "rev": rev, "attendance": 999}


def row(db: CollectorDb, rid: str) -> tuple:
    return db.db.execute(
        "SELECT terminal, rev, attendance, deliveries, payload FROM records WHERE record_id=?",
        (rid,),
    ).fetchone()


def topic(terminal: str, suffix: str = t.RECORD) -> str:
    return t.topic(COUNTY, terminal, suffix)


def test_a_terminal_cannot_overwrite_another_terminals_record(tmp_path: Path) -> None:
    db = CollectorDb(tmp_path / "county.db")
    mine = owned()
    db.store([("record", OWNER, topic(OWNER), mine)])
    kept = row(db, mine["record_id"])
    result = db.store(
        [
            ("record", OTHER, topic(OTHER), forged(mine, rev=5)),
            ("record", OTHER, topic(OTHER), forged(mine, rev=1)),
            # the payload names the owner, the topic is the other's (the topic decides)
            ("record", OTHER, topic(OTHER), {**mine, "rev": 6}),
        ]
    )
    assert row(db, mine["record_id"]) == kept
    assert result["acks"] == {} and result["new"] == 0
    rejected = db.db.execute("SELECT topic, reason FROM rejected ORDER BY id").fetchall()
    assert [r[0] for r in rejected] == [topic(OTHER)] * 3
    assert all(OWNER in r[1] for r in rejected[:2]), rejected
    assert "topic" in rejected[2][1], rejected
    # the owner's own newer revision still replaces it
    newer = {**mine, "rev": 2, "attendance": 13}
    result = db.store([("record", OWNER, topic(OWNER), newer)])
    assert row(db, mine["record_id"])[:4] == (OWNER, 2, 13, 2)
    assert result["acks"] == {(COUNTY, OWNER): [(mine["record_id"], 2)]}


def test_a_terminal_cannot_take_over_another_terminals_event(tmp_path: Path) -> None:
    db = CollectorDb(tmp_path / "county.db")
    event = {
        "msg_id": "ev-1",
        "ts": "2026-11-28T11:30:00.000Z",
        "terminal": OWNER,
        "county": COUNTY,
        "type": "alarm",
        "name": "disk_low",
        "state": "raised",
        "severity": "warning",
    }
    db.store([("event", OWNER, topic(OWNER, t.EVENT), event)])
    db.store([("event", OTHER, topic(OTHER, t.EVENT), {**event, "terminal": OTHER})])
    assert db.db.execute("SELECT terminal, deliveries FROM events").fetchall() == [(OWNER, 1)]
    (reason,) = db.db.execute("SELECT reason FROM rejected").fetchone()
    assert OWNER in reason


def test_end_to_end_a_forged_copy_is_rejected_and_not_acked(tmp_path, broker, spy) -> None:
    coll_db = tmp_path / "county.db"
    collector = start_collector(broker, coll_db, tmp_path / "collector.log")
    cc = CountyClient(county_cfg(broker), "two-terminals")
    try:
        time.sleep(1.0)  # the collector subscribes
        cc.connect()
        mine = owned()
        cc.publish(topic(OWNER), p.dumps(mine))
        wait_rows(coll_db, "SELECT * FROM records", 1, 15)
        t0 = time.monotonic()
        cc.publish(topic(OTHER), p.dumps(forged(mine, rev=9)))
        wait_rows(coll_db, "SELECT * FROM rejected", 1, 15)
        time.sleep(0.5)
    finally:
        cc.close()
        collector.terminate()
        collector.wait(10)
    rows = db_rows(coll_db, "SELECT terminal, rev, attendance, payload FROM records")
    assert [r[:3] for r in rows] == [(OWNER, 1, 12)]
    assert json.loads(rows[0][3])["terminal"] == OWNER
    ((where, reason),) = db_rows(coll_db, "SELECT topic, reason FROM rejected")
    assert where == topic(OTHER) and OWNER in reason
    acks = [s for s in spy.messages("record/ack", terminal=OTHER) if s.at >= t0]
    assert acks == []
