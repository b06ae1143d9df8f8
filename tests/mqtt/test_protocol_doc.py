"""docs/protocol.md is the contract: its JSON examples must pass the code's validators, every
message kind must have an example, every topic must be in its table, and the defaults it quotes
must be the code's."""

from __future__ import annotations

import base64
import dataclasses
import re

from agent.adapters.manifest_files import parse_manifest
from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.schedule_files import parse_schedule
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.document import loads_strict_json
from tests.helpers import ROOT

DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
ROOT_EXAMPLE = re.compile(r"<!-- example-root: (\S+) (\S+) -->")
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)\n```", re.S)


def examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(DOC)


def test_every_example_passes_the_validators():
    found = examples()
    assert len(found) >= 12
    for kind, text in found:
        obj = loads_strict_json(text, f"example {kind}")
        if kind == "schedule":
            parse_schedule(text, "docs example")
            continue
        if kind == "manifest":
            parse_manifest(text, "docs example")
            continue
        if kind == "signed":
            check_signed_example(text)
            continue
        assert p.validate(kind, obj) == [], (kind, text[:80])
        if kind == "heartbeat":
            assert len(p.dumps(obj)) < p.HEARTBEAT_BUDGET


def check_signed_example(text: str) -> None:
    """The envelope example verifies, under the root the document names, for its terminal; and
    its payload is a valid schedule. One changed byte of it does not verify."""
    from agent.adapters.ed25519 import verify
    from agent.domain.trust import TrustContext, TrustRejected, parse_envelope, verify_envelope

    root_id, root_b64 = ROOT_EXAMPLE.search(DOC).groups()
    ctx = TrustContext("c-01", "t-001", {root_id: base64.b64decode(root_b64)}, now=1_780_000_000.0)
    env = parse_envelope(text.encode(), 10**6)
    verified = verify_envelope(env, "schedule", ctx, verify)
    parse_schedule(verified.payload, "docs example payload")
    tampered = parse_envelope(text.replace("19:30", "19:31").encode(), 10**6)
    try:
        verify_envelope(tampered, "schedule", ctx, verify)
    except TrustRejected as exc:
        assert exc.code == "bad_signature"
    else:
        raise AssertionError("a changed payload verified")


def test_every_message_kind_has_an_example():
    kinds = {k for k, _ in examples()}
    assert set(p.SPECS) <= kinds, set(p.SPECS) - kinds
    assert "schedule" in kinds
    assert "manifest" in kinds
    assert "signed" in kinds


def test_every_topic_is_in_the_table():
    table = DOC.split("## 2. Topics", 1)[1].split("## 3.", 1)[0]
    for suffix in t.SUFFIXES:
        assert f"| `{suffix}` |" in table, suffix
    assert "`rde/v1/{county}/all/schedule`" in table
    assert "`rde/v1/{county}/all/library`" in table
    assert "`rde/v1/{county}/all/trust`" in table
    for name, value in (("PREFIX", t.PREFIX), ("ALL", t.ALL)):
        assert value in DOC, name


def test_quoted_defaults_are_the_codes():
    d = {f.name: f.default for f in dataclasses.fields(MqttConfig)}
    quoted = {
        "inflight_window": f"`inflight_window` (default {d['inflight_window']}",
        "ack_window": f"`ack_window` (default {d['ack_window']})",
        "ack_timeout_seconds": f"`ack_timeout_seconds` (default {d['ack_timeout_seconds']:.0f})",
        "outbox_alarm_messages": f"`outbox_alarm_messages` (default {d['outbox_alarm_messages']})",
        "outbox_alarm_free_mb": f"`outbox_alarm_free_mb` (default {d['outbox_alarm_free_mb']:.0f})",
        "heartbeat_seconds": f"every `heartbeat_seconds` (default {d['heartbeat_seconds']:.0f})",
        "backoff": f"defaults {d['backoff_min_seconds']:.0f} s and {d['backoff_max_seconds']:.0f} s",
    }
    for name, text in quoted.items():
        assert text in DOC, (name, text)
    assert f"latest {2000}" in DOC  # executed command ids kept
    from agent.adapters.sqlite.commands import COMMANDS_KEPT

    assert COMMANDS_KEPT == 2000
    for cmd in p.COMMANDS:
        assert f"`{cmd}`" in DOC


def test_the_acl_quoted_is_the_one_the_county_command_writes():
    shipped = (ROOT / "config" / "mosquitto" / "acl.example").read_text(encoding="utf-8")
    quoted = [ln for ln in DOC.splitlines() if ln.startswith("pattern ")]
    assert quoted and set(quoted) == {
        ln for ln in shipped.splitlines() if ln.startswith("pattern ")
    }
