"""The control socket against a real runtime (core thread, SQLite store, VLC with dummy outputs):
hostile lines are answered and the connection goes on; a play the player would refuse is refused
before anything is recorded; a request the busy core did not take in time is answered
``agent_busy`` and is then never carried out; failures on the side are logged, not swallowed."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.adapters.control_socket import ControlServer
from agent.cli.stationctl.client import request
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule
from tests.stationctl.fixture import build_station

CORE_TIMEOUT = 0.5
STALL = 2.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Runtime, Path]]:
    cfg = build_station(tmp_path)
    content = tmp_path / "content"
    os.symlink(write_wav(tmp_path / "elsewhere" / "secret.wav", 1), content / "escape.wav")
    later = time.time() + 86400
    doc = schedule(
        8,
        [
            one_off("s1", later, "pig-1.wav", course_id="pig-1", title="生猪养殖技术（一）"),
            one_off("s2", later, "escape.wav", course_id="esc", title="逃逸"),
            one_off("s3", later, "missing.wav", course_id="tea-2", title="茶叶种植"),
        ],
    )
    assert apply_schedule(tmp_path / "state", doc).status == "applied"
    rt = Runtime(load_config(cfg))
    rt.open()
    thread = threading.Thread(target=rt.run, kwargs={"duration": 60}, daemon=True)
    thread.start()
    server = ControlServer(rt, core_timeout=CORE_TIMEOUT)
    server.start()
    try:
        yield rt, server.path
    finally:
        server.stop()
        rt.request_stop()
        thread.join(10)


def exchange(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    """Send each line on one connection and read the answers (one per line, or fewer)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(str(path))
    s.sendall(b"".join(line + b"\n" for line in lines))
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return [json.loads(line) for line in data.splitlines()]


def records(rt: Runtime) -> list[Any]:
    return rt.call(lambda: rt.store.records(), timeout=5)


def stall(rt: Runtime) -> None:
    """Keep the core thread busy for STALL seconds (from now)."""
    rt.call(lambda: time.sleep(STALL), timeout=None)
    time.sleep(0.05)


def test_every_bad_line_gets_an_answer_and_the_connection_goes_on(served) -> None:
    rt, path = served
    before = len(records(rt))
    bad = [
        b"[" * 30000 + b"]" * 30000,
        b'{"a":' * 10000 + b"1" + b"}" * 10000,
        b'{"cmd":"ping","id":' + b"[" * 30000 + b"]" * 30000 + b"}",
        b'{"cmd": "ping\xff"}',
        b"[]",
        b"null",
        b'"ping"',
        b"",
        b'{"cmd": 5}',
        b'{"cmd": "ping", "id": [1]}',
        b'{"cmd": "ping", "id": "' + b"i" * 500 + b'"}',
        b'{"cmd": "' + b"x" * 5000 + b'"}',
        b'{"cmd": "attendance", "count": NaN}',
        b'{"cmd": "ping", "cmd": "stop"}',
        b'{"cmd": "play", "course": ["pig-1"]}',
    ]
    answers = exchange(path, [*bad, b'{"cmd": "ping", "id": 7}'])
    assert len(answers) == len(bad) + 1, answers
    for line, answer in zip(bad, answers, strict=False):
        assert answer["ok"] is False and answer["error"], (line[:40], answer)
        assert len(answer["message"]) < 300, (line[:40], answer)
    assert answers[-1]["ok"] and answers[-1]["message"] == "pong" and answers[-1]["id"] == 7
    assert len(records(rt)) == before  # nothing played, nothing stopped


def test_a_play_the_player_would_refuse_is_refused_before_anything_runs(served) -> None:
    rt, path = served
    before = len(records(rt))
    refused = {
        "media outside": ({"media": "escape.wav"}, "bad_path"),
        "course outside": ({"course": "esc"}, "bad_path"),
        "course missing": ({"course": "tea-2"}, "missing"),
        "media missing": ({"media": "no/such.wav"}, "missing"),
        "media absolute": ({"media": "/etc/passwd"}, "bad_path"),
    }
    for name, (args, reason) in refused.items():
        answer = request(path, "play", **args)
        assert (answer["ok"], answer.get("error")) == (False, "bad_media"), (name, answer)
        assert answer["data"]["reason"] == reason, (name, answer)
        assert "nothing was played" in answer["message"], (name, answer)
    assert len(records(rt)) == before
    answer = request(path, "play", course="pig-1")
    assert answer["ok"], answer
    assert len(records(rt)) == before + 1


def test_a_play_the_busy_core_did_not_take_is_never_carried_out(served) -> None:
    rt, path = served
    before = len(records(rt))
    stall(rt)
    answer = request(path, "play", course="pig-1")
    assert (answer["ok"], answer["error"]) == (False, "agent_busy"), answer
    assert "nothing was done" in answer["message"]
    time.sleep(STALL)  # the core is free again: a request that was merely late would run now
    assert len(records(rt)) == before
    assert rt.call(lambda: rt.core.playing(), timeout=5) is None


def test_attendance_the_busy_core_did_not_take_is_never_entered(served) -> None:
    rt, path = served
    rid = "00000000-0000-0000-0000-000000000002"
    was = rt.call(lambda: rt.store.get_record(rid), timeout=5)
    stall(rt)
    answer = request(path, "attendance", count=31, record="2")
    assert (answer["ok"], answer["error"]) == (False, "agent_busy"), answer
    assert "nothing was done" in answer["message"]
    time.sleep(STALL)
    now = rt.call(lambda: rt.store.get_record(rid), timeout=5)
    assert (now.attendance, now.rev) == (was.attendance, was.rev)
    # and with the core free it is entered at once
    answer = request(path, "attendance", count=31, record="2")
    assert answer["ok"] and answer["data"]["attendance"] == 31, answer


def test_a_failing_listener_is_logged_and_attendance_still_entered(served, caplog) -> None:
    rt, path = served

    def broken(kind: str, _payload: Any) -> None:
        raise RuntimeError(f"listener broke on {kind}")

    rt.listeners.append(broken)
    caplog.set_level(logging.WARNING, logger="agent")
    answer = request(path, "attendance", count=12, record="2")
    assert answer["ok"], answer
    logged = [r for r in caplog.records if r.exc_info and "listener broke" in str(r.exc_info[1])]
    assert logged, [r.getMessage() for r in caplog.records]
