"""How fast ``stationctl status`` answers on a store of 100,000 viewing records (issue 5: < 300 ms).

Builds a station whose store holds N records (a year of history, one every few minutes, with
attendance, misses and skips), 20,000 events, alarms and 1,000 unsent messages, plus an applied
schedule with media. Then measures ``stationctl status``:

- whole command: a new process each time (``python -m agent.cli.stationctl status``), interpreter
  start and imports included, which is what the admin waits for;
- in-process: ``agent.cli.stationctl.main(["status"])`` in a warm interpreter (the work itself);

each with the agent stopped (facts from the store and schedule files) and with the real agent
running on that store (facts over the control socket). Prints p50/p95/max in milliseconds.

    .venv/bin/python scripts/bench/stationctl_status.py [--records 100000] [--runs 30] [--json]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.adapters.sqlite.store import Store  # noqa: E402
from agent.domain.records import RECORD_COLUMNS, Record, utc_text  # noqa: E402
from agent.testing.media import write_wav  # noqa: E402
from tests.helpers import apply_schedule, one_off, schedule, write_config  # noqa: E402

LIMIT_MS = 300.0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def build(root: Path, n: int) -> Path:
    config = write_config(root)
    for name in ("a.wav", "b.wav", "c.wav"):
        write_wav(root / "content" / name, 1.0)
    state = root / "state"
    state.mkdir(exist_ok=True)
    now = time.time()
    items = [
        one_off(f"s{i}", now + 3600 * (i + 1), f"{'abc'[i % 3]}.wav", title=f"课程 {i}")
        for i in range(10)
    ]
    assert apply_schedule(state, schedule(1, items)).status == "applied"
    store = Store(state / "agent.db")
    step = 365 * 86400 / n
    outcomes = ["completed"] * 7 + ["missed", "skipped", "stopped"]
    cols = ", ".join(RECORD_COLUMNS)
    marks = ", ".join("?" for _ in RECORD_COLUMNS)
    rows = []
    for i in range(n):
        t = now - (n - i) * step
        outcome = outcomes[i % len(outcomes)]
        shown = outcome in ("completed", "stopped")
        rec = Record(
            record_id=str(uuid.UUID(int=i + 1)),
            seq=i + 1,
            terminal="t-001",
            course_id=f"course-{i % 40}",
            title=f"农业技术课程 {i % 40}",
            media="a.wav",
            trigger="schedule" if i % 5 else "admin",
            clock_state="synced",
            boot_id="boot",
            occurrence_key=f"terminal/x{i}/{i}",
            planned_start=utc_text(t),
            started_at=utc_text(t) if shown else None,
            ended_at=utc_text(t + 1800),
            played_seconds=1800.0 if shown else 0.0,
            media_duration=1800.0,
            completion=1.0 if outcome == "completed" else (0.3 if shown else 0.0),
            outcome=outcome,
            reason=None if shown else "the terminal was off at the time",
            attendance=(i % 30) if shown and i % 3 == 0 else None,
        )
        rows.append([getattr(rec, c) for c in RECORD_COLUMNS])
    with store.transaction() as conn:
        conn.executemany(f"INSERT INTO records({cols}) VALUES({marks})", rows)
        conn.executemany(
            "INSERT INTO events(ts, level, kind, message, data) VALUES(?,?,?,?,?)",
            [
                (
                    utc_text(now - (20000 - i) * 60),
                    "info",
                    "record_completed",
                    "课程: completed",
                    None,
                )
                for i in range(20000)
            ],
        )
        store.add_event("info", "agent_stopped", "Agent stopped", conn=conn)
        for i in range(1000):
            store.enqueue("record", f"m{i}", "record", {"seq": i}, conn=conn)
        for i in range(30):
            conn.execute(
                "INSERT INTO alarms(name, severity, raised_at, cleared_at) VALUES(?,?,?,?)",
                (
                    "link_down",
                    "critical",
                    utc_text(now - i * 86400),
                    utc_text(now - i * 86400 + 600),
                ),
            )
    store.close()
    return config


def whole_command(config: Path, runs: int, lang: str) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "agent.cli.stationctl",
                "-c",
                str(config),
                "--lang",
                lang,
                "status",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
        )
        times.append((time.perf_counter() - t0) * 1000)
        assert r.returncode == 0, r.stderr.decode()
    return times


def bare(argv: list[str], runs: int) -> list[float]:
    """For scale: an interpreter that does nothing, and one that imports the agent's config."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def in_process(config: Path, runs: int, lang: str) -> list[float]:
    from agent.cli.stationctl import main

    times = []
    for _ in range(runs + 2):
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            code = main(["-c", str(config), "--lang", lang, "status"])
        times.append((time.perf_counter() - t0) * 1000)
        assert code == 0
    return times[2:]  # the first calls import the command modules


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 1),
        "p95_ms": round(pct(values, 95), 1),
        "max_ms": round(max(values), 1),
        "runs": len(values),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--lang", default="zh_CN")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # An installed package has its bytecode compiled (pip does it); this tree may run with
    # PYTHONDONTWRITEBYTECODE, which would make every run compile every module again.
    compileall.compile_dir(str(ROOT / "agent"), quiet=1)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="stationctl-bench-") as tmp:
        t0 = time.perf_counter()
        config = build(Path(tmp), args.records)
        build_s = time.perf_counter() - t0
        size_mb = (Path(tmp) / "state" / "agent.db").stat().st_size / 1e6
        results["floor: python -c pass"] = summary(bare(["-c", "pass"], args.runs))
        results["floor: import agent.runtime.config"] = summary(
            bare(["-c", "import agent.runtime.config"], args.runs)
        )
        results["stopped, whole command"] = summary(whole_command(config, args.runs, args.lang))
        results["stopped, in-process"] = summary(in_process(config, args.runs, args.lang))
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "-c", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            from agent.cli.stationctl.client import AgentUnavailable, request

            deadline = time.monotonic() + 60
            while True:
                try:
                    if request(Path(tmp) / "state" / "control.sock", "status", timeout=5)["ok"]:
                        break
                except AgentUnavailable:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the agent did not come up")
                time.sleep(0.1)
            results["running, whole command"] = summary(whole_command(config, args.runs, args.lang))
            results["running, in-process"] = summary(in_process(config, args.runs, args.lang))
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
    ok = all(r["p95_ms"] < LIMIT_MS for k, r in results.items() if not k.startswith("floor"))
    if args.json:
        print(
            json.dumps(
                {"records": args.records, "db_mb": round(size_mb, 1), "results": results, "ok": ok}
            )
        )
        return 0 if ok else 1
    load = os.getloadavg()
    print(
        f"store: {args.records} records, 20000 events, {size_mb:.1f} MB "
        f"(built in {build_s:.1f} s); language {args.lang}; limit {LIMIT_MS:.0f} ms; "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} (other work slows this)"
    )
    print(f"{'stationctl status':<28}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'runs':>6}")
    for name, r in results.items():
        print(f"{name:<28}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['max_ms']:>9.1f}{r['runs']:>6}")
    print("within the limit" if ok else "OVER THE LIMIT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
