"""Log volume: what a day of normal operation writes to the journal, and what a fault storm does.

Runs the real agent (with MQTT to a private Mosquitto, probes on) and captures its stderr, which is
exactly what journald receives under systemd. Phase 1, normal: a few short courses, then idle;
the bytes per course and per idle minute are measured and a day is extrapolated (8 courses and
24 hours of idle time), labelled as such. Phase 2, fault storm: a schedule slot every few
seconds on a corrupt file, with retries, quarantine and restarts disabled so that every slot
fails; the log lines per minute show the rate limit at work.

    .venv/bin/python scripts/bench/log_volume.py [--idle 120]
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

from idle_footprint import start_broker  # noqa: E402

from agent.runtime.config import load_config  # noqa: E402
from agent.testing.media import write_garbage, write_wav  # noqa: E402
from tests.helpers import apply_schedule, one_off, schedule, start_agent, write_config  # noqa: E402


def events_bytes(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT COALESCE(SUM(LENGTH(ts)+LENGTH(level)+LENGTH(kind)+LENGTH(message)+LENGTH(COALESCE(data,''))),0) FROM events"
        ).fetchone()[0]
    finally:
        con.close()


def run_phase(
    tmp: Path, port: int, items, media, seconds: float, playback=None
) -> tuple[int, int, int]:
    cfg_path = write_config(
        tmp, log_level="info", mqtt={"host": "127.0.0.1", "port": port}, playback=playback or {}
    )
    cfg = load_config(cfg_path)
    for name, maker in media.items():
        maker(cfg.content_dir / name)
    apply_schedule(cfg.state_dir, schedule(1, items))
    log = tmp / "agent.log"
    proc = start_agent(cfg_path, log=log)
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    text = log.read_bytes()
    return len(text), text.count(b"\n"), events_bytes(cfg.db_path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=float, default=120.0, help="idle seconds measured in phase 1")
    ap.add_argument("--courses", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        broker, port = start_broker(tmp)
        try:
            # startup + shutdown alone
            (tmp / "a").mkdir()
            base, base_lines, _ = run_phase(tmp / "a", port, [], {}, 5)
            # idle: startup + N seconds of nothing
            (tmp / "b").mkdir()
            idle, idle_lines, _ = run_phase(tmp / "b", port, [], {}, 5 + args.idle)
            # courses: startup + N short courses
            (tmp / "c").mkdir()
            start = time.time() + 4
            items = [
                one_off(f"c{i}", start + i * 6, "c.wav", slot_minutes=0.05)
                for i in range(args.courses)
            ]
            busy, busy_lines, busy_events = run_phase(
                tmp / "c", port, items, {"c.wav": lambda p: write_wav(p, 2.0)}, 6 + args.courses * 6
            )
            # fault storm: a failing slot every 3 s for 2 minutes
            (tmp / "d").mkdir()
            start = time.time() + 3
            storm_items = [
                one_off(f"f{i}", start + i * 3, "bad.mp4", slot_minutes=0.05) for i in range(40)
            ]
            storm, storm_lines, storm_events = run_phase(
                tmp / "d",
                port,
                storm_items,
                {"bad.mp4": write_garbage},
                3 + 40 * 3 + 2,
                playback={
                    "retries": 0,
                    "quarantine_after_errors": 100,
                    "restart_player_after_errors": 100,
                    "restart_process_after_errors": 100,
                },
            )
        finally:
            broker.terminate()
            broker.wait(10)
    per_idle_min = max(0, idle - base) / (args.idle / 60)
    per_course = max(0, busy - base) / args.courses
    day = base + 8 * per_course + 24 * 60 * per_idle_min
    out = {
        "startup_and_stop_bytes": base,
        "startup_lines": base_lines,
        "idle_bytes_per_minute": round(per_idle_min, 1),
        "bytes_per_course": round(per_course, 1),
        "day_estimate_bytes": round(day),
        "storm_failures": 40,
        "storm_log_bytes": storm,
        "storm_log_lines": storm_lines,
        "storm_event_log_bytes": storm_events,
    }
    print(
        f"measured: startup+stop {base} B ({base_lines} lines); idle {per_idle_min:.1f} B/min; "
        f"{per_course:.0f} B per course"
    )
    print(f"extrapolated day (8 courses, 24 h idle, one start): {day / 1024:.1f} KB of journal")
    print(
        f"fault storm (40 failing slots in 2 min): {storm} B, {storm_lines} lines in the journal; "
        f"{storm_events} B in the event log"
    )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
