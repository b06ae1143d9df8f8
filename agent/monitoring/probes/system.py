"""The box itself: CPU, load, memory, disks (and read-only remounts), uptime, boot id, last
shutdown, and the agent's own RSS and CPU.

A filesystem that the kernel remounted read-only after an SD-card error looks fine to ``df`` but
loses every record written to it; ``statvfs``'s ST_RDONLY flag is the truth we check, and
/proc/self/mountinfo names the mount for the technician.

Whether the last shutdown was clean needs a marker on disk: ``ShutdownTracker`` writes "running"
when the monitor starts and "clean" when it stops (the probe's ``begin``/``end`` hooks, given the
marker's path by the monitor), two small writes per run. A marker that still
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

from agent.domain.health import Verdict
from agent.domain.schema import between
from agent.monitoring.probes.base import ProbeContext, RunContext, Sample, merge, read_text
from agent.monitoring.probes.registry import (
    Cadence,
    CountHysteresis,
    Judging,
    Severity,
    register,
)

ST_RDONLY = getattr(os, "ST_RDONLY", 1)


@dataclass
class SystemProbeConfig:
    """``paths``: filesystems to watch; the agent adds its content and state folders."""

    paths: list[Path] = field(default_factory=list)


@dataclass
class DiskLowAlarm:
    """Raise below ``low_pct`` or ``low_mb`` free; clear only above ``ok_pct`` and ``ok_mb``."""

    low_pct: float = field(default=10.0, metadata={"check": between(0, 100)})
    ok_pct: float = field(default=15.0, metadata={"check": between(0, 100)})
    low_mb: float = field(default=500.0, metadata={"check": between(0, 10_000_000)})
    ok_mb: float = field(default=750.0, metadata={"check": between(0, 10_000_000)})
    severity: Severity = "warning"

    def _validate(self) -> list[tuple[str, str]]:
        out = []
        if self.ok_pct < self.low_pct:
            out.append(("ok_pct", "must not be below low_pct"))
        if self.ok_mb < self.low_mb:
            out.append(("ok_mb", "must not be below low_mb"))
        return out


@dataclass
class DiskReadonlyAlarm(CountHysteresis):
    raise_after: int = field(default=1, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=1, metadata={"check": between(1, 1000)})
    severity: Severity = "critical"


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


def verdicts(s: SystemSample, ctx: Judging) -> dict[str, Verdict]:
    """disk_low has a band: any path low raises, every path fine clears, in between is unknown."""
    c = ctx.alarms.disk_low
    out: dict[str, Verdict] = {}
    disks = [d for d in s.disks if d.free_pct is not None and d.free_bytes is not None]
    if disks:
        low = [d for d in disks if d.free_pct < c.low_pct or d.free_bytes < c.low_mb * 1e6]  # type: ignore[operator]
        fine = [d for d in disks if d.free_pct >= c.ok_pct and d.free_bytes >= c.ok_mb * 1e6]  # type: ignore[operator]
        bad = True if low else (False if len(fine) == len(disks) else None)
        detail = {"free_pct": {d.path: round(d.free_pct or 0.0, 1) for d in disks}}
        out["disk_low"] = Verdict(bad, detail)
    known = [d for d in s.disks if d.readonly is not None]
    if known:
        ro = [d.path for d in known if d.readonly]
        out["disk_readonly"] = Verdict(bool(ro), {"readonly": ro})
    return out


def summary(s: SystemSample, mode: str) -> dict[str, Any]:
    free = [d.free_pct for d in s.disks if d.free_pct is not None]
    return {
        "disk_free_pct": round(min(free), 1) if free else None,
        "cpu_pct": s.cpu_pct,
        "mem_used_pct": s.mem_used_pct,
        "rss_mb": round(s.own_rss / 1e6, 1) if s.own_rss else None,
    }


@register(
    "system",
    config=SystemProbeConfig,
    sample=SystemSample,
    cadence=Cadence(interval=60, timeout=2, quick=True),
    alarms={"disk_low": DiskLowAlarm, "disk_readonly": DiskReadonlyAlarm},
    verdicts=verdicts,
    summary=summary,
)
class SystemProbe:
    def __init__(
        self,
        cfg: SystemProbeConfig,
        *,
        procfs: Path = Path("/proc"),
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        process: psutil.Process | None = None,
    ) -> None:
        self.cfg = cfg
        self.procfs = procfs
        self.statvfs = statvfs
        self.paths: list[Path] = list(cfg.paths)
        self.process = process or psutil.Process()
        self.last_shutdown: str | None = None
        self._boot_id: str | None = None
        psutil.cpu_percent(interval=None)  # prime the counters so the first sample means something
        self.process.cpu_percent(interval=None)

    @classmethod
    def create(cls, cfg: SystemProbeConfig, ctx: ProbeContext) -> SystemProbe:
        probe = cls(cfg, procfs=ctx.roots.procfs, statvfs=ctx.roots.statvfs)
        probe.paths = [
            Path(p) for p in merge([str(p) for p in probe.paths], [str(p) for p in ctx.disk_paths])
        ]
        return probe

    def begin(self, run: RunContext) -> None:
        """Read the last run's marker (was it shut down cleanly?) and mark this run as running."""
        if run.shutdown_marker is not None:
            self.last_shutdown = ShutdownTracker(run.shutdown_marker).begin(self.boot_id())

    def end(self, run: RunContext) -> None:
        if run.shutdown_marker is not None:
            ShutdownTracker(run.shutdown_marker).end(self.boot_id())

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
