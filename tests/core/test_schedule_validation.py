"""Schedules and configs from outside: every bad input is rejected whole, with where and why."""

from __future__ import annotations

import json

import pytest

from agent.adapters.schedule_files import ScheduleStore, parse_schedule
from agent.domain.schedule import ScheduleRejected
from agent.runtime.config import ConfigError, load_config
from tests.helpers import write_config

GOOD = """\
version: 7
timezone: Asia/Shanghai
items:
  - id: party-weekly
    priority: 20
    course: {id: PH-01, title: 党史学习, media: courses/ph01.mp4}
    weekly: {days: [mon, thu], time: 19:30, valid_from: 2026-11-01, valid_until: 2027-01-31}
  - id: once
    course: {id: FT-02, title: Farming, media: https://cdn.example/ft02.mp4, max_minutes: 45}
    at: 2026-12-03T09:00
"""


def test_good_yaml_and_equivalent_json_parse_to_the_same_model() -> None:
    doc = parse_schedule(GOOD, "good.yaml")
    assert doc.version == 7
    assert doc.items[0].weekly is not None and doc.items[0].weekly.time == "19:30"
    again = parse_schedule(json.dumps(doc.to_json()), "good.json")
    assert again == doc


def _doc(item_patch: dict, top_patch: dict | None = None) -> str:
    item = {
        "id": "x",
        "course": {"id": "c", "title": "t", "media": "m.mp4"},
        "weekly": {"days": ["mon"], "time": "19:30"},
    }
    for key, value in item_patch.items():
        if key.startswith("course."):
            item["course"][key[7:]] = value
        elif key.startswith("weekly."):
            item["weekly"][key[7:]] = value
        elif value is None:
            item.pop(key, None)
        else:
            item[key] = value
    doc = {"version": 3, "items": [item], **(top_patch or {})}
    return json.dumps(doc, ensure_ascii=False)


HOSTILE = [
    ("version as text", _doc({}, {"version": "3"}), "version", "whole number"),
    ("version zero", _doc({}, {"version": 0}), "version", "between"),
    ("version absurd", _doc({}, {"version": 10**30}), "version", ""),
    ("negative priority", _doc({"priority": -1}), "items[0].priority", "between"),
    ("priority float", _doc({"priority": 1.5}), "items[0].priority", "whole number"),
    ("negative cap", _doc({"course.max_minutes": -5}), "items[0].course.max_minutes", "between"),
    ("absurd cap", _doc({"course.max_minutes": 1e12}), "items[0].course.max_minutes", "between"),
    ("zero slot", _doc({"slot_minutes": 0}), "items[0].slot_minutes", "between"),
    ("year 0", _doc({"weekly": None, "at": "0000-01-01T10:00"}), "items[0].at", "date and time"),
    ("year 9999", _doc({"weekly": None, "at": "9999-12-31T10:00"}), "items[0].at", "outside"),
    (
        "valid_until year 9999",
        _doc({"weekly.valid_until": "9999-01-01"}),
        "items[0].weekly.valid_until",
        "outside",
    ),
    ("bad hour", _doc({"weekly.time": "24:00"}), "items[0].weekly.time", "HH:MM"),
    ("bad weekday", _doc({"weekly.days": ["funday"]}), "items[0].weekly.days", "weekday"),
    ("no weekday", _doc({"weekly.days": []}), "items[0].weekly.days", "at least one"),
    ("traversal", _doc({"course.media": "../../etc/passwd"}), "items[0].course.media", ".."),
    ("absolute", _doc({"course.media": "/etc/passwd"}), "items[0].course.media", "absolute"),
    ("nul byte", _doc({"course.media": "a\u0000b.mp4"}), "items[0].course.media", "NUL"),
    ("file url", _doc({"course.media": "file:///etc/passwd"}), "items[0].course.media", "http"),
    ("bad sha", _doc({"course.sha256": "abc"}), "items[0].course.sha256", "hex"),
    ("both at and weekly", _doc({"at": "2026-12-01T10:00"}), "items[0]", "exactly one"),
    ("unknown key", _doc({"colour": "red"}), "items[0].colour", "unknown key"),
    ("missing course", _doc({"course": None}), "items[0].course", "required"),
    ("wrong tz", _doc({}, {"timezone": "Mars/Olympus"}), "timezone", "unknown time zone"),
    ("items not a list", json.dumps({"version": 1, "items": {"a": 1}}), "items", "list"),
    ("empty title", _doc({"course.title": "  "}), "items[0].course.title", "1-200"),
    ("NaN", '{"version": NaN, "items": []}', "", "NaN"),
    ("Infinity", '{"version": 1, "items": [], "x": Infinity}', "", "Infinity"),
    ("duplicate key", '{"version": 1, "version": 2, "items": []}', "", "duplicate key"),
    ("yaml nan", "version: .nan\nitems: []\n", "version", "whole number"),
    ("yaml alias", "a: &x [1, 2]\nversion: 1\nitems: *x\n", "", "aliases"),
    (
        "billion laughs",
        "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nversion: 1\nitems: []\n",
        "",
        "aliases",
    ),
    ("yaml python tag", "version: !!python/object:os.system 1\nitems: []\n", "", "tag"),
    ("not a mapping", "[1, 2, 3]", "", "mapping"),
    ("not utf-8", b"version: 1\nitems: []\n# \xff\xfe", "", "UTF-8"),
    ("huge document", "version: 1\nitems: []\n#" + "x" * (1024 * 1024 + 10), "", "larger than"),
    (
        "duplicate item id",
        json.dumps(
            {
                "version": 1,
                "items": [
                    {
                        "id": "a",
                        "course": {"id": "c", "title": "t", "media": "m"},
                        "at": "2026-12-01T10:00",
                    },
                    {
                        "id": "a",
                        "course": {"id": "c", "title": "t", "media": "m"},
                        "at": "2026-12-02T10:00",
                    },
                ],
            }
        ),
        "items[1].id",
        "duplicate",
    ),
]


@pytest.mark.parametrize(("name", "text", "path", "needle"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_schedule_is_rejected_with_path_and_reason(
    name: str, text: str | bytes, path: str, needle: str
) -> None:
    with pytest.raises(ScheduleRejected) as err:
        parse_schedule(text, "doc")
    joined = "\n".join(err.value.problems)
    assert needle in joined, joined
    if path:
        assert any(p.startswith(path) for p in err.value.problems), joined


def test_every_problem_is_listed_not_just_the_first() -> None:
    text = _doc(
        {"priority": -1, "course.media": "../x", "course.sha256": "zz", "weekly.time": "7pm"}
    )
    with pytest.raises(ScheduleRejected) as err:
        parse_schedule(text, "doc")
    assert len(err.value.problems) == 4, err.value.problems


def test_yaml_errors_carry_line_numbers() -> None:
    text = GOOD.replace("time: 19:30", "time: 25:30")
    with pytest.raises(ScheduleRejected) as err:
        parse_schedule(text, "good.yaml")
    assert err.value.problems == [
        "items[0].weekly.time (line 7): must be a local time HH:MM or HH:MM:SS"
    ]


@pytest.mark.parametrize(("name", "text", "path", "needle"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_bad_document_never_replaces_the_applied_schedule(
    tmp_path, name, text, path, needle
) -> None:
    store = ScheduleStore(tmp_path)
    assert store.apply(GOOD, "good.yaml").status == "applied"
    before = store.path("terminal").read_bytes()
    result = store.apply(text if isinstance(text, bytes) else text.encode(), "bad")
    assert result.status == "rejected"
    assert result.reasons
    assert store.path("terminal").read_bytes() == before
    assert store.load("terminal").version == 7


def test_versions_only_go_up(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    assert store.apply(GOOD, "a").status == "applied"
    same = store.apply(GOOD, "b")
    assert same.status == "stale" and "not newer" in same.reasons[0]
    older = store.apply(GOOD.replace("version: 7", "version: 6"), "c")
    assert older.status == "stale"
    newer = store.apply(GOOD.replace("version: 7", "version: 8"), "d")
    assert (newer.status, newer.previous_version) == ("applied", 7)
    assert store.load("terminal").version == 8


def test_layers_are_independent_and_wrong_target_is_refused(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    assert store.apply(GOOD, "a", layer="county").status == "applied"
    assert store.apply(GOOD, "a", layer="terminal").status == "applied"
    wrong = store.apply(
        GOOD.replace("version: 7", "version: 9\nterminal: other"), "x", terminal="t-001"
    )
    assert wrong.status == "rejected" and "other" in wrong.reasons[0]
    assert store.load("terminal").version == 7


def test_no_temp_files_left_after_apply(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    store.apply(GOOD, "a")
    names = sorted(p.name for p in store.dir.iterdir())
    assert names == [".lock", "terminal.json", "terminal.version"]


# -- config ----------------------------------------------------------------------------------

CONFIG_CASES = [
    ("unknown key", {"colour": "red"}, "colour", "unknown key"),
    ("wrong type", {"vlc": {"volume": "loud"}}, "vlc.volume", "whole number"),
    ("bad value", {"vlc": {"volume": 900}}, "vlc.volume", "between"),
    ("bad terminal id", {"terminal": "bad id!"}, "terminal", "letters"),
    ("bad tz", {"timezone": "Nowhere/Here"}, "timezone", "unknown time zone"),
    (
        "nan",
        {"playback": {"checkpoint_seconds": float("nan")}},
        "playback.checkpoint_seconds",
        "finite",
    ),
    (
        "negative grace",
        {"playback": {"late_start_grace_minutes": -1}},
        "playback.late_start_grace_minutes",
        "between",
    ),
    ("log level", {"log_level": "chatty"}, "log_level", "must be"),
]


@pytest.mark.parametrize(
    ("name", "patch", "key", "needle"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_bad_config_names_file_line_and_key(tmp_path, name, patch, key, needle) -> None:
    path = write_config(tmp_path, **patch)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text and key in text and needle in text, text
    assert "(line " in text, text


def test_missing_required_keys_and_relative_paths(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("county: c1\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "a.yaml")
    assert "terminal" in str(err.value) and "required" in str(err.value)
    cfg = load_config(write_config(tmp_path))
    assert cfg.state_dir == tmp_path.resolve() / "state"
    assert cfg.tz.key == "Asia/Shanghai"


def test_config_alias_and_unreadable_file(tmp_path) -> None:
    (tmp_path / "b.yaml").write_text("terminal: &t a\ncounty: *t\ncontent_dir: c\nstate_dir: s\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_config(tmp_path / "b.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
