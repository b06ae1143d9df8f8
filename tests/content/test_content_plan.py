"""The content pipeline's decisions, pure: what is wanted and in which order, when fetching is
allowed (windows, daylight saving, the urgent override), what may be evicted, how ready we are.
Every instant is explicit; nothing reads a clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from agent.domain.content_plan import (
    FileState,
    OnDisk,
    Readiness,
    Want,
    bytes_to_free,
    check_window,
    choose_evictions,
    conflicts,
    fetch_allowed,
    next_window_start,
    parse_window,
    readiness,
    wanted,
)
from agent.domain.manifest import LibraryCourse, ManifestFile

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
SHA = {c: c * 64 for c in "abcdef"}
HOUR = 3600.0


def at(tz: ZoneInfo, text: str, fold: int = 0) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).timestamp()


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def mfile(path: str, sha: str = "a", size: int = 100) -> ManifestFile:
    return ManifestFile(path, size, SHA[sha], [f"http://county/{path}", f"https://prov/{path}"])


def lib(*courses: LibraryCourse) -> dict[str, LibraryCourse]:
    return {c.id: c for c in courses}


# -- wanted -------------------------------------------------------------------------------------


def test_scheduled_first_by_slot_then_library_by_course_and_path_one_want_per_path() -> None:
    library = lib(
        LibraryCourse("z-last", "最后", [mfile("z/1.mp4", "b")]),
        LibraryCourse("a-first", "第一", [mfile("a/2.mp4", "c"), mfile("a/1.mp4", "d")]),
        LibraryCourse("m-sched", "排课", [mfile("m/x.mp4", "e", 500)]),
        LibraryCourse("hidden", "不点播", [mfile("h/1.mp4", "f")], on_demand=False),
    )
    occurrences = [
        (3000.0, "m/x.mp4", None, None, "m-sched", "排课"),
        (1000.0, "plain.mp4", SHA["a"], 42, "P", "普通"),
        (2000.0, "https://cdn/live.mp4", None, None, "U", "直播"),  # streamed, never stored
        (500.0, "m/x.mp4", None, None, "m-sched", "排课"),  # same file, sooner
        (4000.0, "plain.mp4", None, None, "Q", "又一"),  # same file, another course
    ]
    wants = wanted(occurrences, library)
    assert [w.path for w in wants] == [
        "m/x.mp4",
        "plain.mp4",
        "a/1.mp4",
        "a/2.mp4",
        "z/1.mp4",
    ]
    first, plain = wants[0], wants[1]
    assert first.slot == 500.0 and first.course_ids == ("m-sched",) and first.titles == ("排课",)
    assert (first.size, first.sha256) == (500, SHA["e"])  # from the manifest
    assert first.sources == ("http://county/m/x.mp4", "https://prov/m/x.mp4")
    assert plain == Want("plain.mp4", 42, SHA["a"], (), 1000.0, ("P", "Q"), ("普通", "又一"))
    assert all(w.slot is None for w in wants[2:])
    assert not any(w.path.startswith("http") for w in wants)
    assert "h/1.mp4" not in [w.path for w in wants]  # not on demand, not scheduled


def test_a_scheduled_file_of_a_course_not_on_demand_is_wanted_for_its_slot() -> None:
    library = lib(LibraryCourse("hidden", "不点播", [mfile("h/1.mp4", "f")], on_demand=False))
    wants = wanted([(10.0, "h/1.mp4", None, None, "S", "课")], library)
    assert [(w.path, w.slot, w.sha256, w.course_ids) for w in wants] == [
        ("h/1.mp4", 10.0, SHA["f"], ("S", "hidden"))
    ]


def test_the_manifest_wins_a_disagreement_and_conflicts_says_so() -> None:
    library = lib(LibraryCourse("c", "课", [mfile("x.mp4", "a", 100)]))
    occurrences = [
        (10.0, "x.mp4", SHA["b"], 99, "c", "课"),
        (20.0, "y.mp4", SHA["c"], 5, "d", "D"),
        (30.0, "y.mp4", SHA["d"], 5, "e", "E"),
        (40.0, "http://cdn/z.mp4", SHA["d"], 5, "e", "E"),
    ]
    (x, y) = wanted(occurrences, library)[:2]
    assert (x.sha256, x.size) == (SHA["a"], 100)
    assert (y.sha256, y.slot) == (SHA["c"], 20.0)  # the soonest occurrence's
    found = conflicts(occurrences, library)
    assert len(found) == 3, found
    assert "sha256" in found[0] and "'x.mp4'" in found[0]
    assert "99" in found[1] and "100" in found[1]
    assert "'d'" in found[2] and "'e'" in found[2] and "'y.mp4'" in found[2]
    assert conflicts([(10.0, "x.mp4", SHA["a"], 100, "c", "课")], library) == []
    assert conflicts([(10.0, "x.mp4", None, None, "c", "课")], library) == []


def test_library_courses_from_two_layers_disagreeing_about_a_path_are_reported() -> None:
    library = lib(
        LibraryCourse("a", "A", [mfile("same.mp4", "a")]),
        LibraryCourse("b", "B", [mfile("same.mp4", "b")]),
    )
    (w,) = wanted([], library)
    assert w.sha256 == SHA["a"] and w.course_ids == ("a", "b")
    assert conflicts([], library) == [
        "course 'b': 'same.mp4' differs from another library course's"
    ]


# -- windows ------------------------------------------------------------------------------------


def test_parse_window_and_its_errors() -> None:
    assert parse_window("00:30-06:00") == (30, 360)
    assert parse_window("22:00-06:00") == (1320, 360)
    assert parse_window("00:00-24:00") == (0, 1440)
    assert parse_window("12:00-24:00") == (720, 1440)
    for bad in ("0:30-6:00", "24:00-01:00", "01:00-24:30", "01:60-02:00", "06:00-06:00", "x"):
        with pytest.raises(ValueError) as info:
            parse_window(bad)
        assert repr(bad) in str(info.value)
        assert check_window(bad)
    assert "00:00-24:00" in (check_window("00:00-00:00") or "")
    assert check_window("00:30-06:00") is None


def want(slot: float | None) -> Want:
    return Want("x.mp4", 1, SHA["a"], ("http://h/x",), slot, ("c",), ("t",))


def test_fetch_inside_windows_only_and_across_midnight() -> None:
    windows = ["22:00-06:00", "12:00-13:00"]
    lib_only = want(None)
    cases = {
        "2026-05-01T21:59:59": False,
        "2026-05-01T22:00:00": True,
        "2026-05-01T23:59:00": True,
        "2026-05-02T00:00:00": True,
        "2026-05-02T05:59:59": True,
        "2026-05-02T06:00:00": False,
        "2026-05-02T11:59:00": False,
        "2026-05-02T12:30:00": True,
        "2026-05-02T13:00:00": False,
    }
    for text, allowed in cases.items():
        assert fetch_allowed(lib_only, at(SHANGHAI, text), SHANGHAI, windows, 6 * HOUR) == allowed
    now = at(SHANGHAI, "2026-05-02T09:00")
    assert fetch_allowed(lib_only, now, SHANGHAI, [], 0)  # no windows: always
    assert fetch_allowed(lib_only, now, SHANGHAI, ["00:00-24:00"], 0)


def test_a_near_slot_overrides_the_window() -> None:
    windows = ["00:30-06:00"]
    now = at(SHANGHAI, "2026-05-02T09:00")
    urgent = 6 * HOUR
    assert not fetch_allowed(want(now + 6 * HOUR), now, SHANGHAI, windows, urgent)
    assert fetch_allowed(want(now + 6 * HOUR - 1), now, SHANGHAI, windows, urgent)
    assert fetch_allowed(want(now - 60), now, SHANGHAI, windows, urgent)  # already begun
    assert not fetch_allowed(want(now + 2 * 86400), now, SHANGHAI, windows, urgent)
    assert not fetch_allowed(want(None), now, SHANGHAI, windows, urgent)


def test_next_window_start_without_daylight_saving() -> None:
    windows = ["22:00-06:00", "12:00-13:00"]
    now = at(SHANGHAI, "2026-05-02T09:00")
    assert next_window_start(now, SHANGHAI, windows) == at(SHANGHAI, "2026-05-02T12:00")
    now = at(SHANGHAI, "2026-05-02T13:00")
    assert next_window_start(now, SHANGHAI, windows) == at(SHANGHAI, "2026-05-02T22:00")
    inside = at(SHANGHAI, "2026-05-02T23:00")
    assert next_window_start(inside, SHANGHAI, windows) == inside
    assert next_window_start(inside, SHANGHAI, []) is None


def test_windows_follow_the_wall_clock_across_daylight_saving() -> None:
    # Europe/Berlin 2026: 29 March 02:00 CET -> 03:00 CEST (01:00 UTC);
    # 25 October 03:00 CEST -> 02:00 CET (01:00 UTC).
    night = ["01:00-05:00"]
    spring_eve = utc("2026-03-28T22:00")  # 23:00 CET
    assert next_window_start(spring_eve, BERLIN, night) == utc("2026-03-29T00:00")
    lib_only = want(None)
    assert fetch_allowed(lib_only, utc("2026-03-29T02:59"), BERLIN, night, 0)  # 04:59 CEST
    assert not fetch_allowed(lib_only, utc("2026-03-29T03:00"), BERLIN, night, 0)  # 05:00 CEST
    # a window starting in the skipped hour opens at the jump
    assert next_window_start(spring_eve, BERLIN, ["02:30-04:00"]) == utc("2026-03-29T01:00")
    # and one wholly inside the skipped hour opens the next night
    skipped = ["02:10-02:40"]
    assert next_window_start(spring_eve, BERLIN, skipped) == utc("2026-03-30T00:10")
    # the repeated hour in October: a window at 02:00 opens twice
    twice = ["02:00-02:30"]
    autumn_eve = utc("2026-10-24T22:00")  # 00:00 CEST
    assert next_window_start(autumn_eve, BERLIN, twice) == utc("2026-10-25T00:00")
    assert next_window_start(utc("2026-10-25T00:45"), BERLIN, twice) == utc("2026-10-25T01:00")
    assert fetch_allowed(lib_only, utc("2026-10-25T01:15"), BERLIN, twice, 0)
    # a normal day afterwards, local midnight-crossing window
    assert next_window_start(utc("2026-10-26T12:00"), BERLIN, ["23:30-00:30"]) == at(
        BERLIN, "2026-10-26T23:30"
    )


@pytest.mark.parametrize("tz", [BERLIN, SHANGHAI], ids=str)
@pytest.mark.parametrize("windows", [["02:30-04:00"], ["23:00-01:00", "02:10-02:40"]], ids=str)
def test_next_window_start_is_the_first_allowed_instant(tz: ZoneInfo, windows: list[str]) -> None:
    """Swept over both daylight-saving days: the answer is allowed, no minute before it is."""
    lib_only = want(None)
    for start in (utc("2026-03-28T18:00"), utc("2026-10-24T18:00")):
        for step in range(0, 40 * 3600, 37 * 60):
            now = start + step
            opens = next_window_start(now, tz, windows)
            assert opens is not None and opens >= now
            assert fetch_allowed(lib_only, opens, tz, windows, 0)
            t = now
            while t < opens - 1:
                assert not fetch_allowed(lib_only, t, tz, windows, 0), (now, t, opens)
                t += 60


# -- disk budget --------------------------------------------------------------------------------


def test_evictions_take_the_least_recently_played_and_never_a_kept_file() -> None:
    files = [
        OnDisk("kept-oldest.mp4", 500, last_played=1.0, mtime=1.0),
        OnDisk("played-recently.mp4", 300, last_played=900.0, mtime=10.0),
        OnDisk("never-played-old.mp4", 200, last_played=None, mtime=50.0),
        OnDisk("played-long-ago.mp4", 100, last_played=20.0, mtime=5.0),
    ]
    keep = {"kept-oldest.mp4"}
    assert choose_evictions(files, keep, 1) == ["played-long-ago.mp4"]
    assert choose_evictions(files, keep, 101) == ["played-long-ago.mp4", "never-played-old.mp4"]
    assert choose_evictions(files, keep, 600) == [
        "played-long-ago.mp4",
        "never-played-old.mp4",
        "played-recently.mp4",
    ]
    assert choose_evictions(files, keep, 601) is None  # only the kept file would do it
    assert choose_evictions(files, keep, 0) == []
    assert choose_evictions(files, keep, -5) == []
    assert choose_evictions([], (), 1) is None
    everything = {f.path for f in files}
    assert choose_evictions(files, everything, 1) is None


def test_bytes_to_free_respects_both_the_cap_and_the_free_space() -> None:
    mb = 1024 * 1024
    # fits both
    assert bytes_to_free(10 * mb, used=50 * mb, max_bytes=100 * mb, free=500 * mb, min_free=0) <= 0
    # over the content cap by 5 MB
    assert bytes_to_free(55 * mb, 50 * mb, 100 * mb, 500 * mb, 0) == 5 * mb
    # the filesystem would keep less than min_free
    assert bytes_to_free(10 * mb, 50 * mb, 100 * mb, 30 * mb, 25 * mb) == 5 * mb
    # both at once: the larger shortfall
    assert bytes_to_free(60 * mb, 50 * mb, 100 * mb, 62 * mb, 10 * mb) == 10 * mb
    # no cap: only the free space counts
    assert bytes_to_free(60 * mb, 10**12, None, 70 * mb, 10 * mb) == 0
    assert bytes_to_free(61 * mb, 10**12, None, 70 * mb, 10 * mb) == mb


# -- readiness ----------------------------------------------------------------------------------


def test_readiness_counts_and_what_is_missing_soon() -> None:
    now = 1_000_000.0
    wants = [
        Want("ready.mp4", 100, SHA["a"], (), now + 60, ("a",), ("A",)),
        Want("fetching.mp4", 1000, SHA["b"], (), now + 2 * HOUR, ("b",), ("B",)),
        Want("failed.mp4", 50, SHA["c"], (), now + 30 * HOUR, ("c",), ("C",)),
        Want("begun.mp4", 10, SHA["d"], (), now - 60, ("d",), ("D",)),
        Want("lib.mp4", 7, SHA["e"], (), None, ("e",), ("E",)),
        Want("window.mp4", None, None, (), now + HOUR, ("f",), ("F",)),
    ]
    state = {
        "ready.mp4": FileState("ready", 100),
        "fetching.mp4": FileState("fetching", 400),
        "failed.mp4": FileState("failed", 0, "hash_mismatch"),
        "window.mp4": FileState("waiting"),
    }
    r = readiness(wants, state, now, alarm_s=24 * HOUR)
    assert r == Readiness(
        needed=6,
        ready=1,
        fetching=1,
        failed=1,
        waiting=3,  # begun.mp4 and lib.mp4 are not begun, window.mp4 waits for its window
        bytes_left=600 + 50 + 10 + 7,
        soonest_missing=now - 60,
        missing_soon=("begun.mp4", "window.mp4", "fetching.mp4"),
    )
    assert r.to_dict()["missing_soon"] == ["begun.mp4", "window.mp4", "fetching.mp4"]
    assert r.to_dict()["needed"] == 6
    everything = {w.path: FileState("ready") for w in wants}
    done = readiness(wants, everything, now, 24 * HOUR)
    assert (done.ready, done.bytes_left, done.soonest_missing, done.missing_soon) == (
        6,
        0,
        None,
        (),
    )
    assert readiness([], {}, now, HOUR) == Readiness(0, 0, 0, 0, 0, 0, None, ())
