"""The satellite datacast: the dvb net interface's counters and the receive folder's freshness.

"Content arrives by datacast into a receive folder" is the whole satellite downlink, so the useful
question is "how long since the last complete file arrived?". Files still being written by the
receiver (dot files, ``*.part``, ``*.tmp`` and the like, configurable) do not count. The scan is
bounded in entries and time so a huge folder on a slow SD card cannot hold a worker.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.domain.health import Verdict
from agent.domain.linkstats import SummaryBuilder
from agent.domain.schema import between
from agent.monitoring.probes.base import Sample, SysfsProbe, read_int, remaining
from agent.monitoring.probes.registry import Cadence, Judging, Severity, register

NET_COUNTERS = (
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_crc_errors",
    "rx_frame_errors",
    "rx_dropped",
    "rx_over_errors",
)


@dataclass
class DatacastProbeConfig:
    """``receive_dir`` unset = folder check off; ``interface`` is the dvbnet one (dvb0_0...)."""

    interface: str = "dvb0_0"
    receive_dir: Path | None = None
    partial_patterns: list[str] = field(
        default_factory=lambda: [".*", "*.part", "*.tmp", "*.partial", "*~"]
    )
    max_entries: int = field(default=20000, metadata={"check": between(10, 10_000_000)})


@dataclass
class DatacastStaleAlarm:
    """No complete file in the receive folder for this long."""

    stale_hours: float = field(default=48.0, metadata={"check": between(0.1, 24 * 365)})
    severity: Severity = "warning"


@dataclass
class DatacastSample(Sample):
    interface_present: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    rx_bytes_delta: int | None = None
    rx_errors_delta: int | None = None
    newest_file: str | None = None
    newest_mtime: float | None = None
    seconds_since_file: float | None = None
    files_seen: int = 0
    scan_truncated: bool = False


def verdicts(s: DatacastSample, ctx: Judging) -> dict[str, Verdict]:
    """Stale by the newest file's age; an empty folder is stale once watched past the limit."""
    limit = ctx.alarms.datacast_stale.stale_hours * 3600.0
    bad: bool | None
    if s.seconds_since_file is not None:
        bad = s.seconds_since_file > limit
    elif (
        s.ok and s.files_seen == 0 and not s.skipped and s.newest_mtime is None and s.error is None
    ):
        bad = True if ctx.watched_seconds > limit else None
    else:
        bad = None
    detail = {"seconds_since_file": s.seconds_since_file, "newest_file": s.newest_file}
    return {"datacast_stale": Verdict(bad, detail)}


def summary(s: DatacastSample, mode: str) -> dict[str, Any]:
    if s.seconds_since_file is None:
        return {}
    return {"datacast_age_s": int(s.seconds_since_file)}


def period(s: DatacastSample, builder: SummaryBuilder, mono: float) -> None:
    builder.add_datacast(s.rx_bytes_delta, s.rx_errors_delta)


@register(
    "datacast",
    config=DatacastProbeConfig,
    sample=DatacastSample,
    cadence=Cadence(interval=300, timeout=5, interval_range=(5, 86400)),
    alarms={"datacast_stale": DatacastStaleAlarm},
    verdicts=verdicts,
    summary=summary,
    period=period,
)
class DatacastProbe(SysfsProbe[DatacastProbeConfig]):
    def __init__(self, cfg: DatacastProbeConfig, *, sysfs: Path = Path("/sys")) -> None:
        super().__init__(cfg, sysfs=sysfs)
        self._previous: dict[str, int] | None = None
        # One regex for all patterns: the scan tests every file name, so this is the hot path.
        self._partial = re.compile(
            "|".join(fnmatch.translate(p) for p in cfg.partial_patterns) or "(?!)"
        )

    def collect(self, deadline: float) -> DatacastSample:
        sample = DatacastSample(at=time.time())
        base = self.sysfs / "class/net" / self.cfg.interface / "statistics"
        if base.is_dir():
            sample.interface_present = True
            for name in NET_COUNTERS:
                value = read_int(base / name)
                if value is not None:
                    sample.counters[name] = value
            prev = self._previous
            if prev is not None:
                if sample.counters.get("rx_bytes", 0) >= prev.get("rx_bytes", 0):
                    sample.rx_bytes_delta = sample.counters.get("rx_bytes", 0) - prev.get(
                        "rx_bytes", 0
                    )
                errors = sum(
                    sample.counters.get(k, 0)
                    for k in ("rx_errors", "rx_crc_errors", "rx_frame_errors")
                )
                before = sum(
                    prev.get(k, 0) for k in ("rx_errors", "rx_crc_errors", "rx_frame_errors")
                )
                sample.rx_errors_delta = errors - before if errors >= before else None
            self._previous = dict(sample.counters)
        if self.cfg.receive_dir is not None:
            self.scan(self.cfg.receive_dir, sample, deadline)
        elif not sample.interface_present:
            sample.skipped = f"no interface {self.cfg.interface} and no receive_dir configured"
        return sample

    def is_partial(self, name: str) -> bool:
        return self._partial.match(name) is not None

    def scan(self, root: Path, sample: DatacastSample, deadline: float) -> None:
        if not root.is_dir():
            sample.ok, sample.error = False, f"receive folder {root} is missing"
            return
        newest: tuple[float, str] | None = None
        stack = [str(root)]
        while stack:
            if remaining(deadline) <= 0 or sample.files_seen >= self.cfg.max_entries:
                sample.scan_truncated = True
                break
            partial = self._partial.match
            try:
                with os.scandir(stack.pop()) as entries:
                    for entry in entries:
                        if partial(entry.name):
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            sample.files_seen += 1
                            mtime = entry.stat(follow_symlinks=False).st_mtime
                            if newest is None or mtime > newest[0]:
                                newest = (mtime, entry.path)
            except OSError:
                continue
        if newest is not None:
            sample.newest_mtime = newest[0]
            sample.newest_file = os.path.relpath(newest[1], root)
            sample.seconds_since_file = max(0.0, sample.at - newest[0])
