from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.monitoring.probes.system import (
    ShutdownTracker,
    SystemProbe,
    SystemProbeConfig,
    parse_mountinfo,
)
from tests.probes.probe_helpers import write_tree

MOUNTINFO = """22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
25 22 179:3 / /srv/content ro,noatime shared:2 - ext4 /dev/mmcblk0p3 ro,errors=remount-ro
26 22 0:21 / /run rw,nosuid shared:5 - tmpfs tmpfs rw,size=100m
27 22 179:4 / /mnt/with\\040space rw shared:6 - vfat /dev/sda1 rw
"""


def procfs(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "proc",
        {
            "uptime": "12345.67 23456.78\n",
            "sys/kernel/random/boot_id": "0f3c2a9e-1111-2222-3333-444455556666\n",
            "self/mountinfo": MOUNTINFO,
        },
    )


class FakeStatvfs:
    """os.statvfs_result-shaped answers per path (read-only flag, sizes) for paths we cannot mount."""

    def __init__(self, table: dict[str, tuple[int, int, int]]) -> None:
        self.table = table  # path -> (blocks, available blocks, flags)

    def __call__(self, path: str) -> os.statvfs_result:
        if path not in self.table:
            raise FileNotFoundError(2, "No such file or directory")
        blocks, avail, flags = self.table[path]
        return os.statvfs_result((4096, 4096, blocks, avail, avail, 1000, 500, 500, flags, 255))


def test_mountinfo_parsing_handles_escapes() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert ("/srv/content", "ro,noatime", "ext4", "/dev/mmcblk0p3") in mounts
    assert mounts[-1][0] == "/mnt/with space"


def test_box_figures_from_fake_procfs_and_statvfs(tmp_path: Path) -> None:
    stat = FakeStatvfs(
        {"/srv/content": (1000, 50, 0), "/var/lib/agent": (1000, 900, 0), "/gone": (0, 0, 0)}
    )
    del stat.table["/gone"]
    cfg = SystemProbeConfig(paths=[Path("/srv/content"), Path("/var/lib/agent"), Path("/gone")])
    s = SystemProbe(cfg, procfs=procfs(tmp_path), statvfs=stat).collect(time.monotonic() + 1)
    assert s.uptime_s == 12345.67 and s.boot_id == "0f3c2a9e-1111-2222-3333-444455556666"
    content, state, gone = s.disks
    assert content.free_pct == pytest.approx(5.0) and content.free_bytes == 50 * 4096
    assert (
        content.readonly is True
        and content.mount_point == "/srv/content"
        and content.source == "/dev/mmcblk0p3"
    )
    assert (
        state.readonly is False
        and state.mount_point == "/"
        and state.free_pct == pytest.approx(90.0)
    )
    assert gone.error and gone.free_pct is None
    assert s.mem_total and s.mem_total > 0 and s.load1 is not None and s.cpu_pct is not None
    assert s.own_rss and s.own_rss > 1_000_000 and s.own_cpu_s is not None and s.own_threads


def test_statvfs_readonly_flag_alone_counts(tmp_path: Path) -> None:
    stat = FakeStatvfs({"/var/lib/agent": (1000, 500, os.ST_RDONLY)})
    cfg = SystemProbeConfig(paths=[Path("/var/lib/agent")])
    (d,) = (
        SystemProbe(cfg, procfs=procfs(tmp_path), statvfs=stat).collect(time.monotonic() + 1).disks
    )
    assert d.readonly is True


def test_real_filesystem(tmp_path: Path) -> None:
    (d,) = SystemProbe(SystemProbeConfig(paths=[tmp_path])).collect(time.monotonic() + 1).disks
    assert (
        d.readonly is False and d.total_bytes and 0 <= (d.free_pct or -1) <= 100 and d.mount_point
    )


CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from agent.monitoring.probes.system import SystemProbe, SystemProbeConfig
s = SystemProbe(SystemProbeConfig(paths=[Path({mnt!r})])).collect(time.monotonic() + 1)
d = s.disks[0]
print(json.dumps({{"readonly": d.readonly, "fs": d.fs_type, "mount": d.mount_point}}))
"""


def test_real_read_only_remount_in_a_private_mount_namespace(tmp_path: Path) -> None:
    """Mount a tmpfs, remount it read-only (as the kernel does after an SD error), in our own
    mount namespace so the host never sees it."""
    if not shutil.which("unshare"):
        pytest.skip("unshare not available")
    mnt = tmp_path / "content"
    mnt.mkdir()
    root = str(Path(__file__).resolve().parents[2])
    script = f'mount -t tmpfs -o size=1m tmpfs "{mnt}" && mount -o remount,ro "{mnt}" && exec "{sys.executable}" -c "$CHILD"'
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        env={
            "CHILD": CHILD.format(root=root, mnt=str(mnt)),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=20,
    )
    if proc.returncode != 0 and (
        "Operation not permitted" in proc.stderr or "permission denied" in proc.stderr.lower()
    ):
        pytest.skip(f"cannot create a mount namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"readonly": True, "fs": "tmpfs", "mount": str(mnt)}


def test_shutdown_tracker_verdicts(tmp_path: Path) -> None:
    marker = tmp_path / "state/shutdown.json"
    t = ShutdownTracker(marker)
    assert t.begin("boot-1") == "unknown"  # first run ever
    assert json.loads(marker.read_text())["state"] == "running"
    assert t.begin("boot-1") == "agent_crash"  # still "running", same boot: the agent died
    assert t.begin("boot-2") == "power_loss"  # still "running", new boot: the box went down hard
    t.end("boot-2")
    assert t.begin("boot-3") == "clean"
    marker.write_text("{garbage")
    assert t.begin("boot-3") == "unknown"
