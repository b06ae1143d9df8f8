"""Property-based fuzzing of envelopes and signed documents (about 10^4 cases in all): nothing that
is not exactly what the county signed is accepted, and nothing crashes the reader.

The gate answers every input with an ``Opened`` or a ``TrustRejected``; the documents readers
answer with a document or a rejection. A mutation of a valid envelope may still be accepted only
when it changed nothing signed (JSON spacing, an escape spelled differently): then the payload
and the header must be exactly the county's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.domain.manifest import ManifestDoc, ManifestRejected
from agent.domain.schedule import ScheduleDoc, ScheduleRejected
from agent.domain.trust import TrustRejected
from agent.domain.trust.envelope import CERT_KEYS, ENVELOPE_KEYS, FOREIGN_KEYS
from agent.runtime.trust import TrustGate
from tests.trust.pki import COUNTY, TERMINAL, make_pki, schedule_bytes

FAST = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

json_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
json_value = (
    json_scalar
    | st.lists(json_scalar, max_size=3)
    | st.dictionaries(st.text(max_size=6), json_scalar, max_size=3)
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    pki = make_pki(folder / "keys")
    gate = TrustGate("required", pki.roots_dir, folder / "state", COUNTY, TERMINAL)
    good = pki.sign(schedule_bytes(4), to=TERMINAL)
    return pki, gate, good


def opened_or_refused(gate: TrustGate, data: bytes, kind: str = "schedule"):
    try:
        return gate.open(data, kind)
    except TrustRejected as exc:
        assert exc.code and exc.message
        return None


@settings(max_examples=4000, **FAST)
@given(data=st.binary(max_size=600))
def test_random_bytes_are_never_accepted(world, data: bytes) -> None:
    _, gate, _ = world
    assert opened_or_refused(gate, data) is None


@settings(max_examples=3500, **FAST)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "delete", "insert"]),
            st.integers(0, 10**6),
            st.binary(min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_mutated_envelopes_are_refused_unless_nothing_signed_changed(world, edits) -> None:
    _, gate, good = world
    data = bytearray(good)
    for op, pos, blob in edits:
        i = pos % len(data)
        if op == "flip":
            data[i] ^= blob[0] or 1
        elif op == "delete":
            del data[i : i + len(blob)]
        else:
            data[i:i] = blob
    opened = opened_or_refused(gate, bytes(data))
    if opened is not None:
        reference = gate.open(good, "schedule")
        assert opened.payload == reference.payload
        assert opened.verified == reference.verified


@settings(max_examples=2000, **FAST)
@given(
    fields=st.dictionaries(
        st.sampled_from(ENVELOPE_KEYS + FOREIGN_KEYS) | st.text(max_size=6),
        json_value,
        max_size=10,
    ),
    keep=st.sets(st.sampled_from(ENVELOPE_KEYS + CERT_KEYS)),
)
def test_envelope_shaped_objects_are_never_accepted(world, fields, keep) -> None:
    """Real fields from a valid envelope mixed with arbitrary ones: never a pass."""
    _, gate, good = world
    real = json.loads(good)
    obj = dict(fields)
    for key in keep:
        if key in real:
            obj[key] = real[key]
        elif key in real["cert"] and isinstance(obj.get("cert"), dict):
            obj["cert"][key] = real["cert"][key]
    if obj == real:
        return
    assert opened_or_refused(gate, json.dumps(obj).encode()) is None or (
        obj.get("sig") == real["sig"] and obj.get("payload") == real["payload"]
    )


@settings(max_examples=1500, **FAST)
@given(
    doc=st.dictionaries(
        st.sampled_from(["version", "items", "courses", "layer", "terminal", "county", "x"]),
        json_value,
        max_size=6,
    ),
    kind=st.sampled_from(["schedule", "manifest"]),
    to=st.sampled_from([TERMINAL, "all", "t-002"]),
)
def test_signed_documents_of_any_content_never_crash_the_readers(world, doc, kind, to) -> None:
    """A validly signed document is still read strictly: any content gives a verdict."""
    pki, gate, _ = world
    data = pki.sign(json.dumps(doc).encode(), kind=kind, to=to)
    if kind == "schedule":
        out = gate.read_schedule(data, "fuzz", timezone="Asia/Shanghai")
        assert isinstance(out, ScheduleDoc | ScheduleRejected)
    else:
        out = gate.read_manifest(data, "fuzz")
        assert isinstance(out, ManifestDoc | ManifestRejected)
    if to == "t-002":
        assert isinstance(out, Exception)


def test_the_fuzz_budget_is_at_least_ten_thousand_cases() -> None:
    text = Path(__file__).read_text()
    import re

    total = sum(int(n) for n in re.findall(r"max_examples=(\d+)", text))
    assert total >= 10_000, total
