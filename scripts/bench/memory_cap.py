"""The agent under a hard memory limit: a real H.264/MP4 course played start to end with MQTT (a
private Mosquitto on loopback) and every probe on, inside a memory cgroup capped at 96 MB.

    .venv/bin/python scripts/bench/memory_cap.py [--limit-mb 96 | --no-limit] [--seconds 45]
                                                 [--agent "CMD"]  (default: this repo's venv)
                                                 [--keep]  (keep the work folder: log, db)

The cgroup: systemd-run --scope -p MemoryMax= when systemd runs this machine; else a cgroup v2
child with memory.max when the v2 hierarchy has the memory controller; else a cgroup v1 memory
child with memory.limit_in_bytes (what a container without a v2 memory controller allows). The
limit covers the agent, libvlc and its decoder threads, and the page cache they cause.
Prints the cgroup kind and limit, the agent's peak RSS (VmHWM), the cgroup's peak usage, OOM kills
and the record's outcome; exits 1 if the record did not complete (or completed with less played
than the clip's length), or anything was OOM-killed. ``--no-limit``: the same run uncapped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from agent.cli.county.broker import PrivateBroker  # noqa: E402
from tests.helpers import DUMMY_VLC, apply_schedule, one_off, schedule  # noqa: E402


def make_h264(path: Path, seconds: float, keyint: int = 1) -> None:
    """An H.264/MP4 clip made by libvlc's x264 from a still picture (as tests/ops/sandbox does).

    ``keyint=1``: VLC's MP4 muxer marks no key frame at the very start of such a clip and VLC's
    demuxer starts playing at the first marked one, which with x264's default (250 frames, 25 s
    here) skips the first 25 s; with ``keyint=1`` one is marked at 0 (tests/core/test_h264_skip.py).
    ``--keyint 250`` makes the skipping clip: the record must then say ``error``, not completed.
    """
    import vlc

    from tests.ops.sandbox.media import png

    still = path.with_suffix(".png")
    png(str(still), 640, 120)  # the helper draws at most 127 rows
    sout = (
        f":sout=#transcode{{vcodec=h264,venc=x264{{preset=ultrafast,keyint={keyint}}},fps=25,"
        "acodec=none}"
        f":std{{access=file,mux=mp4,dst={path}}}"
    )
    inst = vlc.Instance("--quiet")
    player = inst.media_player_new()
    player.set_media(inst.media_new(str(still), f":image-duration={seconds}", sout))
    player.play()
    deadline = time.monotonic() + seconds * 3 + 30
    while time.monotonic() < deadline and player.get_state() not in (
        vlc.State.Ended,
        vlc.State.Error,
    ):
        time.sleep(0.2)
    player.stop()
    player.release()
    inst.release()
    if not path.exists() or path.stat().st_size < 1000:
        sys.exit(f"memory_cap: could not make the H.264 clip {path}")


class Cgroup:
    """A memory-limited cgroup the agent is started in; ``prefix`` wraps the command."""

    def __init__(self, limit: int, name: str) -> None:
        self.limit = limit
        self.prefix: list[str] = []
        self.path: Path | None = None
        v2 = Path("/sys/fs/cgroup")
        v1 = Path("/sys/fs/cgroup/memory")
        if Path("/run/systemd/system").is_dir() and shutil.which("systemd-run"):
            self.kind = "systemd-run --scope (cgroup v2 MemoryMax)"
            self.prefix = ["systemd-run", "--scope", "--quiet", "-p", f"MemoryMax={limit}",
                           "-p", "MemorySwapMax=0"]  # fmt: skip
        elif "memory" in _read(v2 / "cgroup.controllers").split():
            self.kind = "cgroup v2 memory.max"
            self.path = v2 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "memory.max").write_text(str(limit))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")
        elif (v1 / "memory.limit_in_bytes").exists():
            self.kind = "cgroup v1 memory.limit_in_bytes (no v2 memory controller here)"
            self.path = v1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "memory.limit_in_bytes").write_text(str(limit))
            if (self.path / "memory.memsw.limit_in_bytes").exists():
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))
        else:
            sys.exit("memory_cap: no memory cgroup can be made here (neither v2 nor v1)")

    def enter(self) -> None:
        """Called in the child before exec: move it into the cgroup."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int | None:
        if self.path is None:
            return None
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            if (self.path / name).exists():
                return int(_read(self.path / name))
        return None

    def oom_kills(self) -> int | None:
        if self.path is None:
            return None
        for name in ("memory.events", "memory.oom_control"):
            for line in _read(self.path / name).splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return None

    def remove(self) -> None:
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def vm_hwm(pid: int) -> int:
    for line in _read(Path(f"/proc/{pid}/status")).splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


Row = tuple[str | None, float, float | None, float | None, str | None]
NO_RECORD: Row = (None, 0.0, None, None, None)


def newest_record(db: Path) -> Row:
    """(outcome, played seconds, media duration, completion, reason) of the newest record."""
    if not db.exists():
        return NO_RECORD
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(
                "SELECT outcome, played_seconds, media_duration, completion, reason FROM records"
                " ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return NO_RECORD
    return (row[0], row[1] or 0.0, row[2], row[3], row[4]) if row else NO_RECORD


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit-mb", type=int, default=96)
    ap.add_argument("--seconds", type=float, default=45.0, help="course length")
    ap.add_argument("--agent", default=f"{ROOT}/.venv/bin/python -m agent")
    ap.add_argument("--no-limit", action="store_true", help="the same run without a cgroup")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (log, database)")
    ap.add_argument("--keyint", type=int, default=1, help="x264 key frame interval (frames)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="memory-cap-"))
    broker = PrivateBroker(work / "broker").start()
    cg = None if args.no_limit else Cgroup(args.limit_mb * 2**20, f"memcap-{os.getpid()}")
    proc = None
    try:
        (work / "content").mkdir()
        t = time.monotonic()
        make_h264(work / "content" / "course.mp4", args.seconds, args.keyint)
        made = time.monotonic() - t
        cfg = {
            "terminal": "t-memcap",
            "county": "c-01",
            "timezone": "Asia/Shanghai",
            "content_dir": "content",
            "state_dir": "state",
            "vlc": {"options": DUMMY_VLC, "preroll_seconds": 2, "start_timeout_seconds": 30},
            "mqtt": {"host": broker.host, "port": broker.port, "heartbeat_seconds": 5},
            # Every probe on, with short intervals so they all run during the course; the
            # gateway probe stays off (loopback only: it would connect to the real gateway).
            "probes": {
                "enabled": True,
                "tcp": {"targets": [f"{broker.host}:{broker.port}"], "interval_seconds": 5},
                "icmp": {"hosts": ["127.0.0.1"], "interval_seconds": 10},
                "dns": {"names": ["localhost"], "interval_seconds": 10},
                "gateway": {"enabled": False},
                "system": {"interval_seconds": 5},
                "netif": {"interval_seconds": 5},
                "thermal": {"interval_seconds": 5},
                "clocksync": {"interval_seconds": 5},
            },
        }
        config = work / "agent.yaml"
        config.write_text(yaml.safe_dump(cfg))
        state = work / "state"
        state.mkdir()
        start = time.time() + 12
        apply_schedule(state, schedule(1, [one_off("mc", start, "course.mp4")]))
        log = open(work / "agent.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [*(cg.prefix if cg else []), *shlex.split(args.agent), "-c", str(config)],
            stdout=log,
            stderr=log,
            cwd=ROOT,
            preexec_fn=cg.enter if cg else None,  # noqa: PLW1509
        )
        peak_rss = 0
        result, played, duration, completion, reason = NO_RECORD
        deadline = time.monotonic() + 12 + args.seconds + 120
        while time.monotonic() < deadline and proc.poll() is None:
            peak_rss = max(peak_rss, vm_hwm(proc.pid))
            result, played, duration, completion, reason = newest_record(state / "agent.db")
            if result not in (None,):
                break
            time.sleep(0.5)
        peak_rss = max(peak_rss, vm_hwm(proc.pid))
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        log.close()
        report = {
            "cgroup": cg.kind if cg else None,
            "limit_mb": None if args.no_limit else args.limit_mb,
            "course_seconds": args.seconds,
            "clip_bytes": (work / "content" / "course.mp4").stat().st_size,
            "clip_made_s": round(made, 1),
            "record_outcome": result,
            "played_seconds": played,
            "media_duration": duration,
            "completion": completion,
            "reason": reason,
            "agent_alive_at_end": alive,
            "agent_exit": proc.returncode,
            "peak_rss_mb": round(peak_rss / 2**20, 1),
            "cgroup_peak_mb": round(cg.peak() / 2**20, 1) if cg and cg.peak() else None,
            "oom_kills": cg.oom_kills() if cg else None,
        }
        print(json.dumps(report, indent=1))
        # A completed record must have been played for (nearly) its whole length.
        whole = duration is not None and played >= duration - 3.0
        ok = result == "completed" and whole and alive and not report["oom_kills"]
        if not ok:
            print((work / "agent.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        return 0 if ok else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.stop()
        if cg:
            cg.remove()
        if args.keep:
            print(f"memory_cap: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
