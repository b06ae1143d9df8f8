"""The planner: pure (schedule, window) -> occurrences, with an injected notion of now."""

from __future__ import annotations

import datetime as dt
import json

from agent.adapters.schedule_files import parse_schedule
from agent.domain.planner import plan
from tests.helpers import TZ


def doc(items: list[dict], version: int = 1, tz: str = "Asia/Shanghai"):
    return parse_schedule(json.dumps({"version": version, "timezone": tz, "items": items}), "t")


def weekly(item_id: str, days: list[str], time: str, **kw) -> dict:
    w = {"days": days, "time": time}
    w.update({k: kw.pop(k) for k in list(kw) if k.startswith("valid")})
    return {
        "id": item_id,
        "course": {"id": item_id, "title": item_id, "media": f"{item_id}.mp4"},
        "weekly": w,
        **kw,
    }


def at(item_id: str, when: str, **kw) -> dict:
    return {
        "id": item_id,
        "course": {"id": item_id, "title": item_id, "media": f"{item_id}.mp4"},
        "at": when,
        **kw,
    }


def local(y, mo, d, h=0, mi=0) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=TZ).timestamp()


def starts(p) -> list[tuple[str, str]]:
    return [
        (o.item.id, dt.datetime.fromtimestamp(o.start, TZ).strftime("%a %m-%d %H:%M"))
        for o in p.occurrences
    ]


def test_weekly_rule_repeats_across_weeks_in_local_time() -> None:
    d = doc([weekly("w", ["mon", "thu"], "19:30")])
    p = plan({"terminal": d}, local(2026, 11, 30), local(2026, 12, 14))  # Mon 30 Nov .. Mon 14 Dec
    assert starts(p) == [
        ("w", "Mon 11-30 19:30"),
        ("w", "Thu 12-03 19:30"),
        ("w", "Mon 12-07 19:30"),
        ("w", "Thu 12-10 19:30"),
    ]
    # 19:30 in Shanghai is 11:30 UTC
    assert dt.datetime.fromtimestamp(p.occurrences[0].start, dt.UTC).hour == 11


def test_validity_window_expires_a_season_by_itself() -> None:
    d = doc([weekly("w", ["mon"], "08:00", valid_from="2026-12-07", valid_until="2026-12-21")])
    p = plan({"terminal": d}, local(2026, 11, 1), local(2027, 2, 1))
    assert [s for _, s in starts(p)] == ["Mon 12-07 08:00", "Mon 12-14 08:00", "Mon 12-21 08:00"]


def test_window_edges_include_an_occurrence_in_progress() -> None:
    d = doc([at("a", "2026-12-01T10:00", slot_minutes=30)])
    assert (
        len(plan({"terminal": d}, local(2026, 12, 1, 10, 29), local(2026, 12, 2)).occurrences) == 1
    )
    assert plan({"terminal": d}, local(2026, 12, 1, 10, 30), local(2026, 12, 2)).occurrences == []
    assert plan({"terminal": d}, local(2026, 11, 1), local(2026, 12, 1, 10, 0)).occurrences == []


def test_higher_priority_cuts_a_running_lower_one_and_lower_is_suppressed() -> None:
    d = doc(
        [
            at("low", "2026-12-01T10:00", slot_minutes=60, priority=5),
            at("high", "2026-12-01T10:30", slot_minutes=20, priority=50),
            at("late-low", "2026-12-01T10:40", slot_minutes=10, priority=5),
        ]
    )
    p = plan({"terminal": d}, local(2026, 12, 1), local(2026, 12, 2))
    assert [o.item.id for o in p.occurrences] == ["low", "high"]
    low, high = p.occurrences
    assert low.end == high.start  # cut short
    assert p.cut_by[low.key] == high.key
    assert [(s.item.id, by.item.id) for s, by in p.suppressed] == [("late-low", "high")]


def test_equal_priority_earliest_start_wins() -> None:
    d = doc(
        [
            at("first", "2026-12-01T10:00", slot_minutes=60),
            at("second", "2026-12-01T10:15", slot_minutes=60),
        ]
    )
    p = plan({"terminal": d}, local(2026, 12, 1), local(2026, 12, 2))
    assert [o.item.id for o in p.occurrences] == ["first"]
    assert [s.item.id for s, _ in p.suppressed] == ["second"]


def test_same_start_higher_priority_wins_regardless_of_order() -> None:
    d = doc([at("b", "2026-12-01T10:00", priority=1), at("a", "2026-12-01T10:00", priority=9)])
    p = plan({"terminal": d}, local(2026, 12, 1), local(2026, 12, 2))
    assert [o.item.id for o in p.occurrences] == ["a"]


def test_terminal_layer_wins_over_county_whatever_the_priority() -> None:
    county = doc([at("county-item", "2026-12-01T10:00", slot_minutes=60, priority=999)], version=4)
    term = doc([at("own-item", "2026-12-01T10:30", slot_minutes=10, priority=0)], version=2)
    p = plan({"county": county, "terminal": term}, local(2026, 12, 1), local(2026, 12, 2))
    assert [(o.layer, o.item.id) for o in p.occurrences] == [
        ("county", "county-item"),
        ("terminal", "own-item"),
    ]
    assert p.occurrences[0].end == p.occurrences[1].start
    assert p.occurrences[0].version == 4 and p.occurrences[1].version == 2


def test_slot_length_comes_from_slot_then_cap_then_learned_duration_then_default() -> None:
    d = doc([at("a", "2026-12-01T10:00"), at("b", "2026-12-01T10:10")])
    default = plan({"terminal": d}, local(2026, 12, 1), local(2026, 12, 2), default_slot_s=3600)
    assert [o.item.id for o in default.occurrences] == ["a"]
    learned = plan(
        {"terminal": d}, local(2026, 12, 1), local(2026, 12, 2), 3600, durations={"a": 300}
    )
    assert [o.item.id for o in learned.occurrences] == ["a", "b"]
    assert learned.occurrences[0].end - learned.occurrences[0].start == 300


def test_keys_are_stable_and_unique_per_item_and_start() -> None:
    d = doc([weekly("w", ["mon", "tue"], "07:00")])
    p1 = plan({"terminal": d}, local(2026, 11, 30), local(2026, 12, 8))
    p2 = plan({"terminal": d}, local(2026, 12, 1), local(2026, 12, 8))
    keys1 = {o.key for o in p1.occurrences}
    assert len(keys1) == len(p1.occurrences)
    assert {o.key for o in p2.occurrences} <= keys1


def test_dst_zone_keeps_local_wall_time() -> None:
    d = doc([weekly("w", ["sun"], "10:00")], tz="Europe/Berlin")
    p = plan(
        {"terminal": d},
        dt.datetime(2026, 10, 18, tzinfo=dt.UTC).timestamp(),
        dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp(),
    )
    hours = [dt.datetime.fromtimestamp(o.start, dt.UTC).hour for o in p.occurrences]
    assert hours == [8, 9, 9]  # 18 Oct CEST, then CET from 25 Oct: 10:00 local every time
