"""What `countyctl watch` (and the demo) print for the documents on the county's topics, signed
envelopes included: the version inside the envelope, and who says they signed it."""

from __future__ import annotations

import json

from agent.cli.county.watch import describe


def envelope(payload: str) -> bytes:
    return json.dumps(
        {
            "rde_signed": 1,
            "kind": "schedule",
            "county": "c-01",
            "to": "all",
            "key_id": "c-01-2026",
            "cert": None,
            "payload": payload,
            "sig": "AAAA",
        }
    ).encode()


def test_a_signed_schedule_shows_its_version_and_signer() -> None:
    line = describe("rde/v1/c-01/all/schedule", envelope('{"version": 7, "items": []}'))
    assert line == "schedule (county layer) v7 for all, signed by key c-01-2026"


def test_a_signed_yaml_manifest_shows_its_courses() -> None:
    payload = "version: 4\ncourses:\n  - id: A\n  - id: B\n"
    line = describe("rde/v1/c-01/t-001/library", envelope(payload))
    assert (
        line
        == "course manifest (terminal layer) v4 for t-001: 2 course(s), signed by key c-01-2026"
    )


def test_an_unsigned_schedule_is_shown_as_it_is() -> None:
    line = describe("rde/v1/c-01/t-001/schedule", b'{"version": 3, "items": []}')
    assert line == "schedule (terminal layer) v3 for t-001"
