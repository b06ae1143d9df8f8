"""The applied manifest layers on disk: versions only go up, a bad document is rejected whole and
the previous one kept, a document for someone else is refused, and a damaged stored file neither
stops the terminal nor lets an older version in."""

from __future__ import annotations

import json
import threading
from typing import Any

from agent.adapters.manifest_files import ManifestStore, parse_manifest
from agent.domain.manifest import ManifestRejected

SHA = "c" * 64


def doc(version: int, *course_ids: str, **top: Any) -> bytes:
    courses = [
        {
            "id": cid,
            "title": f"课程 {cid}",
            "files": [
                {
                    "path": f"{cid}.mp4",
                    "size": 10,
                    "sha256": SHA,
                    "sources": [f"http://county.example/{cid}.mp4"],
                }
            ],
        }
        for cid in course_ids or ("c1",)
    ]
    return json.dumps({"version": version, "courses": courses, **top}, ensure_ascii=False).encode()


def test_applied_then_stale_for_the_same_or_an_older_version(tmp_path) -> None:
    store = ManifestStore(tmp_path)
    first = store.apply(doc(5, "a", "b"), "mqtt", layer="county")
    assert (first.status, first.layer, first.version, first.previous_version) == (
        "applied",
        "county",
        5,
        None,
    )
    assert first.doc is not None and first.doc.layer == "county"
    assert store.path("county") == tmp_path / "library" / "county.json"
    assert store.floor("county") == 5
    assert store.floor_path("county").read_text() == "5\n"
    stored = store.load("county")
    assert stored is not None and [c.id for c in stored.courses] == ["a", "b"]
    assert stored.layer == "county"

    for version in (5, 4):
        r = store.apply(doc(version, "z"), "replay", layer="county")
        assert (r.status, r.previous_version) == ("stale", 5), r
        assert str(version) in r.reasons[0] and "5" in r.reasons[0]
    assert [c.id for c in store.load("county").courses] == ["a", "b"]  # type: ignore[union-attr]

    newer = store.apply(doc(6, "c"), "mqtt", layer="county")
    assert (newer.status, newer.previous_version) == ("applied", 5)
    assert store.versions() == {"county": 6}
    assert not [p.name for p in store.dir.iterdir() if ".tmp" in p.name]  # atomic, no leftovers


def test_layers_are_independent_and_default_to_the_terminal(tmp_path) -> None:
    store = ManifestStore(tmp_path)
    assert store.apply(doc(3, "t"), "usb").layer == "terminal"
    assert store.apply(doc(1, "c"), "mqtt", layer="county").status == "applied"
    assert store.apply(doc(2, "x", layer="county"), "inbox").layer == "county"
    assert store.versions() == {"terminal": 3, "county": 2}
    assert sorted(store.load_all()) == ["county", "terminal"]


def test_a_bad_document_is_rejected_whole_and_the_previous_one_kept(tmp_path) -> None:
    store = ManifestStore(tmp_path)
    store.apply(doc(1, "good"), "a")
    before = store.path("terminal").read_bytes()
    bad = json.loads(doc(2, "ok", "bad"))
    bad["courses"][1]["files"][0]["sha256"] = "nothex"
    r = store.apply(json.dumps(bad).encode(), "mqtt")
    assert (r.status, r.version) == ("rejected", 2)
    assert any("courses[1].files[0].sha256" in p for p in r.reasons), r.reasons
    assert store.path("terminal").read_bytes() == before
    assert store.floor("terminal") == 1
    garbage = store.apply(b"{not json", "mqtt")
    assert (garbage.status, garbage.version) == ("rejected", None)
    assert garbage.reasons and "mqtt" in garbage.reasons[0]
    assert store.apply(doc(2, "ok"), "retry").status == "applied"


def test_a_document_for_another_county_terminal_or_layer_is_refused(tmp_path) -> None:
    store = ManifestStore(tmp_path)
    me = {"county": "c-01", "terminal": "t-001"}
    cases = [
        (doc(1, county="c-02"), None, "county 'c-02'"),
        (doc(1, terminal="t-999"), None, "terminal 't-999'"),
        (doc(1, layer="terminal"), "county", "layer 'terminal'"),
        (doc(1, terminal="t-001"), "county", "county-layer manifest must not name a terminal"),
    ]
    for data, layer, words in cases:
        r = store.apply(data, "mqtt", layer=layer, **me)
        assert r.status == "rejected" and any(words in x for x in r.reasons), r
    assert not store.path("terminal").exists() and not store.path("county").exists()
    assert store.floor("terminal") is None
    ok = store.apply(doc(1, county="c-01", terminal="t-001"), "mqtt", **me)
    assert ok.status == "applied"


def test_a_damaged_stored_file_is_kept_aside_and_lets_no_older_version_in(tmp_path) -> None:
    store = ManifestStore(tmp_path)
    store.apply(doc(10), "a")
    damaged = b'{"version": 10, "courses": [{"id": "\x00'
    store.path("terminal").write_bytes(damaged)
    try:
        store.load("terminal")
        raise AssertionError("the damaged manifest was read")
    except ManifestRejected as exc:
        assert "manifest rejected" in str(exc)
    assert store.load_all() == {}  # left out, not raised
    assert store.versions() == {"terminal": 10}  # the floor still says 10
    old = store.apply(doc(9), "replay")
    assert old.status == "stale" and "cannot be read" in old.reasons[0], old
    again = store.apply(doc(10), "retained")
    assert (again.status, again.version) == ("applied", 10)
    assert store.aside_path("terminal").read_bytes() == damaged
    assert store.load("terminal").version == 10  # type: ignore[union-attr]
    assert store.apply(doc(10), "replay").status == "stale"  # held again: not twice


def test_a_lost_floor_falls_back_to_the_stored_document(tmp_path) -> None:
    store = ManifestStore(tmp_path)
    store.apply(doc(7), "a")
    store.floor_path("terminal").write_text("garbage\n")
    assert store.floor("terminal") is None
    assert store.apply(doc(7), "same").status == "stale"
    assert store.apply(doc(6), "older").status == "stale"
    store.floor_path("terminal").unlink()
    assert store.versions() == {"terminal": 7}
    assert store.apply(doc(8), "newer").status == "applied"
    assert store.floor("terminal") == 8


def test_a_built_document_can_be_applied_as_it_is(tmp_path) -> None:
    store = ManifestStore(tmp_path)
    parsed = parse_manifest(doc(4, "x"), "usb")
    r = store.apply(parsed, "usb", layer="county")
    assert r.status == "applied" and r.doc is parsed
    r = store.apply(b"", "usb", parsed=parse_manifest(doc(5, "y"), "usb"), layer="county")
    assert r.status == "applied"
    assert [c.id for c in store.load("county").courses] == ["y"]  # type: ignore[union-attr]


def test_two_writers_never_apply_a_version_twice_or_go_backwards(tmp_path) -> None:
    """The agent and stationctl each hold their own store on the same folder."""
    results: list[tuple[int, str, int | None]] = []
    lock = threading.Lock()

    def writer(versions: range) -> None:
        store = ManifestStore(tmp_path)
        for v in versions:
            r = store.apply(doc(v, f"c{v}"), "w")
            with lock:
                results.append((v, r.status, r.previous_version))

    threads = [threading.Thread(target=writer, args=(range(1, 41),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    applied = [v for v, s, _ in results if s == "applied"]
    assert len(applied) == len(set(applied)), applied
    assert all(p is None or p < v for v, s, p in results if s == "applied"), results
    assert all(p is not None and p >= v for v, s, p in results if s == "stale"), results
    assert 40 in applied
    store = ManifestStore(tmp_path)
    assert store.floor("terminal") == 40
    assert [c.id for c in store.load("terminal").courses] == ["c40"]  # type: ignore[union-attr]
