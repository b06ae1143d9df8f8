"""Idle footprint of the agent process: RSS, CPU and bytes written to disk, no course playing.

Starts the real agent (``python -m agent``) on a temporary config whose next course is hours
away, lets it settle, then samples it for ``--seconds`` (default 300, the 5 minutes the issue
asks for): RSS (psutil), CPU time used (user+system) over the window as a share of one core,
and the bytes the process caused to be written to storage (/proc/PID/io write_bytes), also
scaled to one hour. Optional ``--config-extra`` YAML merges into the config (e.g. to add mqtt).

    .venv/bin/python scripts/bench/idle_footprint.py [--seconds 300]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.runtime.config import load_config  # noqa: E402
from agent.testing.media import write_wav  # noqa: E402
from tests.helpers import apply_schedule, one_off, schedule, start_agent, write_config  # noqa: E402


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private Mosquitto on a free loopback port (never the system broker)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--config-extra", default=None, help="YAML file merged into the config")
    ap.add_argument(
        "--broker",
        action="store_true",
        help="start a private Mosquitto on a free port and connect the agent to it",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    broker = None
    with tempfile.TemporaryDirectory(dir=str(ROOT)) as tmp:  # on the real disk, not tmpfs
        extra = yaml.safe_load(Path(args.config_extra).read_text()) if args.config_extra else {}
        if args.broker:
            broker, port = start_broker(Path(tmp))
            extra["mqtt"] = {"host": "127.0.0.1", "port": port, "protocol": "5"}
        cfg_path = write_config(Path(tmp), log_level="info", **extra)
        cfg = load_config(cfg_path)
        write_wav(cfg.content_dir / "later.wav", 5.0)
        apply_schedule(
            cfg.state_dir, schedule(1, [one_off("later", time.time() + 6 * 3600, "later.wav")])
        )
        proc = start_agent(cfg_path, log=Path(tmp) / "agent.log")
        try:
            p = psutil.Process(proc.pid)
            time.sleep(args.settle)
            cpu0 = p.cpu_times()
            w0 = write_bytes(proc.pid)
            t0 = time.monotonic()
            rss_max = 0
            while time.monotonic() - t0 < args.seconds:
                rss_max = max(rss_max, p.memory_info().rss)
                time.sleep(1.0)
            cpu1 = p.cpu_times()
            w1 = write_bytes(proc.pid)
            elapsed = time.monotonic() - t0
            rss = p.memory_info().rss
            uss = p.memory_full_info().uss
            libvlc = any("libvlc" in m.path for m in p.memory_maps())
        finally:
            proc.terminate()
            proc.wait(10)
            if broker is not None:
                broker.terminate()
                broker.wait(10)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    out = {
        "window_s": round(elapsed, 1),
        "rss_mb": round(rss / 2**20, 1),
        "rss_max_mb": round(rss_max / 2**20, 1),
        "uss_mb": round(uss / 2**20, 1),
        "libvlc_loaded": libvlc,
        "cpu_s": round(cpu, 3),
        "cpu_pct_of_core": round(100 * cpu / elapsed, 3),
        "written_bytes": w1 - w0,
        "written_per_hour_kb": round((w1 - w0) / elapsed * 3600 / 1024, 1),
        "mqtt": args.broker,
    }
    print(
        f"{'with MQTT' if args.broker else 'offline'}: idle for {out['window_s']} s: RSS {out['rss_mb']} MB (max {out['rss_max_mb']}, USS {out['uss_mb']}), "
        f"libvlc loaded: {libvlc}; CPU {out['cpu_s']} s = {out['cpu_pct_of_core']} % of a core; "
        f"written {out['written_bytes']} B = {out['written_per_hour_kb']} KB/hour"
    )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
