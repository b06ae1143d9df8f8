"""stationctl reads while the agent writes: readers never block the writer, never see half a
commit, and no write is lost.

A writer process saves viewing records the way the runtime does (record + outbox message in one
transaction, WAL, synchronous=FULL). Its busy timeout is 0: a reader that held it up even for a
moment makes its commit fail with "database is locked" at once, instead of merely making it
slower, so the test judges blocking and not the speed of the disk (an SD card commits about 100
times slower than this machine and must pass the same test).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from agent.adapters.sqlite.store import Store
from agent.cli.stationctl import main
from agent.cli.stationctl.common import open_readonly
from tests.helpers import ROOT, write_config
from tests.stationctl.conftest import run_stationctl

# The writer stops when the readers have seen this many different states while it wrote...
STATES_TO_SEE = 25
# ...or after this long, however slow the machine (then the test fails: nothing interleaved).
DEADLINE_SECONDS = 60.0

WRITER = r"""
import json, os, sys, time, uuid
from agent.adapters.sqlite.store import Store
from agent.domain.records import Record, utc_text
store = Store(sys.argv[1])
store.db.execute("PRAGMA busy_timeout=0")  # a blocked commit fails now instead of waiting
stop_file, limit = sys.argv[2], int(sys.argv[3])
n, errors = 0, []
print("started", flush=True)
while not os.path.exists(stop_file) and n < limit and len(errors) < 20:
    now = time.time()
    rec = Record(record_id=str(uuid.uuid4()), seq=n + 1, terminal="t-001", course_id=f"c{n % 7}",
                 title="生猪养殖", media="a.wav", trigger="schedule", clock_state="synced",
                 boot_id="b", planned_start=utc_text(now), started_at=utc_text(now),
                 ended_at=utc_text(now), outcome="completed", completion=1.0)
    try:
        with store.transaction() as conn:
            store.insert_record(rec, conn)
            store.enqueue("record", rec.record_id, "record", rec.to_dict(), conn=conn)
        n += 1
    except Exception as exc:
        errors.append(repr(exc))
store.close()
print(json.dumps({"committed": n, "errors": errors}), flush=True)
"""

# One statement is one read snapshot: the three numbers come from the same instant.
SNAPSHOT = (
    "SELECT (SELECT COUNT(*) FROM records), (SELECT COALESCE(MAX(seq), 0) FROM records),"
    " (SELECT COUNT(*) FROM outbox WHERE kind='record')"
)


def start_writer(db: Path, stop_file: Path, limit: int) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop_file), str(limit)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "started"
    return writer


def finish_writer(writer: subprocess.Popen[str]) -> dict:
    out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    return json.loads(out)


def read_in_process(config: Path, *args: str) -> list[dict]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["-c", str(config), "records", "--json", *args])
    assert code == 0
    return json.loads(buf.getvalue())


def snapshot(db: Path) -> tuple[int, int, int]:
    """Records, highest seq and queued record messages, through stationctl's own read path."""
    store = open_readonly(db)
    try:
        return tuple(store.db.execute(SNAPSHOT).fetchone())
    finally:
        store.close()


def new_store(tmp_path: Path) -> tuple[Path, Path]:
    config = write_config(tmp_path)
    db = tmp_path / "state" / "agent.db"
    Store(db).close()  # the agent has started once: the store exists
    return config, db


def test_a_reader_inside_its_snapshot_does_not_hold_up_the_writer(tmp_path: Path) -> None:
    """A reader mid-query (its read transaction open) while the writer commits five records."""
    _config, db = new_store(tmp_path)
    reader = open_readonly(db)
    try:
        reader.db.execute("BEGIN")
        assert tuple(reader.db.execute(SNAPSHOT).fetchone()) == (0, 0, 0)
        writer = start_writer(db, tmp_path / "no-stop", limit=5)
        result = finish_writer(writer)
        assert result == {"committed": 5, "errors": []}
        # Still inside its snapshot, the reader sees the store as it was, not a part of the news.
        assert tuple(reader.db.execute(SNAPSHOT).fetchone()) == (0, 0, 0)
        reader.db.execute("COMMIT")
        assert tuple(reader.db.execute(SNAPSHOT).fetchone()) == (5, 5, 5)
    finally:
        reader.close()


def test_records_while_the_agent_writes_as_fast_as_it_can(tmp_path: Path) -> None:
    config, db = new_store(tmp_path)
    stop_file = tmp_path / "stop-writing"
    writer = start_writer(db, stop_file, limit=10**9)
    states: set[int] = set()
    last_max, reads = 0, 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while len(states) < STATES_TO_SEE and time.monotonic() < deadline:
            assert writer.poll() is None, "the writer stopped by itself (too many errors?)"
            if reads % 10 == 0:  # now and then the whole command, as the admin runs it
                r = run_stationctl(config, "records", "--json", "--limit", "200", timeout=20)
                assert r.returncode == 0, r.stderr
                batch = json.loads(r.stdout)
            else:
                batch = read_in_process(config, "--limit", "200")
            reads += 1
            seqs = [rec["seq"] for rec in batch]
            if seqs:
                # A consistent snapshot: the newest records, without a gap, never going back.
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                assert seqs[-1] >= last_max
                last_max = seqs[-1]
            count, top, queued = snapshot(db)
            # Never half a commit: every record seen has its outbox message, and no gap in seq.
            assert count == top == queued, (count, top, queued)
            states.add(top)
    finally:
        stop_file.touch()
        if writer.poll() is None:
            try:
                writer.wait(30)
            except subprocess.TimeoutExpired:
                writer.kill()
    result = finish_writer(writer)
    assert result["errors"] == []  # no commit was ever held up by a reader
    assert len(states) >= STATES_TO_SEE, f"reads and writes did not interleave: {sorted(states)}"
    committed = result["committed"]
    everything = read_in_process(config)
    assert [r["seq"] for r in everything] == list(range(1, committed + 1))  # no lost write
    assert snapshot(db) == (committed, committed, committed)
    print(f"\n{committed} records written while stationctl read {reads} times")
