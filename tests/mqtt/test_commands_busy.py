"""A county command that the busy core thread does not take in time is answered ``agent_busy``
and is then *not* executed, neither later nor on a re-delivery: the reply tells the truth.

Real runtime (real core thread, SQLite store, VLC with dummy outputs), the real bridge and
command processor; the core thread is held up by a call that sleeps, queued right after the
command's id was claimed (so the claim itself goes through and the command meets a busy core).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent.adapters.mqtt.bridge import RuntimeBridge
from agent.adapters.mqtt.commands import CommandProcessor
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule, write_config

TIMEOUT = 0.5  # how long the bridge waits for the core thread
STALL = 2.0  # how long the core thread is busy


@pytest.fixture
def running(tmp_path) -> Iterator[Runtime]:
    rt = Runtime(load_config(write_config(tmp_path)))
    write_wav(rt.cfg.content_dir / "lesson.wav", 20)
    apply_schedule(
        rt.cfg.state_dir,
        schedule(3, [one_off("i1", time.time() + 86400, "lesson.wav", course_id="PH-01")]),
    )
    rt.open()
    thread = threading.Thread(target=rt.run, kwargs={"duration": 30}, daemon=True)
    thread.start()
    try:
        yield rt
    finally:
        rt.request_stop()
        thread.join(10)


def stalling_bridge(rt: Runtime) -> RuntimeBridge:
    """A bridge whose core thread gets busy right after each command id is claimed."""
    bridge = RuntimeBridge(rt, timeout=TIMEOUT)
    claim = bridge.command_begin

    def claim_then_stall(cmd_id: str, cmd: str | None) -> Any:
        earlier = claim(cmd_id, cmd)
        rt.call(lambda: time.sleep(STALL), timeout=None)
        return earlier

    bridge.command_begin = claim_then_stall  # type: ignore[method-assign]
    return bridge


def command(cmd_id: str, cmd: str, **args: Any) -> bytes:
    return json.dumps({"id": cmd_id, "cmd": cmd, "args": args}).encode()


def remote_records(rt: Runtime) -> list[Any]:
    return rt.call(lambda: [r for r in rt.store.records() if r.trigger == "remote"], timeout=5)


@pytest.mark.parametrize("cmd,args", [("play", {"course_id": "PH-01"}), ("stop", {})])
def test_a_command_the_busy_core_did_not_take_is_never_run(running, cmd, args, caplog):
    rt = running
    processor = CommandProcessor(stalling_bridge(rt), rt.cfg.terminal)
    if cmd == "stop":  # something must be playing for a stop to change anything
        rt.submit(_play_now(), timeout=5)
    caplog.set_level(logging.INFO, logger="agent")
    t0 = time.monotonic()
    reply = processor.handle(command("c-busy-1", cmd, **args))
    assert (reply["status"], reply.get("error")) == ("error", "agent_busy"), reply
    assert "nothing was done" in reply["message"]
    assert time.monotonic() - t0 < STALL + 3
    time.sleep(1.0)  # the core is free again: a command that was merely late would run now
    if cmd == "play":
        assert remote_records(rt) == []
    else:
        assert rt.call(lambda: rt.core.playing(), timeout=5) is not None
    # the reply is queued for the county, and the id is remembered with it
    rows = rt.call(
        lambda: rt.store.db.execute(
            "SELECT payload FROM outbox WHERE msg_id='reply:c-busy-1'"
        ).fetchall(),
        timeout=5,
    )
    assert [json.loads(r[0])["error"] for r in rows] == ["agent_busy"]
    # a re-delivered copy is not run behind the county's back either
    again = CommandProcessor(RuntimeBridge(rt, timeout=5), rt.cfg.terminal)
    dup = again.handle(command("c-busy-1", cmd, **args))
    assert dup["status"] == "duplicate" and dup["data"]["original"]["error"] == "agent_busy"
    if cmd == "play":
        assert remote_records(rt) == []
    # the reply's clock could not be read from the busy core: said in the log, not swallowed
    assert any("clock state not read" in r.getMessage() for r in caplog.records)


def _play_now() -> Any:
    from agent.domain.core import PlayCommand

    return PlayCommand("PH-01", None, None, trigger="admin")


def test_a_reload_the_busy_core_did_not_take_is_never_run(running, caplog):
    rt = running
    processor = CommandProcessor(stalling_bridge(rt), rt.cfg.terminal)
    caplog.set_level(logging.INFO, logger="agent")
    reply = processor.handle(command("c-reload-1", "reload"))
    assert (reply["status"], reply.get("error")) == ("error", "agent_busy"), reply
    time.sleep(STALL)
    reloads = [r for r in caplog.records if "reload command from the county" in r.getMessage()]
    assert reloads == []
