"""A course played by the installed agent, start to record: the demo's path without a county.

Run by scripts/test-arch inside a Debian root with the .deb installed (and by
scripts/bench/deb_vs_venv_rss.py): writes a config with dummy VLC outputs, a WAV course and a
one-slot schedule into a scratch folder, starts ``/usr/bin/station-agent`` (or ``--agent CMD``),
and waits until the record's outcome is ``completed``. Then runs ``stationctl check`` against the
running agent and stops it with SIGTERM. Prints one JSON line of timings at the end; exits 1 if
the record never completed or the agent did not stop cleanly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

LIB = "/usr/lib/station-agent"
TZ = ZoneInfo("Asia/Shanghai")
DUMMY_VLC = ["--vout=dummy", "--aout=dummy", "--no-video-title-show", "--quiet"]


def write_setup(work: Path, course_seconds: float, lead_seconds: float) -> tuple[Path, float]:
    """Config, media and schedule in ``work``; returns the config and the slot's start time."""
    import yaml

    from agent.adapters.schedule_files import ScheduleStore
    from agent.testing.media import write_wav

    for sub in ("content", "state"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    cfg = {
        "terminal": "t-arch",
        "county": "c-01",
        "timezone": "Asia/Shanghai",
        "content_dir": "content",
        "state_dir": "state",
        "schedule_poll_seconds": 0.5,
        "vlc": {"options": DUMMY_VLC, "preroll_seconds": 2, "start_timeout_seconds": 30},
        "playback": {"checkpoint_seconds": 5, "retry_delay_seconds": 1},
        # No network in a test root: the gateway probe would look for a real gateway.
        "probes": {"gateway": {"enabled": False}},
    }
    config = work / "agent.yaml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    write_wav(work / "content" / "course.wav", course_seconds, tone_hz=440)
    start = time.time() + lead_seconds
    at = dt.datetime.fromtimestamp(start, TZ).replace(tzinfo=None).isoformat(timespec="seconds")
    doc = {
        "version": 1,
        "timezone": "Asia/Shanghai",
        "items": [
            {
                "id": "arch-1",
                "at": at,
                "course": {"id": "ARCH-1", "title": "架构测试 第一讲", "media": "course.wav"},
            }
        ],
    }
    ScheduleStore(work / "state").apply(json.dumps(doc).encode(), "test-arch", layer="terminal")
    return config, start


def record_outcome(db: Path) -> str | None:
    """The newest record's outcome, or None while there is none (or the store is being made)."""
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT outcome FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/play", help="scratch folder (emptied first)")
    ap.add_argument("--agent", default="/usr/bin/station-agent", help="the daemon command")
    ap.add_argument("--stationctl", default="/usr/bin/stationctl", help="'' to skip the check")
    ap.add_argument("--course-seconds", type=float, default=4.0)
    ap.add_argument("--lead-seconds", type=float, default=20.0, help="slot start after setup")
    ap.add_argument("--timeout", type=float, default=240.0, help="give up after this long")
    ap.add_argument("--lib", default=LIB, help="where the agent package is (for the setup)")
    args = ap.parse_args()

    sys.path[0:0] = [args.lib, os.path.join(args.lib, "vendor")]
    work = Path(args.work)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    config, slot = write_setup(work, args.course_seconds, args.lead_seconds)
    db = work / "state" / "agent.db"

    t0 = time.monotonic()
    log = open(work / "agent.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*shlex.split(args.agent), "-c", str(config)], stdout=log, stderr=log)
    sock = work / "state" / "control.sock"
    ready = None
    outcome = None
    deadline = t0 + args.timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ready is None and sock.exists():
            ready = time.monotonic() - t0
        outcome = record_outcome(db)
        if outcome not in (None,):
            break
        time.sleep(0.2)
    result: dict[str, object] = {
        "agent_ready_s": round(ready, 2) if ready is not None else None,
        "record_outcome": outcome,
        "record_after_slot_s": round(time.time() - slot, 1),
    }
    if args.stationctl and proc.poll() is None:
        c0 = time.monotonic()
        chk = subprocess.run(
            [
                *shlex.split(args.stationctl),
                "-c",
                str(config),
                "--lang",
                "en",
                "check",
                "--skip",
                "broker,display",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(chk.stdout + chk.stderr, end="")
        result["check_exit"] = chk.returncode
        result["check_s"] = round(time.monotonic() - c0, 1)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result["agent_exit"] = proc.returncode
    log.close()
    ok = outcome == "completed" and proc.returncode == 0 and result.get("check_exit", 0) == 0
    if not ok:
        print((work / "agent.log").read_text(errors="replace")[-4000:], file=sys.stderr)
    print("PLAY " + json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
