"""Hostile schedule documents over a real broker to a real agent: each is answered ``rejected``
within a couple of seconds, with no version it did not have, while the heartbeats keep coming;
and the agent's core thread never parses a document from outside."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from agent.adapters.mqtt.bridge import RuntimeBridge
from agent.cli.county.client import CountyClient
from agent.domain import topics as t
from agent.domain.document import parse_json
from agent.runtime.config import load_config
from agent.runtime.documents import parse_yaml
from agent.runtime.loop import Runtime
from tests.helpers import schedule, write_config
from tests.mqtt.conftest import COUNTY, TERMINAL, agent_config, county_cfg, online

SCHED = t.topic(COUNTY, TERMINAL, t.SCHEDULE)
DEEP = 100_000

HOSTILE = {
    "yaml nested 100,000 deep": (b"[" * DEEP + b"]" * DEEP, "nest"),
    "yaml block nested 100,000 deep": (b"- " * DEEP + b"x\n", "nest"),
    "json nested 100,000 deep": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nest"),
    "alias bomb": (
        b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nversion: 11\nitems: *c\n",
        "aliases",
    ),
    "huge flat yaml list": (b"version: 12\nitems:\n" + b"- 1\n" * 250_000, "more than"),
    "huge flat json list": (b'{"version": 13, "items": [' + b"1," * 450_000 + b"1]}", "more than"),
    "version 2**63, cut short": (b'{"version": 9223372036854775808, "items": [', "invalid JSON"),
}


def weekly(version: int) -> bytes:
    item = {
        "id": "w1",
        "weekly": {"days": ["mon"], "time": "19:30"},
        "course": {"id": "PH-01", "title": "党史", "media": "lesson.wav"},
    }
    return json.dumps(schedule(version, [item])).encode()


def test_hostile_schedules_are_rejected_fast_and_heartbeats_go_on(tmp_path, broker, spy, agents):
    agents(agent_config(tmp_path, broker, heartbeat_seconds=1)).start()
    online(spy)
    cc = CountyClient(county_cfg(broker), "hostile-pusher")
    cc.connect()
    try:
        t0 = time.monotonic()
        cc.publish(SCHED, weekly(10))
        ack = spy.wait(lambda s: s.at > t0, 10, "good ack", suffix="schedule/ack").obj
        assert (ack["status"], ack["version"]) == ("applied", 10)
        began = time.monotonic()
        for name, (payload, needle) in HOSTILE.items():
            t0 = time.monotonic()
            cc.publish(SCHED, payload)
            seen = spy.wait(lambda s, t0=t0: s.at > t0, 10, f"{name} ack", suffix="schedule/ack")
            ack = seen.obj
            assert seen.at - t0 < 2.5, (name, seen.at - t0)
            assert ack["status"] == "rejected", (name, ack)
            assert ack["version"] is None, (name, ack)  # never a guessed version
            assert any(needle in r for r in ack["reasons"]), (name, ack["reasons"])
            assert ack["applied"]["terminal"] == 10, (name, ack)
        ended = time.monotonic()
    finally:
        cc.close()
    beats = [s.at for s in spy.messages("heartbeat", TERMINAL) if began - 1.5 <= s.at <= ended]
    gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
    assert beats and max(gaps, default=0) < 2.5, gaps
    assert beats[-1] > ended - 2.5


def test_the_core_thread_never_parses_a_document_from_outside(tmp_path) -> None:
    """Every parse of a document is watched (a profile hook on the threads started here): the
    MQTT document is parsed on the link's thread, the core thread only stores and plans."""
    cfg = load_config(write_config(tmp_path))
    rt = Runtime(cfg)
    rt.open()
    watched = {parse_yaml.__code__, parse_json.__code__}
    parses: list[tuple[str, Any]] = []

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code in watched:
            parses.append((threading.current_thread().name, frame.f_locals.get("source")))

    threading.setprofile(profile)
    try:
        core = threading.Thread(target=rt.run, kwargs={"duration": 20}, name="core", daemon=True)
        core.start()
        bridge = RuntimeBridge(rt)
        outcomes: list[Any] = []

        def link() -> None:
            for version in (5, 6):
                outcomes.append(
                    bridge.apply_schedule(
                        weekly(version), "terminal", "mqtt:sched", False, lambda out: {}
                    )
                )
            outcomes.append(
                bridge.apply_schedule(b"[" * 200, "terminal", "mqtt:bad", False, lambda out: {})
            )

        worker = threading.Thread(target=link, name="mqtt-link")
        worker.start()
        worker.join(20)
    finally:
        threading.setprofile(None)
        rt.request_stop()
        core.join(10)
    outside = [p for p in parses if str(p[1]).startswith("mqtt:")]
    assert {name for name, _ in outside} == {"mqtt-link"}, parses
    assert not [p for p in parses if p[0] == "core"], parses
    assert [(o.status, o.version) for o in outcomes] == [
        ("applied", 5),
        ("applied", 6),
        ("rejected", None),
    ]
