"""The attack table of issue 12, as documents: each one what an attacker (or an accident) could
deliver through any door, and the verdict the terminal must give. Every door's test runs the
whole table against a terminal whose schedule is at version ``BASELINE`` and checks that each
attack is refused with its reason and that version ``BASELINE`` stays in force."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from tests.trust.pki import COUNTY, TERMINAL, Pki, command_bytes, schedule_bytes

BASELINE = 5
REVOKED_KEY = "c-01-k0"


@dataclass(frozen=True)
class Attack:
    name: str
    data: bytes
    status: str  # the verdict: rejected | stale
    code: str  # the reason's code as in the ack / reply / reason file ("a|b": either)


def _edit(envelope: bytes, **changes: object) -> bytes:
    obj = json.loads(envelope)
    for key, value in changes.items():
        obj[key] = value
    return json.dumps(obj, ensure_ascii=False).encode()


def _flip_b64(text: str) -> str:
    """The same base64 with one byte of the decoded value changed."""
    raw = bytearray(base64.b64decode(text))
    raw[10] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def baseline(pki: Pki) -> bytes:
    return pki.sign(schedule_bytes(BASELINE), to=TERMINAL)


def schedule_attacks(pki: Pki) -> list[Attack]:
    """Attacks on the schedule doors (all for this terminal's own layer)."""
    good = pki.sign(schedule_bytes(20), to=TERMINAL)
    obj = json.loads(good)
    payload_changed = obj["payload"].replace('"version": 20', '"version": 21')
    assert payload_changed != obj["payload"]
    forged_trust = pki.sign(
        json.dumps({"version": 99, "issued": "2026-01-01T00:00:00Z", "revoked": []}).encode(),
        kind="trust",
        to="all",
    )
    return [
        Attack("unsigned", schedule_bytes(21), "rejected", "unsigned"),
        Attack(
            "unknown_key",
            pki.sign(schedule_bytes(22), key="unknown_root", to=TERMINAL),
            "rejected",
            "unknown_key",
        ),
        Attack("payload_byte", _edit(good, payload=payload_changed), "rejected", "bad_signature"),
        Attack(
            "signature_byte", _edit(good, sig=_flip_b64(obj["sig"])), "rejected", "bad_signature"
        ),
        Attack("key_id_byte", _edit(good, key_id="c-01-k2"), "rejected", "unknown_key"),
        Attack(
            "revoked_key",
            pki.sign(schedule_bytes(23), key="old", to=TERMINAL),
            "rejected",
            "revoked",
        ),
        Attack(
            "expired_cert",
            pki.sign(schedule_bytes(24), key="expired", to=TERMINAL),
            "rejected",
            "expired",
        ),
        # A door that reads the kind from the envelope (the inbox) hands it to the trust check.
        Attack("county_key_trust_forgery", forged_trust, "rejected", "wrong_kind|not_a_root"),
        Attack(
            "other_county",
            pki.sign(schedule_bytes(25), key="other_county", county="c-02", to=TERMINAL),
            "rejected",
            "wrong_county",
        ),
        Attack(
            "other_terminal",
            pki.sign(schedule_bytes(26), to="t-002"),
            "rejected",
            "wrong_terminal",
        ),
        Attack(
            "payload_names_other_terminal",
            pki.sign(schedule_bytes(27, terminal="t-002"), to=TERMINAL),
            "rejected",
            "wrong_target",
        ),
        Attack("rollback", pki.sign(schedule_bytes(3), to=TERMINAL), "stale", "older"),
        Attack("truncated_signature", _edit(good, sig=obj["sig"][:40]), "rejected", "malformed"),
        Attack(
            "oversized_signature",
            _edit(good, sig=base64.b64encode(b"\x01" * 80).decode()),
            "rejected",
            "malformed",
        ),
        Attack(
            "alg_none",
            json.dumps(
                {"alg": "none", "payload": schedule_bytes(28).decode(), "county": COUNTY}
            ).encode(),
            "rejected",
            "foreign_format",
        ),
        Attack(
            "command_as_schedule",
            pki.sign(command_bytes("x-1"), kind="command", to=TERMINAL),
            "rejected",
            "wrong_kind",
        ),
    ]


def expect(attack: Attack, status: str, reasons: list[str]) -> None:
    """Assert a door's verdict on ``attack``."""
    text = " | ".join(reasons)
    assert status == attack.status, (attack.name, status, text)
    if attack.code == "older":
        assert "not newer" in text or "older" in text, (attack.name, text)
    else:
        assert any(f"[{code}]" in text for code in attack.code.split("|")), (attack.name, text)
