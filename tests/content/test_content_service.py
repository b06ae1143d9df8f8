"""The content service inside a real runtime: manifests applied, files fetched from a real nginx,
readiness in the status, the content alarms, the disk budget on a real tmpfs, download windows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from agent.adapters.manifest_files import parse_untrusted_manifest
from agent.adapters.sqlite.store import Store
from agent.runtime.config import load_config
from agent.runtime.content_start import start_content
from agent.runtime.loop import Runtime
from agent.testing.nginx import write_random
from tests.helpers import TZ, apply_schedule, one_off, schedule, tmpfs, wait_for, write_config


def manifest(version: int, files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    courses = [
        {"id": f"C{i}", "title": f"课程 {i}", "category": "农业", "files": [f]}
        for i, f in enumerate(files)
    ]
    return {"version": version, "courses": courses, **extra}


def served(nginx, name: str, size: int) -> dict[str, Any]:
    sha = write_random(nginx.root / name, size)
    return {"path": f"courses/{name}", "size": size, "sha256": sha, "sources": [nginx.url(name)]}


def start(tmp_path: Path, **content: Any) -> tuple[Runtime, threading.Thread]:
    cfg = load_config(write_config(tmp_path, content={"retry_seconds": 0.5, **content}))
    rt = Runtime(cfg)
    rt.open()
    start_content(rt)
    t = threading.Thread(target=rt.run, kwargs={"duration": 120}, daemon=True)
    t.start()
    wait_for(rt.ready.is_set, 5, 0.02, "the loop to start")
    return rt, t


def stop(rt: Runtime, t: threading.Thread) -> None:
    rt.request_stop()
    t.join(20)
    assert not t.is_alive()


def apply_manifest(rt: Runtime, doc: dict[str, Any], layer: str = "county") -> Any:
    data = json.dumps(doc, ensure_ascii=False).encode()
    parsed = parse_untrusted_manifest(data, "test")
    return rt.call(lambda: rt.library.apply(data, "test", layer, parsed=parsed))


def give_slots(rt: Runtime, version: int, *slots: tuple[str, float, str, str]) -> None:
    """Apply a terminal schedule of one-off slots (item, start, media, course) and have the
    running agent take it."""
    items = [one_off(i, at, media, course_id=course) for i, at, media, course in slots]
    apply_schedule(rt.cfg.state_dir, schedule(version, items))
    rt.call(lambda: rt.reload_schedules("test"))


def content(rt: Runtime) -> dict[str, Any]:
    return rt.call(lambda: rt.status_snapshot())["content"]


def file_status(rt: Runtime, path: str) -> str | None:
    for row in content(rt)["files"]:
        if row["path"] == path:
            return row["status"]
    return None


def alarms(rt: Runtime) -> dict[str, bool]:
    s = Store(rt.cfg.db_path, readonly=True)
    try:
        rows = s.db.execute("SELECT name, cleared_at FROM alarms ORDER BY id")
        return {name: cleared is None for name, cleared in rows}
    finally:
        s.close()


def test_a_scheduled_course_is_fetched_verified_and_reported_ready(tmp_path, nginx) -> None:
    f = served(nginx, "ph-01.bin", 3 * 1024 * 1024)
    rt, t = start(tmp_path)
    try:
        give_slots(rt, 1, ("w1", time.time() + 3 * 3600, f["path"], "PH-01"))
        assert apply_manifest(rt, manifest(1, [f])).status == "applied"
        wait_for(lambda: file_status(rt, f["path"]) == "ready", 30, 0.1, "the file to be ready")
        landed = rt.cfg.content_dir / f["path"]
        assert landed.stat().st_size == f["size"]
        assert not list((rt.cfg.content_dir / ".partial").glob("*.part"))
        summary = rt.call(rt.summary)["content"]
        assert summary["needed"] == 1 and summary["ready"] == 1 and summary["bytes_left"] == 0
        row = next(r for r in content(rt)["files"] if r["path"] == f["path"])
        assert row["slot"] is not None and "PH-01" in row["courses"]
    finally:
        stop(rt, t)
    s = Store(rt.cfg.db_path, readonly=True)
    try:
        kinds = [k for (k,) in s.db.execute("SELECT kind FROM events")]
    finally:
        s.close()
    assert "manifest_applied" in kinds and "content_fetched" in kinds


def test_a_library_course_can_be_played_on_demand_once_fetched(tmp_path, nginx) -> None:
    from agent.domain.core import PlayCommand, Reply

    f = served(nginx, "lib.bin", 64 * 1024)
    rt, t = start(tmp_path)
    try:
        apply_manifest(rt, manifest(1, [f]))
        wait_for(lambda: file_status(rt, f["path"]) == "ready", 30, 0.1, "the library file")
        actions = rt.submit(PlayCommand("C0", None, None, trigger="admin"))
        reply = next(a for a in actions if isinstance(a, Reply))
        assert reply.ok, reply.message
    finally:
        stop(rt, t)


def test_content_missing_is_raised_for_a_near_slot_and_cleared_when_the_file_lands(
    tmp_path, nginx
) -> None:
    f = served(nginx, "late.bin", 256 * 1024)
    rt, t = start(tmp_path)
    try:
        give_slots(rt, 1, ("w1", time.time() + 2 * 3600, f["path"], "L-1"))
        wait_for(lambda: alarms(rt).get("content_missing") is True, 30, 0.1, "content_missing")
        assert file_status(rt, f["path"]) == "missing"
        apply_manifest(rt, manifest(1, [f]))
        wait_for(lambda: alarms(rt).get("content_missing") is False, 30, 0.1, "the alarm cleared")
        assert (rt.cfg.content_dir / f["path"]).is_file()
    finally:
        stop(rt, t)


def test_a_bad_manifest_is_rejected_whole_and_the_previous_one_stays(tmp_path, nginx) -> None:
    f = served(nginx, "a.bin", 1024)
    rt, t = start(tmp_path)
    try:
        assert apply_manifest(rt, manifest(1, [f])).status == "applied"
        bad = manifest(2, [{**f, "path": "../etc/passwd"}])
        data = json.dumps(bad).encode()
        parsed = rt.library.read(data, "bad")
        res = rt.call(lambda: rt.library.apply(data, "bad", "county", parsed=parsed))
        assert res.status == "rejected"
        assert any("path" in r for r in res.reasons), res.reasons
        assert rt.call(rt.library.versions) == {"county": 1}
        assert "C0" in rt.call(rt.library.courses)
    finally:
        stop(rt, t)


def test_failed_fetches_back_off_and_raise_content_fetch_failed(tmp_path, nginx) -> None:
    f = served(nginx, "gone.bin", 1024)
    (nginx.root / "gone.bin").unlink()  # every mirror answers 404
    rt, t = start(tmp_path, alarm_after_tries=2, retry_seconds=0.2, max_retry_seconds=1)
    try:
        apply_manifest(rt, manifest(1, [f]))
        wait_for(lambda: alarms(rt).get("content_fetch_failed") is True, 30, 0.1, "the fetch alarm")
        assert file_status(rt, f["path"]) == "failed"
        write_random(nginx.root / "gone.bin", 1024)  # a different file: fails its hash
        time.sleep(1.5)
        assert not (rt.cfg.content_dir / f["path"]).exists()
    finally:
        stop(rt, t)


def test_the_disk_budget_evicts_old_files_but_never_scheduled_ones(tmp_path, nginx) -> None:
    """A real 6 MB tmpfs holds the content folder. Two old unscheduled files and one scheduled
    file are there; a new scheduled 2 MB file needs room: the old files go (least recently
    played first), the scheduled one stays. Then a file that cannot fit raises content_no_space."""
    mnt = tmp_path / "content"
    with tmpfs(mnt, "6m"):
        old_a = mnt / "old" / "a.bin"
        old_b = mnt / "old" / "b.bin"
        write_random(old_a, 1536 * 1024)
        write_random(old_b, 1536 * 1024)
        keep = served(nginx, "keep.bin", 1024 * 1024)
        (mnt / "courses").mkdir()
        (mnt / keep["path"]).write_bytes((nginx.root / "keep.bin").read_bytes())
        new = served(nginx, "new.bin", 2 * 1024 * 1024)
        now = time.time()
        rt, t = start(tmp_path, min_free_mb=0.5)
        try:
            give_slots(
                rt,
                1,
                ("k", now + 5 * 3600, keep["path"], "K"),
                ("n", now + 6 * 3600, new["path"], "N"),
            )
            apply_manifest(rt, manifest(1, [keep, new]))
            wait_for(lambda: file_status(rt, new["path"]) == "ready", 30, 0.1, "the new file")
            assert (mnt / keep["path"]).is_file(), "a scheduled file was evicted"
            assert not (old_a.exists() and old_b.exists()), "nothing was evicted"
            huge = served(nginx, "huge.bin", 5 * 1024 * 1024)
            give_slots(
                rt,
                2,
                ("k", now + 5 * 3600, keep["path"], "K"),
                ("n", now + 6 * 3600, new["path"], "N"),
                ("h", now + 7 * 3600, huge["path"], "H"),
            )
            apply_manifest(rt, manifest(2, [keep, new, huge]))
            wait_for(
                lambda: alarms(rt).get("content_no_space") is True, 30, 0.1, "content_no_space"
            )
            assert (mnt / keep["path"]).is_file() and (mnt / new["path"]).is_file()
            assert not (mnt / huge["path"]).exists()
        finally:
            stop(rt, t)


def _window_away(hours_from_now: float) -> str:
    start = dt.datetime.now(TZ) + dt.timedelta(hours=hours_from_now)
    end = start + dt.timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def test_outside_the_windows_only_urgent_files_are_fetched(tmp_path, nginx) -> None:
    near = served(nginx, "near.bin", 64 * 1024)
    far = served(nginx, "far.bin", 64 * 1024)
    now = time.time()
    rt, t = start(tmp_path, windows=[_window_away(4)], urgent_hours=2)
    try:
        give_slots(
            rt,
            1,
            ("n", now + 1 * 3600, near["path"], "N"),
            ("f", now + 30 * 3600, far["path"], "F"),
        )
        apply_manifest(rt, manifest(1, [near, far]))
        wait_for(lambda: file_status(rt, near["path"]) == "ready", 30, 0.1, "the urgent file")
        wait_for(lambda: file_status(rt, far["path"]) == "waiting", 10, 0.1, "the far file waits")
        assert not (rt.cfg.content_dir / far["path"]).exists()
    finally:
        stop(rt, t)


def test_the_satellite_folder_feeds_the_content_folder_once_a_file_is_complete(
    tmp_path, nginx
) -> None:
    """The datacast receiver writes a course in pieces over a few seconds; the agent takes it
    only once it is complete and matches the manifest, and never fetches it over the line."""
    intake = tmp_path / "satellite"
    intake.mkdir()
    data = os.urandom(512 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    f = {
        "path": "courses/sat.bin",
        "size": len(data),
        "sha256": sha,
        "sources": [nginx.url("not-there.bin")],  # the line has nothing: only the dish does
    }
    rt, t = start(tmp_path, intake_dir=str(intake), intake_poll_seconds=0.2, retry_seconds=60)
    try:
        apply_manifest(rt, manifest(1, [f]))
        landed = rt.cfg.content_dir / f["path"]
        received = intake / "datacast" / "sat.bin"
        received.parent.mkdir()
        with received.open("wb") as out:
            for i in range(0, len(data), 64 * 1024):
                out.write(data[i : i + 64 * 1024])
                out.flush()
                time.sleep(0.3)
                assert not landed.exists(), "a half-written file was taken"
        wait_for(lambda: file_status(rt, f["path"]) == "ready", 30, 0.1, "the satellite file")
        assert landed.read_bytes() == data
        assert not received.exists(), "the satellite copy was not moved away"
    finally:
        stop(rt, t)


def test_the_http_client_is_imported_only_when_a_download_starts() -> None:
    """urllib3 and ssl cost megabytes an offline terminal with every file in place never needs."""
    import subprocess
    import sys

    code = (
        "import sys, agent.cli.daemon, agent.runtime.content_start; "
        "print(sorted(m for m in ('urllib3', 'ssl', 'nacl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
