"""The pure verification rules: the clock rule for terminals without an RTC, the exact-bytes
pitfalls of carrying a payload as JSON text, the modes, and the tools' key-file hygiene."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from agent.adapters.ed25519 import verify as ed_verify
from agent.cli.county.client import ToolError
from agent.cli.county.keys import load_private
from agent.domain.trust import (
    TrustContext,
    TrustRejected,
    parse_envelope,
    parse_time,
    verify_envelope,
)
from agent.runtime.trust import TrustGate
from tests.trust.pki import COUNTY, TERMINAL, make_pki, schedule_bytes

DAY = 86400.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def ctx(pki, **kw) -> TrustContext:
    roots = {"prov-root-1": pki.root.public()}
    return TrustContext(COUNTY, TERMINAL, roots, **{"now": time.time(), **kw})


def check(pki, data: bytes, **kw):
    return verify_envelope(parse_envelope(data, 10**7), "schedule", ctx(pki, **kw), ed_verify)


def test_the_clock_rule_for_terminals_without_a_clock(pki) -> None:
    data = pki.sign(schedule_bytes(1))
    cert = json.loads(data)["cert"]
    not_before, expires = parse_time(cert["not_before"]), parse_time(cert["expires"])
    # Offline for weeks, clock far behind and not synchronised: the certificate still holds.
    assert check(pki, data, now=not_before - 40 * DAY, lkg=None, synced=False).key_id == "c-01-k1"
    # The same clock, synchronised, is believed: not yet valid.
    with pytest.raises(TrustRejected) as exc:
        check(pki, data, now=not_before - 40 * DAY, synced=True)
    assert exc.value.code == "not_yet_valid"
    # A clock reset to 1970 cannot revive an expired certificate: the LKG is later.
    with pytest.raises(TrustRejected) as exc:
        check(pki, data, now=0.0, lkg=expires + 2 * DAY)
    assert exc.value.code == "expired"
    # Within the slack, and past it.
    assert check(pki, data, now=expires + 3600, slack_s=2 * 3600)
    with pytest.raises(TrustRejected):
        check(pki, data, now=expires + 3 * 3600, slack_s=2 * 3600)


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\r\nitems: []\r\n# CRLF kept\r\n",
        '{"version": 1, "items": [], "description": "远程教育 \\u2028 \\"quoted\\" \\\\"}',
        'version: 1\nitems: []\ndescription: "tab\there, bell \x07, emoji 📺"\n',
        "\ufeffversion: 1\nitems: []\n",
    ],
)
def test_the_payload_bytes_survive_the_envelope_exactly(pki, text: str) -> None:
    payload = text.encode("utf-8")
    data = pki.sign(payload)
    assert check(pki, data).payload == payload
    # Re-encoded by another JSON writer (ASCII escapes, other spacing): the same bytes verify.
    again = json.dumps(json.loads(data), ensure_ascii=True, indent=3).encode()
    assert check(pki, again).payload == payload


def test_a_lone_surrogate_or_a_duplicate_key_is_refused(pki) -> None:
    obj = json.loads(pki.sign(schedule_bytes(1)))
    raw = json.dumps(obj)[:-1] + ', "payload": "x"}'
    with pytest.raises(TrustRejected, match="duplicate"):
        parse_envelope(raw.encode(), 10**6)
    obj["payload"] = "\ud800"
    with pytest.raises(TrustRejected, match="Unicode"):
        parse_envelope(json.dumps(obj).encode(), 10**6)


def test_modes(pki, tmp_path: Path) -> None:
    def gate(mode: str) -> TrustGate:
        return TrustGate(mode, pki.roots_dir, tmp_path, COUNTY, TERMINAL)

    plain, bad = schedule_bytes(1), pki.sign(schedule_bytes(2), key="unknown_root")
    with pytest.raises(TrustRejected):
        gate("required").open(plain, "schedule")
    assert gate("optional").open(plain, "schedule").verified is None
    with pytest.raises(TrustRejected):
        gate("optional").open(bad, "schedule")
    assert gate("off").open(bad, "schedule").payload == schedule_bytes(2)
    # Off still never takes a trust update on faith, nor a document of the wrong kind.
    with pytest.raises(TrustRejected):
        gate("off").open(pki.sign(schedule_bytes(3), kind="command", to=TERMINAL), "schedule")
    assert gate("off").read_trust(pki.sign(b"{}", kind="trust")).rejected is not None


def test_private_keys_are_0600_and_refused_when_readable(pki) -> None:
    path = pki.keys["current"][0].path
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o640)
    try:
        with pytest.raises(ToolError, match="chmod 600"):
            load_private(path)
    finally:
        os.chmod(path, 0o600)
