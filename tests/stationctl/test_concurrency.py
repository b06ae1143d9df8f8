"""stationctl reads while the agent writes: no error, no lock-up, no lost write.

A writer process saves viewing records the way the runtime does (record + outbox message in one
transaction, WAL, synchronous=FULL) as fast as it can, and times every commit. Meanwhile
``stationctl records`` runs in a loop, as its own process and in this one.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from agent.stationctl import main
from tests.helpers import ROOT, write_config
from tests.stationctl.conftest import run_stationctl

WRITE_SECONDS = 3.0

WRITER = r"""
import json, sys, time, uuid
from agent.store import Record, Store, utc_text
store = Store(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
n, worst, errors = 0, 0.0, []
while time.monotonic() < deadline:
    n += 1
    now = time.time()
    rec = Record(record_id=str(uuid.uuid4()), seq=n, terminal="t-001", course_id=f"c{n % 7}",
                 title="生猪养殖", media="a.wav", trigger="schedule", clock_state="synced",
                 boot_id="b", planned_start=utc_text(now), started_at=utc_text(now),
                 ended_at=utc_text(now), outcome="completed", completion=1.0)
    t0 = time.monotonic()
    try:
        with store.transaction() as conn:
            store.insert_record(rec, conn)
            store.enqueue("record", rec.record_id, "record", rec.to_dict(), conn=conn)
    except Exception as exc:
        errors.append(repr(exc))
        n -= 1
    worst = max(worst, time.monotonic() - t0)
store.close()
print(json.dumps({"committed": n, "worst_commit_s": worst, "errors": errors}))
"""


def read_in_process(config: Path, *args: str) -> list[dict]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["-c", str(config), "records", "--json", *args])
    assert code == 0
    return json.loads(buf.getvalue())


def test_records_while_the_agent_writes_as_fast_as_it_can(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    db = tmp_path / "state" / "agent.db"
    from agent.store import Store

    Store(db).close()  # the agent has started once: the store exists
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(WRITE_SECONDS)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last_max, reads, slowest = 0, 0, 0.0
    try:
        while writer.poll() is None:
            t0 = time.monotonic()
            if reads % 10 == 0:  # now and then the whole command, as the admin runs it
                r = run_stationctl(config, "records", "--json", "--limit", "200", timeout=20)
                assert r.returncode == 0, r.stderr
                batch = json.loads(r.stdout)
            else:
                batch = read_in_process(config, "--limit", "200")
            slowest = max(slowest, time.monotonic() - t0)
            reads += 1
            seqs = [rec["seq"] for rec in batch]
            if seqs:
                # A consistent snapshot: the newest records, without a gap, never going back.
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
                assert seqs[-1] >= last_max
                last_max = seqs[-1]
        out, err = writer.communicate(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, err
    result = json.loads(out)
    assert result["errors"] == []
    committed = result["committed"]
    assert committed > 500 and reads > 10
    assert result["worst_commit_s"] < 2.0  # readers never held the writer up for long
    assert slowest < 10.0  # and never locked up themselves
    everything = read_in_process(config)
    assert [r["seq"] for r in everything] == list(range(1, committed + 1))  # no lost write
    print(
        f"\n{committed} records written in {WRITE_SECONDS} s while stationctl read {reads} "
        f"times; slowest read {slowest * 1000:.0f} ms, "
        f"slowest commit {result['worst_commit_s'] * 1000:.1f} ms"
    )
