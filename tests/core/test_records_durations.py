"""Media lengths learned from earlier plays survive a restart and shape overlap planning."""

from __future__ import annotations

import time

from agent.adapters.sqlite.store import Store
from agent.domain.records import Record
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from tests.helpers import apply_schedule, one_off, schedule, write_config

LEARNED_S = 600.0  # the course's real length, learned when it last played
GAP_S = 900.0  # the next item starts 15 min later: free if the course lasts 10 min, not if 60


def _completed(seq: int, course_id: str, length: float) -> Record:
    return Record(
        record_id=f"done-{seq}",
        seq=seq,
        terminal="t-001",
        course_id=course_id,
        title="Earlier play",
        media="a.wav",
        trigger="schedule",
        clock_state="synced",
        boot_id="earlier-boot",
        outcome="completed",
        media_duration=length,
        completion=1.0,
    )


def test_a_restarted_runtime_plans_overlaps_with_the_learned_length(tmp_path) -> None:
    cfg = load_config(write_config(tmp_path, playback={"default_slot_minutes": 60}))
    start = time.time() + 120
    apply_schedule(
        cfg.state_dir,
        schedule(
            1,
            [
                one_off("a", start, "a.wav", course_id="A"),
                one_off("b", start + GAP_S, "b.wav", course_id="B"),
            ],
        ),
    )
    store = Store(cfg.db_path)
    store.insert_record(_completed(1, "A", 1800.0))  # an older, longer file
    store.insert_record(_completed(2, "A", LEARNED_S))  # the file as it is now
    store.close()
    rt = Runtime(cfg)
    rt.open()
    try:
        assert rt.core is not None
        upcoming = {o.item.id: o for o in rt.core.upcoming(5)}
        assert set(upcoming) == {"a", "b"}, "b was planned as overlapping a 60-minute slot"
        assert upcoming["a"].end - upcoming["a"].start == LEARNED_S
    finally:
        rt.store.close()
