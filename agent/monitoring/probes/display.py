"""Display connectors from /sys/class/drm: is anything plugged into the HDMI port?

Inspections kept finding missing or dead TVs; a connector that reads ``disconnected`` while a
course is scheduled is the cheapest early warning. Boxes without DRM (framebuffer-only) report
unknown, never "disconnected".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.domain.schema import between
from agent.monitoring.probes.base import Sample, read_text


@dataclass
class DisplayProbeConfig:
    """``connectors``: names like ``card0-HDMI-A-1`` to watch; empty = every connector."""

    enabled: bool = True
    connectors: list[str] = field(default_factory=list)
    interval_seconds: float = field(default=30.0, metadata={"check": between(1, 86400)})
    timeout_seconds: float = field(default=2.0, metadata={"check": between(0.1, 60)})


@dataclass
class Connector:
    name: str
    status: str  # connected | disconnected | unknown
    enabled: str | None = None
    dpms: str | None = None
    mode: str | None = None


@dataclass
class DisplaySample(Sample):
    connectors: list[Connector] = field(default_factory=list)

    @property
    def any_connected(self) -> bool | None:
        known = [c.status for c in self.connectors if c.status in ("connected", "disconnected")]
        if not known:
            return None
        return "connected" in known


class DisplayProbe:
    name = "display"

    def __init__(self, cfg: DisplayProbeConfig, *, sysfs: Path = Path("/sys")) -> None:
        self.cfg = cfg
        self.interval = cfg.interval_seconds
        self.timeout = cfg.timeout_seconds
        self.sysfs = sysfs

    def collect(self, deadline: float) -> DisplaySample:
        sample = DisplaySample(at=time.time())
        base = self.sysfs / "class/drm"
        if not base.is_dir():
            sample.skipped = "no /sys/class/drm (no DRM display driver)"
            return sample
        for path in sorted(base.glob("card*-*")):
            if self.cfg.connectors and path.name not in self.cfg.connectors:
                continue
            status = read_text(path / "status")
            if status is None:
                continue
            modes = read_text(path / "modes")
            sample.connectors.append(
                Connector(
                    path.name,
                    status if status in ("connected", "disconnected") else "unknown",
                    read_text(path / "enabled"),
                    read_text(path / "dpms"),
                    modes.splitlines()[0] if modes else None,
                )
            )
        if not sample.connectors:
            sample.skipped = "no display connectors found"
        return sample
