"""Course manifests are read as strictly as schedules: every problem is named with its path and
line, one problem rejects the whole document, and layers merge with the terminal's winning."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from agent.adapters.manifest_files import parse_manifest, parse_untrusted_manifest
from agent.adapters.schedule_files import parse_schedule
from agent.domain.manifest import ManifestRejected, is_manifest, merged
from tests.helpers import ROOT

SHA_A = "a" * 64
SHA_B = "b" * 64

GOOD = f"""\
version: 4
layer: county
county: c-01
description: 秋季课程
courses:
  - id: PH-01
    title: 党史学习
    title_en: Party history
    category: 党建
    files:
      - path: courses/ph01.mp4
        size: 1048576
        sha256: {SHA_A}
        sources: [http://county.example/c/ph01.mp4, https://province.example/ph01.mp4]
  - id: FT-02
    title: 果树栽培
    on_demand: false
    files:
      - path: courses/ft02/part1.mp4
        size: 10
        sha256: {SHA_B}
        sources: [http://county.example/c/ft02-1.mp4]
      - path: courses/ph01.mp4
        size: 1048576
        sha256: {SHA_A}
        sources: [http://county.example/c/ph01.mp4]
"""


def manifest(courses: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"version": 3, "courses": courses, **top}


def course(cid: str = "c1", **kw: Any) -> dict[str, Any]:
    files = kw.pop("files", None) or [a_file()]
    return {"id": cid, "title": "课程", "files": files, **kw}


def a_file(path: str = "a.mp4", **kw: Any) -> dict[str, Any]:
    return {"path": path, "size": 100, "sha256": SHA_A, "sources": ["http://h/a.mp4"], **kw}


def test_good_yaml_and_its_json_round_trip_give_the_same_model() -> None:
    doc = parse_manifest(GOOD, "good.yaml")
    assert doc.version == 4 and doc.layer == "county" and len(doc.courses) == 2
    ph = doc.course("PH-01")
    assert ph is not None and ph.category == "党建" and ph.title_en == "Party history"
    assert ph.on_demand is True and doc.course("FT-02").on_demand is False  # type: ignore[union-attr]
    assert doc.course("nope") is None
    assert sorted(doc.files()) == ["courses/ft02/part1.mp4", "courses/ph01.mp4"]
    assert doc.files()["courses/ph01.mp4"].sources[1] == "https://province.example/ph01.mp4"
    again = parse_manifest(json.dumps(doc.to_json(), ensure_ascii=False), "good.json")
    assert again == doc
    assert "category" not in doc.to_json()["courses"][1]  # None is left out, not null


def test_an_empty_manifest_is_valid_and_clears_the_library() -> None:
    assert parse_manifest(json.dumps(manifest([])), "m").courses == []


def _hostile(patch_file: dict[str, Any] | None = None, **patch_course: Any) -> str:
    """A one-course manifest as YAML (JSON carries no line numbers), with fields replaced."""
    patch_course.setdefault("files", [a_file(**(patch_file or {}))])
    return as_yaml(manifest([course(**patch_course)]))


def as_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, default_flow_style=None)


HOSTILE = [
    ("URL as path", _hostile({"path": "http://h/a.mp4"}), "files[0].path", "not a URL"),
    ("absolute path", _hostile({"path": "/etc/passwd"}), "files[0].path", "absolute"),
    ("dot-dot", _hostile({"path": "a/../../x.mp4"}), "files[0].path", ".."),
    ("hidden part", _hostile({"path": ".partial/x.mp4"}), "files[0].path", "start with '.'"),
    ("hidden file", _hostile({"path": "a/.x.mp4"}), "files[0].path", "start with '.'"),
    ("dot part", _hostile({"path": "./x.mp4"}), "files[0].path", "start with '.'"),
    ("double slash", _hostile({"path": "a//x.mp4"}), "files[0].path", "empty parts"),
    ("backslash", _hostile({"path": "a\\x.mp4"}), "files[0].path", "backslash"),
    ("size zero", _hostile({"size": 0}), "files[0].size", "between"),
    ("size huge", _hostile({"size": 2**40 + 1}), "files[0].size", "between"),
    ("size text", _hostile({"size": "100"}), "files[0].size", "whole number"),
    ("sha upper", _hostile({"sha256": "A" * 64}), "files[0].sha256", "lowercase hex"),
    ("sha short", _hostile({"sha256": "a" * 63}), "files[0].sha256", "64"),
    ("no sources", _hostile({"sources": []}), "files[0].sources", "1 to 8"),
    ("9 sources", _hostile({"sources": [f"http://h/{i}" for i in range(9)]}), "sources", "1 to 8"),
    ("ftp source", _hostile({"sources": ["ftp://h/a"]}), "files[0].sources", "entry 0"),
    ("space in URL", _hostile({"sources": ["http://h/a b"]}), "files[0].sources", "spaces"),
    ("no host", _hostile({"sources": ["http:///a"]}), "files[0].sources", "no host"),
    ("long URL", _hostile({"sources": ["http://h/" + "x" * 2048]}), "sources", "longer"),
    ("repeated mirror", _hostile({"sources": ["http://h/a"] * 2}), "sources", "repeats"),
    ("missing sha", _hostile({"sha256": None}), "files[0].sha256", "empty"),
    ("unknown key", _hostile({"md5": "x"}), "files[0].md5", "unknown key"),
    ("bad id", _hostile(id="课 1"), "courses[0].id", "letters"),
    ("empty title", _hostile(title=" "), "courses[0].title", "1-200"),
    ("long category", _hostile(category="x" * 65), "courses[0].category", "1-64"),
    ("on_demand text", _hostile(on_demand="yes"), "courses[0].on_demand", "true or false"),
    ("files not a list", _hostile(files={"a": 1}), "courses[0].files", "must be a list"),
]


@pytest.mark.parametrize(("name", "text", "path", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_every_bad_field_is_rejected_with_its_path_and_line(
    name: str, text: str, path: str, words: str
) -> None:
    with pytest.raises(ManifestRejected) as info:
        parse_manifest(text, "m.json")
    problems = info.value.problems
    found = [p for p in problems if path in p and words in p and "(line " in p]
    assert found, problems
    line = int(found[0].split("(line ")[1].split(")")[0])
    key = path.rsplit(".", 1)[-1]
    assert f"{key}:" in text.splitlines()[line - 1], (line, text)
    assert "manifest rejected" in str(info.value)
    assert info.value.version == 3  # the document's own version, for the ack


def test_line_numbers_point_at_the_bad_lines_in_yaml() -> None:
    bad = GOOD.replace("size: 10\n", "size: -5\n").replace(
        "[http://county.example/c/ft02-1.mp4]", "[gopher://x/y]"
    )
    with pytest.raises(ManifestRejected) as info:
        parse_manifest(bad, "m.yaml")
    lines = {
        p.split(" (line ")[0]: int(p.split(" (line ")[1].split(")")[0]) for p in info.value.problems
    }
    assert lines == {"courses[1].files[0].size": 20, "courses[1].files[0].sources": 22}, lines


def test_cross_field_rules_name_the_offending_entry() -> None:
    cases = [
        (
            manifest([course(files=[a_file("x.mp4"), a_file("x.mp4")])]),
            "courses[0].files[1].path",
            "twice",
        ),
        (manifest([course(files=[a_file(f"{i}.mp4") for i in range(51)])]), "files", "1 to 50"),
        (manifest([course("c1"), course("c1")]), "courses[1].id", "duplicate course id"),
        (
            manifest([course("c1"), course("c2", files=[a_file(sha256=SHA_B)])]),
            "courses[1].files[0]",
            "another size or sha256 in course 'c1'",
        ),
        (
            manifest([course("c1"), course("c2", files=[a_file(size=7)])]),
            "courses[1].files[0]",
            "another size",
        ),
        (manifest([course(f"c{i}") for i in range(2001)]), "courses", "limit is 2000"),
    ]
    for doc, path, words in cases:
        with pytest.raises(ManifestRejected) as info:
            parse_manifest(as_yaml(doc), "m.yaml")
        assert any(path in p and words in p and "(line " in p for p in info.value.problems), (
            path,
            info.value.problems,
        )


def test_the_same_file_in_two_courses_is_fine_when_it_agrees() -> None:
    doc = parse_manifest(json.dumps(manifest([course("c1"), course("c2")])), "m")
    assert list(doc.files()) == ["a.mp4"]


def test_every_problem_is_listed_at_once() -> None:
    text = json.dumps(
        manifest(
            [
                course("c1", files=[a_file(size=0)]),
                course("c2", files=[a_file("b.mp4", sha256="zz")]),
            ],
            version=0,
        )
    )
    with pytest.raises(ManifestRejected) as info:
        parse_manifest(text, "m")
    joined = "\n".join(info.value.problems)
    for where in ("version", "courses[0].files[0].size", "courses[1].files[0].sha256"):
        assert where in joined
    assert info.value.version is None  # version 0 is no valid version


def test_untrusted_input_only_ever_raises_manifest_rejected() -> None:
    for data in (b"\xff\xfe", b"{", b"[" * 10_000, b"x" * (1024 * 1024 + 1), b"courses: [}"):
        with pytest.raises(ManifestRejected) as info:
            parse_untrusted_manifest(data, "hostile")
        assert info.value.problems and all("hostile" in p for p in info.value.problems)


def test_is_manifest_tells_a_manifest_from_a_schedule() -> None:
    assert is_manifest({"version": 1, "courses": []})
    assert not is_manifest({"version": 1, "items": []})
    assert not is_manifest({"version": 1, "items": [], "courses": []})
    assert not is_manifest([{"courses": []}])
    assert not is_manifest("courses")


def test_merged_lets_the_terminal_layer_win_per_course() -> None:
    county = parse_manifest(
        json.dumps(manifest([course("c1"), course("c2", title="县")], layer="county")), "c"
    )
    terminal = parse_manifest(
        json.dumps(manifest([course("c2", title="村"), course("c3")], layer="terminal")), "t"
    )
    both = merged({"county": county, "terminal": terminal})
    assert sorted(both) == ["c1", "c2", "c3"]
    assert both["c2"].title == "村"
    assert merged({"county": county})["c2"].title == "县"
    assert merged({}) == {}


def test_schedule_courses_may_carry_a_size() -> None:
    item = {
        "id": "x",
        "course": {"id": "c", "title": "t", "media": "m.mp4", "sha256": SHA_A, "size": 5},
        "weekly": {"days": ["mon"], "time": "19:30"},
    }
    doc = parse_schedule(json.dumps({"version": 1, "items": [item]}), "s")
    assert doc.items[0].course.size == 5
    assert doc.to_json()["items"][0]["course"]["size"] == 5
    for bad, words in ((0, "between"), (2**40 + 1, "between"), ("5", "whole number")):
        item["course"]["size"] = bad
        with pytest.raises(Exception) as info:
            parse_schedule(json.dumps({"version": 1, "items": [item]}), "s")
        assert any("items[0].course.size" in p and words in p for p in info.value.problems)


def test_the_example_in_docs_manifest_md_is_a_valid_manifest() -> None:
    text = (ROOT / "docs" / "manifest.md").read_text("utf-8")
    (example,) = re.findall(r"<!-- example: manifest -->\s*```json\n(.*?)\n```", text, re.S)
    doc = parse_manifest(example, "docs/manifest.md")
    assert [c.id for c in doc.courses] == ["PH-01", "FT-02"]
    assert doc.course("FT-02").on_demand is False  # type: ignore[union-attr]
