"""Power cuts: the agent is SIGKILLed mid-course again and again; no record is lost or doubled."""

from __future__ import annotations

import random
import signal
import sqlite3
import time

from agent.runtime.config import load_config
from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule, start_agent, wait_for, write_config

KILLS = 50


def _rows(db) -> list[tuple]:
    """The records as a reader sees them; nothing yet while the agent is still creating the file."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return con.execute(
            "SELECT record_id, seq, outcome, started_at, resumed_from, occurrence_key FROM records ORDER BY seq"
        ).fetchall()
    except sqlite3.OperationalError as exc:  # the schema is created just after the file
        if "no such table" in str(exc):
            return []
        raise
    finally:
        con.close()


def test_sigkill_mid_course_many_times(tmp_path) -> None:
    cfg_path = write_config(tmp_path, playback={"checkpoint_seconds": 5})
    cfg = load_config(cfg_path)
    write_wav(cfg.content_dir / "long.wav", 600.0)
    apply_schedule(
        cfg.state_dir, schedule(1, [one_off("long", time.time() - 5, "long.wav", slot_minutes=60)])
    )
    rng = random.Random(2026)
    log = tmp_path / "agent.log"
    seen_open: list[str] = []
    for i in range(KILLS):
        proc = start_agent(cfg_path, log=log)
        try:

            def opened(n=i):
                rows = _rows(cfg.db_path) if cfg.db_path.exists() else []
                if len(rows) < n + 1:
                    return None
                last = rows[-1]
                if last[2] is not None:
                    return None
                # half of the runs die once VLC is really playing, the others at any moment after
                # the record was written
                return last if (n % 2 == 0 or last[3]) else None

            row = wait_for(opened, 20, 0.02, f"open record in run {i}")
            seen_open.append(row[0])
            time.sleep(rng.uniform(0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    # one more start closes the last one, then a clean stop
    proc = start_agent(cfg_path, log=log)
    wait_for(lambda: len(_rows(cfg.db_path)) == KILLS + 1, 20, 0.05, "final run's record")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0

    rows = _rows(cfg.db_path)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == KILLS + 1
    assert ids[:KILLS] == seen_open  # every record we saw open is still there, once
    assert [r[1] for r in rows] == list(range(1, KILLS + 2))  # seq has no gap, no repeat
    assert {r[2] for r in rows} == {"interrupted"}
    assert len({r[5] for r in rows}) == 1  # all are the same occurrence...
    assert [r[4] for r in rows[1:]] == ids[:-1]  # ...each resuming the one before

    con = sqlite3.connect(cfg.db_path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        out = con.execute(
            "SELECT msg_id, COUNT(*) FROM outbox WHERE kind='record' GROUP BY msg_id"
        ).fetchall()
    finally:
        con.close()
    assert sorted(m for m, _ in out) == sorted(ids) and {n for _, n in out} == {1}
