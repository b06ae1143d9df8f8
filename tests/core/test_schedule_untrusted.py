"""Documents from outside are read with limits: depth, number of values, size and a time budget.

Whatever goes wrong while reading one (a limit, a parser error, an exception nobody foresaw such
as ``RecursionError``) ends as ``ScheduleRejected`` saying what and where, quickly; and a verdict
never names a version that no document had.
"""

from __future__ import annotations

import functools
import json
import time

import pytest
import yaml

from agent.adapters.schedule_files import ScheduleStore, parse_untrusted
from agent.domain.document import DocumentError, Limits
from agent.domain.schedule import ScheduleRejected
from agent.runtime.documents import parse_document, parse_yaml

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if yaml.__with_libyaml__ else [])
LOADER_IDS = [loader.__name__ for loader in LOADERS]


def max_schedule(n: int = 2000) -> dict:
    """The largest schedule the format allows (2000 items, every field given)."""
    items = []
    for i in range(n):
        items.append(
            {
                "id": f"item-{i:05d}",
                "priority": 20,
                "slot_minutes": 45,
                "weekly": {
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "time": "19:30",
                    "valid_from": "2026-11-01",
                    "valid_until": "2027-01-31",
                },
                "course": {
                    "id": f"C-{i:05d}",
                    "title": "党史学习 第一讲",
                    "media": f"courses/{i:05d}.mp4",
                    "sha256": "a" * 64,
                    "max_minutes": 45,
                },
            }
        )
    return {"version": 8, "timezone": "Asia/Shanghai", "items": items}


@functools.cache
def max_yaml() -> str:
    return yaml.safe_dump(max_schedule(), allow_unicode=True)


DEEP = 100_000
HOSTILE = {
    # 200 KB; the old reader needed minutes for it, then died of RecursionError
    "deep yaml flow": ("[" * DEEP + "]" * DEEP, "nest"),
    "deep yaml block": ("- " * DEEP + "x\n", "nest"),
    "deep yaml mapping": ("{a: " * (DEEP // 2) + "1" + "}" * (DEEP // 2), "nest"),
    "deep json": ('{"a":' * DEEP + "1" + "}" * DEEP, "nest"),
    "deep json list": ('{"version": 1, "items": ' + "[" * DEEP + "]" * DEEP + "}", "nest"),
    "alias bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nversion: 1\nitems: *c\n",
        "aliases",
    ),
    "huge flat yaml list": ("version: 1\nitems:\n" + "- 1\n" * 250_000, "more than"),
    "huge flat json list": ('{"version": 1, "items": [' + "1," * 450_000 + "1]}", "more than"),
    "two documents": ("version: 1\nitems: []\n---\nversion: 2\nitems: []\n", "single document"),
}


@pytest.mark.parametrize("name", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_document_is_rejected_fast_with_what_and_where(name: str) -> None:
    text, needle = HOSTILE[name]
    t0 = time.monotonic()
    with pytest.raises(ScheduleRejected) as err:
        parse_untrusted(text.encode(), "mqtt:doc")
    took = time.monotonic() - t0
    joined = "\n".join(err.value.problems)
    assert needle in joined, joined
    assert joined.startswith("mqtt:doc"), joined  # where: the source, and the line if known
    assert err.value.version is None
    assert took < 2.0, f"{name} took {took:.2f} s"


@pytest.mark.parametrize("loader", LOADERS, ids=LOADER_IDS)
def test_depth_limit_holds_with_either_yaml_parser(loader: type) -> None:
    t0 = time.monotonic()
    for text in ("[" * DEEP + "]" * DEEP, "- " * DEEP + "x\n"):
        with pytest.raises(DocumentError) as err:
            parse_yaml(text, "doc", loader=loader)
        assert "nest" in err.value.message and err.value.where == "doc:1"
    assert time.monotonic() - t0 < 2.0


def test_the_largest_legal_schedule_is_within_every_limit() -> None:
    for data in (json.dumps(max_schedule(), ensure_ascii=False), max_yaml()):
        assert len(data.encode()) < 1024 * 1024
        assert len(parse_untrusted(data.encode(), "big").items) == 2000


@pytest.mark.parametrize("loader", LOADERS, ids=LOADER_IDS)
def test_time_budget_stops_a_slow_read(loader: type) -> None:
    text = max_yaml()
    t0 = time.monotonic()
    with pytest.raises(DocumentError) as err:
        parse_yaml(text, "slow.yaml", Limits(seconds=0.05), loader=loader)
    took = time.monotonic() - t0
    assert "took longer than 0.05 s" in err.value.message, err.value
    assert err.value.where.startswith("slow.yaml:")  # where it had got to
    assert took < 0.5, took
    # the same document within an ordinary budget reads fine
    assert parse_yaml(text, "slow.yaml", loader=loader).kind == "map"


def test_parse_untrusted_takes_a_budget() -> None:
    text = max_yaml().encode()
    with pytest.raises(ScheduleRejected) as err:
        parse_untrusted(text, "slow.yaml", budget_s=0.01)
    assert "took longer than 0.01 s" in err.value.problems[0]


def test_json_and_yaml_share_the_limits() -> None:
    flat = json.dumps({"version": 1, "items": list(range(300))})
    with pytest.raises(DocumentError, match="more than 100 values"):
        parse_document(flat, "j", Limits(max_values=100))
    with pytest.raises(DocumentError, match="nested deeper than 3 levels"):
        parse_document('{"a": {"b": {"c": {"d": 1}}}}', "j", Limits(max_depth=3))
    with pytest.raises(DocumentError, match="nested deeper than 3 levels"):
        parse_document("a: {b: {c: {d: 1}}}", "y", Limits(max_depth=3))
    assert parse_document("a: {b: {c: 1}}", "y", Limits(max_depth=3)).plain() == {
        "a": {"b": {"c": 1}}
    }


def test_a_long_list_of_problems_is_cut_with_a_count() -> None:
    doc = {"version": 4, "items": [{"id": f"i{i}"} for i in range(500)]}
    with pytest.raises(ScheduleRejected) as err:
        parse_untrusted(json.dumps(doc).encode(), "many")
    problems = err.value.problems
    assert len(problems) == 50
    assert problems[-1].startswith("... and ") and "more problem" in problems[-1]
    assert err.value.version == 4  # the document had a valid version: say which


# -- the version of a document that could not be read (item: never guess one) -----------------

NO_VERSION = {
    "2**63, truncated json": b'{"version": 9223372036854775808, "items": [',
    "2**63, valid json": b'{"version": 9223372036854775808, "items": []}',
    "version as text": b'{"version": "12", "items": []}',
    "not json at all": b'{"version": 12 "items": []}',
    "yaml error after the version": b"version: 12\nitems: [\n",
    "no version": b'{"items": []}',
}


@pytest.mark.parametrize("name", list(NO_VERSION), ids=list(NO_VERSION))
def test_a_document_without_a_readable_version_reports_none(tmp_path, name: str) -> None:
    result = ScheduleStore(tmp_path).apply(NO_VERSION[name], "mqtt:x", layer="terminal")
    assert result.status == "rejected" and result.reasons
    assert result.version is None, result


def test_a_document_that_parses_reports_its_own_version(tmp_path) -> None:
    bad_item = {"version": 8, "items": [{"id": "x", "course": {"id": "c"}}]}
    result = ScheduleStore(tmp_path).apply(json.dumps(bad_item).encode(), "x")
    assert (result.status, result.version) == ("rejected", 8)


# -- parsing on the caller's thread ------------------------------------------------------------


def test_apply_takes_an_already_parsed_document_or_verdict(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    good = json.dumps({"version": 3, "items": []}).encode()
    doc = parse_untrusted(good, "a")
    assert store.apply(good, "a", parsed=doc).status == "applied"
    try:
        parse_untrusted(b"[" * 50, "b")
    except ScheduleRejected as exc:
        verdict = exc
    result = store.apply(b"[" * 50, "b", parsed=verdict)
    assert (result.status, result.version) == ("rejected", None)
    assert result.reasons == verdict.problems
    assert store.load("terminal").version == 3
