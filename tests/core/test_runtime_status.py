"""The typed status snapshot: built once by the runtime, the same JSON on the wire as documented
(docs/protocol.md, "status"), read back by stationctl as the same type."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from agent.domain import protocol as p
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from agent.runtime.ports import StatusSection
from agent.runtime.snapshot import add_section
from agent.runtime.status import StatusSnapshot, Upcoming
from tests.core.test_runtime_wakeups import QuietPlayer
from tests.helpers import ROOT, apply_schedule, one_off, schedule, write_config
from tests.stationctl import shapes

DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
ENVELOPE = ("ts", "session", "version", "v")


def _doc_example() -> dict[str, Any]:
    text = re.search(r"<!-- example: status -->\s*```json\n(.*?)\n```", DOC, re.S).group(1)
    return json.loads(text)


class Counters:
    """A named section, the way an adapter adds one."""

    name = "counters"

    def section(self) -> dict[str, Any]:
        return {"seen": 3}


@pytest.fixture
def rt(tmp_path):
    cfg = load_config(write_config(tmp_path))
    start = time.time() + 3600
    apply_schedule(cfg.state_dir, schedule(4, [one_off("later", start, "later.wav")]))
    runtime = Runtime(cfg, player=QuietPlayer())
    runtime.open()
    yield runtime
    runtime.shutdown()


def test_the_snapshot_has_the_documented_fields_in_the_documented_order(rt) -> None:
    add_section(rt.status_providers, Counters())
    snap = rt.status()
    wire = snap.to_dict()
    documented = [k for k in _doc_example() if k not in ENVELOPE and k != "mqtt"]
    assert [k for k in wire if k in documented] == documented
    shapes.check({k: wire[k] for k in shapes.AGENT_STATUS}, shapes.AGENT_STATUS)
    assert wire["counters"] == {"seen": 3} and wire["store_writes"]["held_writes"] == 0
    assert wire == rt.status_snapshot()
    message = p.status(
        ts="2026-11-28T11:30:00.120Z",
        session=1,
        agent_version="0",
        snapshot=wire,
        link={"state": "connected"},
    )
    assert p.validate("status", message) == []


def test_the_snapshot_is_typed(rt) -> None:
    snap = rt.status()
    assert isinstance(snap.upcoming[0], Upcoming)
    first = snap.upcoming[0]
    assert (first.item_id, first.course_id, first.media, first.layer) == (
        "later",
        "later",
        "later.wav",
        "terminal",
    )
    assert snap.summary.playing is None and snap.summary.schedule_versions == {"terminal": 4}
    assert snap.section("store_writes")["held_writes"] == 0
    assert isinstance(Counters(), StatusSection)


def test_stationctl_reads_back_the_same_snapshot(rt) -> None:
    wire = json.loads(json.dumps(rt.status_snapshot()))  # as the control socket sends it
    back = StatusSnapshot.from_dict(wire)
    assert back.to_dict() == wire
    assert back.upcoming == rt.status().upcoming


def test_the_documented_example_reads_as_a_snapshot() -> None:
    example = {k: v for k, v in _doc_example().items() if k not in ENVELOPE}
    snap = StatusSnapshot.from_dict(example)
    assert snap.to_dict() == example
    assert snap.broker.connected is True and snap.broker.configured
    assert snap.upcoming[0].priority == 10


def test_a_failing_section_is_left_out_and_the_rest_goes_out(rt) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("probe exploded")

    rt.status_providers["broken"] = broken
    wire = rt.status_snapshot()
    assert "broken" not in wire and wire["terminal"] == "t-001"


def test_the_heartbeat_summary_is_the_snapshots_first_part(rt) -> None:
    rt.summary_providers["link"] = lambda: {"link": "up", "mode": "telecom"}
    summary = rt.summary()
    assert list(summary) == ["uptime_s", "playing", "schedule_versions", "clock", "outbox", "link"]
    snap = rt.status()
    assert snap.link.state == "up" and snap.link.mode == "telecom"
