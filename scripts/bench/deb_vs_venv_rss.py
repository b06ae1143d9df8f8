"""Idle RSS of the agent as the .deb installs it (Debian's python3 and libraries) vs from the venv.

    scripts/test-arch amd64 --no-purge              # a Debian 12 root with the .deb installed
    .venv/bin/python scripts/bench/deb_vs_venv_rss.py --root .cache/work/amd64

Both run the same idle config (offline, no schedule, probes on except the gateway, dummy VLC):
the .deb one through chroot ROOT /usr/bin/station-agent, the venv one as .venv/bin/python -m
agent. After --settle seconds, RSS is sampled every second for --sample seconds; prints the
median of each in MB as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "terminal": "t-idle",
    "county": "c-01",
    "timezone": "Asia/Shanghai",
    "content_dir": "content",
    "state_dir": "state",
    "vlc": {"options": ["--vout=dummy", "--aout=dummy", "--no-video-title-show", "--quiet"]},
    "probes": {"gateway": {"enabled": False}},
}


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def idle_rss(cmd: list[str], work: Path, settle: float, sample: float) -> float:
    """Median RSS in MB of ``cmd`` (given the config path last) after it has settled."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            sys.exit(f"deb_vs_venv_rss: {cmd} exited with {proc.returncode}")
        values = []
        end = time.monotonic() + sample
        while time.monotonic() < end:
            values.append(rss(proc.pid))
            time.sleep(1)
        return round(statistics.median(values) / 2**20, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare(base: Path) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    (base / "content").mkdir(parents=True)
    (base / "agent.yaml").write_text(yaml.safe_dump(CONFIG))
    return base / "agent.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="a Debian root with the .deb installed")
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--sample", type=float, default=10.0)
    args = ap.parse_args()
    root = Path(args.root).resolve()
    if not (root / "usr/bin/station-agent").exists():
        sys.exit(
            f"deb_vs_venv_rss: {root} has no /usr/bin/station-agent (scripts/test-arch amd64 --no-purge)"
        )
    mounted = subprocess.run(["mountpoint", "-q", str(root / "proc")]).returncode == 0
    if not mounted:
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        prepare(root / "tmp/idle")
        deb = idle_rss(
            ["chroot", str(root), "/usr/bin/station-agent", "-c", "/tmp/idle/agent.yaml"],
            root / "tmp/idle",
            args.settle,
            args.sample,
        )
    finally:
        if not mounted:
            subprocess.run(["umount", "-l", str(root / "proc")], check=False)
    venv_cfg = prepare(Path("/tmp/deb-vs-venv-idle"))
    venv = idle_rss(
        [str(ROOT / ".venv/bin/python"), "-m", "agent", "-c", str(venv_cfg)],
        venv_cfg.parent,
        args.settle,
        args.sample,
    )
    print(json.dumps({"idle_rss_mb_deb": deb, "idle_rss_mb_venv": venv}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
