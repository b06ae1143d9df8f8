"""Start accuracy: scheduled local time -> VLC "playing", over many slots, with real libvlc.

Runs the real runtime (core thread, VLC worker, SQLite store) in this process with dummy
outputs, schedules N one-off slots a couple of seconds apart, and reads the records back:
started_at (the wall time of VLC's Playing event) minus planned_start. Two passes: with the
preroll (the default) and cold (preroll disabled), to show what the preroll buys.

    .venv/bin/python scripts/bench/start_accuracy.py [--slots 30] [--gap 3.5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.adapters.sqlite.store import Store  # noqa: E402
from agent.runtime.config import load_config  # noqa: E402
from agent.runtime.loop import Runtime  # noqa: E402
from agent.testing.media import write_wav  # noqa: E402
from tests.helpers import apply_schedule, one_off, schedule, write_config  # noqa: E402


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def run(slots: int, gap: float, preroll: bool) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(write_config(Path(tmp), vlc={"preroll_seconds": 1.0}))
        write_wav(cfg.content_dir / "short.wav", 0.5, tone_hz=440)
        first = time.time() + 3.0
        items = [
            one_off(f"s{i}", first + i * gap, "short.wav", slot_minutes=0.05) for i in range(slots)
        ]
        apply_schedule(cfg.state_dir, schedule(1, items))
        rt = Runtime(cfg)
        rt.open()
        # Records keep milliseconds; catch the Playing events at full precision as well.
        playing: dict[str, float] = {}
        post = rt.player.post

        def spy(ev):
            if ev.kind == "playing":
                playing.setdefault(ev.token, ev.wall)
            post(ev)

        rt.player.post = spy
        if not preroll:
            rt.core.s.preroll_s = 0.0
        t = threading.Thread(target=rt.run, kwargs={"duration": 3.0 + slots * gap + 2.0})
        t.start()
        t.join()
        store = Store(cfg.db_path, readonly=True)
        recs = store.records()
        store.close()
    bad = [r for r in recs if r.outcome != "completed" or not r.started_at]
    if bad:
        print(
            f"warning: {len(bad)} slot(s) did not complete: {[(r.item_id, r.outcome, r.reason) for r in bad]}"
        )
    delays = []
    for r in recs:
        if r.started_at:
            wall = playing.get(r.record_id, ts(r.started_at))
            delays.append((wall - ts(r.planned_start)) * 1000)
    return delays


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slots", type=int, default=30)
    ap.add_argument("--gap", type=float, default=3.5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = {}
    for name, preroll in (("prerolled", True), ("cold", False)):
        delays = run(args.slots, args.gap, preroll)
        out[name] = {
            "slots": len(delays),
            "p50_ms": round(statistics.median(delays), 2),
            "p99_ms": round(pct(delays, 99), 2),
            "max_ms": round(max(delays), 2),
            "min_ms": round(min(delays), 2),
        }
        print(
            f"{name:>9}: {len(delays)} slots  p50 {out[name]['p50_ms']:7.2f} ms  "
            f"p99 {out[name]['p99_ms']:7.2f} ms  min {out[name]['min_ms']:6.2f}  max {out[name]['max_ms']:7.2f}"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
