"""Commands from the county that the agent must refuse, against a real agent and a real broker.

Every malformed command gets an ``error`` reply on ``cmd/reply``: with its ``id`` when one can be
read, ``id: null`` when the payload cannot be read at all. A remote ``play`` of media that the
player would refuse (a symlink out of the content folder, a missing file) is refused in the reply,
before anything is recorded: the county is told what really happens.
"""

from __future__ import annotations

import json
import os
import time

from agent.cli.county.cmd import send_command
from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule
from tests.mqtt.conftest import COUNTY, TERMINAL, agent_config, county_cfg, db_rows, online

LONG_NAME = "x" * 33


def raw_cases() -> dict[str, tuple[bytes, str | None, str]]:
    """name -> (payload, the id the reply must carry, the error code)."""

    def obj(**kw: object) -> bytes:
        return json.dumps(kw).encode()

    deep = b'{"id":"c-deep","cmd":"ping","args":' + b"[" * 30000 + b"]" * 30000 + b"}"
    return {
        "name over 32 characters": (obj(id="c-long", cmd=LONG_NAME), "c-long", "unknown_command"),
        "name of 2000 characters": (
            obj(id="c-vlong", cmd="p" * 2000),
            "c-vlong",
            "unknown_command",
        ),
        "unknown name": (obj(id="c-unk", cmd="format-disk"), "c-unk", "unknown_command"),
        "bad JSON": (b'{"id": "c-bad", "cmd": ', None, "malformed"),
        "not UTF-8": (b'{"id": "c-utf", "cmd": "ping\xff"}', None, "malformed"),
        "deep JSON": (deep, None, "malformed"),
        "not an object": (b'["c-arr", "ping"]', None, "malformed"),
        "empty": (b"", None, "malformed"),
        "missing id": (obj(cmd="ping"), None, "malformed"),
        "id of the wrong type": (obj(id=17, cmd="ping"), None, "malformed"),
        "id too long": (obj(id="c" * 65, cmd="ping"), None, "malformed"),
        "name of the wrong type": (obj(id="c-type", cmd=["ping"]), "c-type", "malformed"),
        "missing name": (obj(id="c-noname"), "c-noname", "malformed"),
        "args not an object": (obj(id="c-args", cmd="play", args=[1]), "c-args", "malformed"),
        "huge payload": (obj(id="c-huge", cmd="ping", pad="x" * 70000), None, "too_large"),
        "many arguments": (
            obj(id="c-many", cmd="play", args={f"k{i}": i for i in range(3000)}),
            "c-many",
            "bad_args",
        ),
        "arguments to ping": (
            obj(id="c-pingargs", cmd="ping", args={"x": 1}),
            "c-pingargs",
            "bad_args",
        ),
        "priority as text": (
            obj(id="c-prio", cmd="play", args={"course_id": "PH-01", "priority": "high"}),
            "c-prio",
            "bad_args",
        ),
        "terminal of the wrong type": (
            obj(id="c-term", cmd="stop", terminal=5),
            "c-term",
            "malformed",
        ),
    }


def test_every_malformed_command_gets_an_error_reply(tmp_path, broker, spy, agents):
    agents(agent_config(tmp_path, broker)).start()
    online(spy)
    m = county_cfg(broker)
    wrong: dict[str, object] = {}
    for name, (payload, want_id, code) in raw_cases().items():
        reply = send_command(m, county=COUNTY, terminal=TERMINAL, cmd="-", raw=payload, wait=5)
        if reply is None:
            wrong[name] = "no reply"
        elif (reply["status"], reply.get("error"), reply["id"]) != ("error", code, want_id):
            wrong[name] = (reply["status"], reply.get("error"), reply["id"], reply["message"])
        elif not reply["message"]:
            wrong[name] = "no message"
    assert wrong == {}
    # it is still up and answering, and nothing was played
    reply = send_command(m, county=COUNTY, terminal=TERMINAL, cmd="ping", wait=10)
    assert reply is not None and reply["status"] == "ok"
    assert db_rows(tmp_path / "state/agent.db", "SELECT COUNT(*) FROM records") == [(0,)]


def test_remote_play_of_media_the_player_would_refuse_says_so(tmp_path, broker, spy, agents):
    content = tmp_path / "content"
    write_wav(content / "lesson.wav", 30)
    outside = write_wav(tmp_path / "elsewhere" / "secret.wav", 1)
    os.symlink(outside, content / "escape.wav")
    os.symlink(content / "lesson.wav", content / "inside.wav")  # a link that stays inside is fine
    soon = time.time() + 86400
    apply_schedule(
        tmp_path / "state",
        schedule(
            3,
            [
                one_off("a", soon, "escape.wav", course_id="ESC", title="逃逸"),
                one_off("b", soon, "gone.wav", course_id="GONE", title="缺失"),
                one_off("c", soon, "inside.wav", course_id="IN", title="链接"),
            ],
        ),
    )
    agents(agent_config(tmp_path, broker)).start()
    online(spy)
    m = county_cfg(broker)

    def play(cmd_id: str, **args: str) -> dict:
        reply = send_command(
            m, county=COUNTY, terminal=TERMINAL, cmd="play", args=args, cmd_id=cmd_id, wait=10
        )
        assert reply is not None, cmd_id
        return reply

    refused = {
        "c-esc-media": ({"media": "escape.wav"}, "bad_path"),
        "c-esc-course": ({"course_id": "ESC"}, "bad_path"),
        "c-gone-course": ({"course_id": "GONE"}, "missing"),
        "c-gone-media": ({"media": "nothing/here.wav"}, "missing"),
    }
    for cmd_id, (args, reason) in refused.items():
        r = play(cmd_id, **args)
        assert (r["status"], r.get("error")) == ("error", "bad_media"), r
        assert r["data"]["reason"] == reason, r
        assert "nothing was played" in r["message"], r
    records = tmp_path / "state/agent.db"
    assert db_rows(records, "SELECT COUNT(*) FROM records") == [(0,)]
    r = play("c-in", course_id="IN")
    assert r["status"] == "ok", r
    spy.wait(lambda s: s.obj["playing"] is not None, 10, "playing", suffix="heartbeat")
    assert db_rows(records, "SELECT course_id, outcome FROM records") == [("IN", None)]
