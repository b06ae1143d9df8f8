"""``agent.domain.protocol`` stays the one name space for the wire contract after the split into
builders (``protocol``) and the incoming side (``protocol_specs``)."""

from __future__ import annotations

import ast
import inspect

import pytest

from agent.domain import protocol as p
from agent.domain import protocol_specs as specs

# Every public name callers have used as ``p.X``; dropping one breaks a caller.
PUBLIC = [
    "ACK_STATUSES",
    "BOOL",
    "CLOCK",
    "CLOCK_STATES",
    "CMD_ID_RE",
    "COMMANDS",
    "F",
    "HEARTBEAT_BUDGET",
    "HEARTBEAT_CORE_KEYS",
    "ID",
    "ID_RE",
    "INT",
    "KIND_BY_SUFFIX",
    "LAYERS",
    "LIST",
    "MAX_ACK_BYTES",
    "MAX_ACK_RECORDS",
    "MAX_CMD_BYTES",
    "MAX_INCOMING_PACKET",
    "MAX_REASONS",
    "MAX_SCHEDULE_BYTES",
    "NUM",
    "OBJ",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "REPLY_STATUSES",
    "SPECS",
    "STR",
    "TRIGGERS",
    "TS",
    "TS_RE",
    "cmd_reply",
    "command",
    "decode",
    "dumps",
    "heartbeat",
    "record_ack",
    "schedule_ack",
    "state",
    "status",
    "validate",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_on_the_protocol_module(name: str) -> None:
    assert hasattr(p, name)
    assert name in p.__all__


def test_the_incoming_side_is_one_implementation_re_exported() -> None:
    for name in ("validate", "decode", "ProtocolError", "SPECS", "F", "MAX_INCOMING_PACKET"):
        assert getattr(p, name) is getattr(specs, name), name
    with pytest.raises(p.ProtocolError) as err:
        p.decode(b"x" * 11, 10)
    assert isinstance(err.value, specs.ProtocolError) and err.value.code == "too_large"


def test_the_specs_do_not_import_the_builders() -> None:
    tree = ast.parse(inspect.getsource(specs))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "agent.domain.protocol" not in imported


def test_builders_produce_what_the_specs_accept() -> None:
    ts = "2026-11-28T11:30:00.000Z"
    built = {
        "state": p.state(
            ts=ts,
            terminal="t1",
            county="c1",
            online=True,
            session=1,
            boot_id="b",
            agent_version="1.0",
            protocol="5",
            reason="connect",
            clock="synced",
        ),
        "schedule_ack": p.schedule_ack(
            ts=ts,
            terminal="t1",
            county="c1",
            layer="terminal",
            version=3,
            status="applied",
            reasons=[],
            previous_version=2,
            applied={"terminal": 3, "county": None},
            clock="synced",
        ),
        "cmd_reply": p.cmd_reply(
            ts=ts, terminal="t1", cmd_id="a1", cmd="ping", status="ok", message="", clock="synced"
        ),
        "record_ack": p.record_ack(ts=ts, collector="county", records=[("rec-00000001", 1)]),
        "cmd": p.command(cmd_id="a1", cmd="ping", args=None, ts=ts),
    }
    for kind, obj in built.items():
        assert p.validate(kind, obj) == [], kind
