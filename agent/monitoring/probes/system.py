"""The box itself: CPU, load, memory, disks (and read-only remounts), uptime, boot id, last
shutdown, and the agent's own RSS and CPU.

A filesystem that the kernel remounted read-only after an SD-card error looks fine to ``df`` but
loses every record written to it; ``statvfs``'s ST_RDONLY flag is the truth we check, and
/proc/self/mountinfo names the mount for the technician.

Whether the last shutdown was clean needs a marker on disk: ``ShutdownTracker`` writes "running"
when the monitor starts and "clean" when it stops, two small writes per run. A marker that still
says "running" with a different boot id means the box lost power (or crashed); the same boot id
means the agent itself died.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from agent.domain.schema import between
from agent.monitoring.probes.base import Sample, read_text

ST_RDONLY = getattr(os, "ST_RDONLY", 1)


@dataclass
class SystemProbeConfig:
    """``paths``: filesystems to watch; the agent adds its content and state folders."""

    enabled: bool = True
    paths: list[Path] = field(default_factory=list)
    interval_seconds: float = field(default=60.0, metadata={"check": between(1, 86400)})
    timeout_seconds: float = field(default=2.0, metadata={"check": between(0.1, 60)})


@dataclass
class DiskState:
    path: str
    total_bytes: int | None = None
    free_bytes: int | None = None
    free_pct: float | None = None
    readonly: bool | None = None
    mount_point: str | None = None
    fs_type: str | None = None
    source: str | None = None
    error: str | None = None


@dataclass
class SystemSample(Sample):
    cpu_pct: float | None = None
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    mem_total: int | None = None
    mem_available: int | None = None
    mem_used_pct: float | None = None
    uptime_s: float | None = None
    boot_id: str | None = None
    last_shutdown: str | None = None  # clean | power_loss | agent_crash | unknown
    disks: list[DiskState] = field(default_factory=list)
    own_rss: int | None = None
    own_cpu_s: float | None = None
    own_cpu_pct: float | None = None
    own_threads: int | None = None


def parse_mountinfo(text: str) -> list[tuple[str, str, str, str]]:
    """(mount point, options, fs type, source) per line of /proc/self/mountinfo."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lparts, rparts = left.split(), right.split()
        if len(lparts) < 6 or len(rparts) < 2:
            continue
        point = lparts[4].replace("\\040", " ").replace("\\011", "\t")
        mounts.append((point, lparts[5], rparts[0], rparts[1]))
    return mounts


def mount_for(
    path: str, mounts: list[tuple[str, str, str, str]]
) -> tuple[str, str, str, str] | None:
    best = None
    for m in mounts:
        point = m[0]
        inside = path == point or path.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best[0])):
            best = m
    return best


class ShutdownTracker:
    """The "was the last shutdown clean?" marker (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def begin(self, boot_id: str | None) -> str:
        verdict = "unknown"
        try:
            previous = json.loads(self.path.read_text())
            if previous.get("state") == "clean":
                verdict = "clean"
            elif previous.get("boot_id") and boot_id and previous["boot_id"] != boot_id:
                verdict = "power_loss"
            else:
                verdict = "agent_crash"
        except (OSError, ValueError, AttributeError):
            verdict = "unknown"
        self._write({"state": "running", "boot_id": boot_id, "since": time.time()})
        return verdict

    def end(self, boot_id: str | None) -> None:
        self._write({"state": "clean", "boot_id": boot_id, "at": time.time()})

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class SystemProbe:
    name = "system"

    def __init__(
        self,
        cfg: SystemProbeConfig,
        *,
        procfs: Path = Path("/proc"),
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        process: psutil.Process | None = None,
    ) -> None:
        self.cfg = cfg
        self.interval = cfg.interval_seconds
        self.timeout = cfg.timeout_seconds
        self.procfs = procfs
        self.statvfs = statvfs
        self.paths: list[Path] = list(cfg.paths)
        self.process = process or psutil.Process()
        self.last_shutdown: str | None = None
        self._boot_id: str | None = None
        psutil.cpu_percent(interval=None)  # prime the counters so the first sample means something
        self.process.cpu_percent(interval=None)

    def boot_id(self) -> str | None:
        """The kernel's boot id; it cannot change while we run, so it is read once."""
        if self._boot_id is None:
            self._boot_id = read_text(self.procfs / "sys/kernel/random/boot_id")
        return self._boot_id

    def collect(self, deadline: float) -> SystemSample:
        s = SystemSample(at=time.time(), last_shutdown=self.last_shutdown)
        s.cpu_pct = psutil.cpu_percent(interval=None)
        try:
            s.load1, s.load5, s.load15 = os.getloadavg()
        except OSError:
            pass
        vm = psutil.virtual_memory()
        s.mem_total, s.mem_available, s.mem_used_pct = vm.total, vm.available, vm.percent
        uptime = read_text(self.procfs / "uptime")
        if uptime:
            s.uptime_s = float(uptime.split()[0])
        s.boot_id = self.boot_id()
        mounts = parse_mountinfo(read_text(self.procfs / "self/mountinfo") or "")
        for path in self.paths:
            s.disks.append(self.disk(str(path), mounts))
        with self.process.oneshot():
            s.own_rss = self.process.memory_info().rss
            times = self.process.cpu_times()
            s.own_cpu_s = times.user + times.system
            s.own_cpu_pct = self.process.cpu_percent(interval=None)
            s.own_threads = self.process.num_threads()
        return s

    def disk(self, path: str, mounts: list[tuple[str, str, str, str]]) -> DiskState:
        d = DiskState(path)
        try:
            st = self.statvfs(path)
        except OSError as exc:
            d.error = exc.strerror or str(exc)
            return d
        d.total_bytes = st.f_blocks * st.f_frsize
        d.free_bytes = st.f_bavail * st.f_frsize
        d.free_pct = 100.0 * st.f_bavail / st.f_blocks if st.f_blocks else None
        d.readonly = bool(st.f_flag & ST_RDONLY)
        m = mount_for(os.path.realpath(path), mounts)
        if m:
            d.mount_point, d.fs_type, d.source = m[0], m[2], m[3]
            if "ro" in m[1].split(","):
                d.readonly = True
        return d
