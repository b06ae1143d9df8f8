"""Shared test helpers: configs, schedules and agent processes on this machine."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
DUMMY_VLC = ["--vout=dummy", "--aout=dummy", "--no-video-title-show", "--quiet"]


def write_config(dirpath: Path, **overrides: Any) -> Path:
    """A complete agent config in ``dirpath`` (content/ and state/ beside it)."""
    cfg: dict[str, Any] = {
        "terminal": "t-001",
        "county": "c-01",
        "timezone": "Asia/Shanghai",
        "content_dir": "content",
        "state_dir": "state",
        "schedule_poll_seconds": 0.5,
        "vlc": {
            "options": DUMMY_VLC,
            "preroll_seconds": 2,
            "stall_seconds": 4,
            "start_timeout_seconds": 5,
        },
        "playback": {"checkpoint_seconds": 5, "retry_delay_seconds": 1},
        # Tests touch loopback only: the default gateway probe would connect to the real gateway.
        "probes": {"gateway": {"enabled": False}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = Path(dirpath) / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    (Path(dirpath) / "content").mkdir(exist_ok=True)
    return path


def local_iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, TZ).replace(tzinfo=None).isoformat(timespec="milliseconds")


def one_off(
    item_id: str,
    start: float,
    media: str,
    *,
    course_id: str | None = None,
    title: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    course = {"id": course_id or item_id, "title": title or f"Course {item_id}", "media": media}
    course.update(extra.pop("course", {}))
    return {"id": item_id, "at": local_iso(start), "course": course, **extra}


def schedule(version: int, items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"version": version, "timezone": "Asia/Shanghai", "items": items, **extra}


def apply_schedule(state_dir: Path, doc: dict[str, Any], layer: str = "terminal") -> Any:
    from agent.adapters.schedule_files import ScheduleStore

    return ScheduleStore(state_dir).apply(json.dumps(doc).encode(), "test", layer=layer)


def start_agent(
    config: Path, *extra: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "-c", str(config), *extra],
        cwd=ROOT,
        stdout=out,
        stderr=out,
        env={**os.environ, **(env or {})},
    )


def wait_for(
    predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def tmpfs(mnt: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted on ``mnt`` (skips the test where mounting is not allowed)."""
    mnt.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def a_record(seq: int, **kw: object) -> Any:
    """A record with plausible defaults; ``kw`` overrides any field."""
    base: dict[str, object] = dict(
        record_id=f"rec-{seq:04d}",
        seq=seq,
        terminal="t-001",
        course_id="c",
        title="T",
        media="m.mp4",
        trigger="schedule",
        clock_state="synced",
        boot_id="b",
    )
    base.update(kw)
    from agent.domain.records import Record

    return Record(**base)  # type: ignore[arg-type]
