"""Memory that grows while the disk is full, and the media hash cache, are bounded.

Held writes (a real full tmpfs): at the bound the oldest held alarms go first and are counted;
records are kept, and only past the bound with nothing else left is the oldest record dropped
from memory, written in full to the log first, and counted in the disk_full alarm.
"""

from __future__ import annotations

import hashlib
import logging

from agent.adapters.media_files import HashCache
from agent.domain import core as c
from tests.core.test_store_recovery import (
    alarm_rows,
    fill,
    retry_until_flushed,
    runtime_on,
    skipped_record,
    tmpfs,
)


def test_held_writes_are_bounded_and_records_go_last_and_loudly(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="agent")
    with tmpfs(tmp_path / "state") as state:
        rt = runtime_on(tmp_path, state)
        rt.open()
        rt.held_max = 6
        filler = fill(state)
        try:
            for i in range(4):
                rt._execute([c.Alarm(f"probe_{i}", "raised", "warning", {"i": i})])
            first = [skipped_record(rt) for _ in range(4)]
            assert len(rt.pending_writes) == 6
            held_alarms = [a.name for a in rt.pending_writes if isinstance(a, c.Alarm)]
            assert held_alarms == ["probe_2", "probe_3"]  # the oldest alarms went first
            more = [skipped_record(rt) for _ in range(4)]
            held = [a.record.record_id for a in rt.pending_writes if isinstance(a, c.SaveRecord)]
            assert len(rt.pending_writes) == 6 and held == first[2:] + more
            assert rt.held_dropped == {"alarm": 4, "record": 2}
            logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            for rid in first[:2]:  # a dropped record is in the journal, in full
                assert any(rid in m and '"outcome": "skipped"' in m for m in logged), rid
            filler.unlink()
            retry_until_flushed(rt)
            stored = {r.record_id for r in rt.store.records()}
        finally:
            rt.store.close()
        assert stored == set(first[2:] + more)
        (detail,) = [d for n, cleared, d in alarm_rows(rt.cfg.db_path) if n == "disk_full"]
        assert detail["held_dropped"] == {"alarm": 4, "record": 2}


def test_the_hash_cache_is_bounded_least_recently_used_first(tmp_path) -> None:
    files = []
    for i in range(5):
        path = tmp_path / f"m{i}.bin"
        path.write_bytes(f"media {i}".encode() * 1000)
        files.append(path)
    cache = HashCache(max_entries=3)
    for path in files[:3]:
        cache.sha256(path)
    cache.sha256(files[0])  # used again: the most recent now
    for path in files[3:]:
        assert cache.sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(cache) == 3 and cache.evictions == 2
    assert cache.cached(files[0]) and not cache.cached(files[1]) and not cache.cached(files[2])
    assert cache.sha256(files[1]) == hashlib.sha256(files[1].read_bytes()).hexdigest()
    assert len(HashCache()) == 0 and HashCache().max_entries > 0
