"""Display connectors from /sys/class/drm: is anything plugged into the HDMI port?

Inspections kept finding missing or dead TVs; a connector that reads ``disconnected`` while a
course is scheduled is the cheapest early warning. Boxes without DRM (framebuffer-only) report
unknown, never "disconnected".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.domain.health import Verdict
from agent.domain.schema import between
from agent.monitoring.probes.base import Sample, SysfsProbe, read_text
from agent.monitoring.probes.registry import (
    Cadence,
    CountHysteresis,
    Judging,
    Severity,
    register,
)


@dataclass
class DisplayProbeConfig:
    """``connectors``: names like ``card0-HDMI-A-1`` to watch; empty = every connector."""

    connectors: list[str] = field(default_factory=list)


@dataclass
class DisplayDisconnectedAlarm(CountHysteresis):
    raise_after: int = field(default=2, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=1, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"


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


def verdicts(s: DisplaySample, ctx: Judging) -> dict[str, Verdict]:
    """Disconnected when no connector is connected; no readable connector is unknown."""
    connected = s.any_connected
    detail = {"connectors": {c.name: c.status for c in s.connectors}}
    return {"display_disconnected": Verdict(None if connected is None else not connected, detail)}


def summary(s: DisplaySample, mode: str) -> dict[str, Any]:
    connected = s.any_connected
    state = "unknown" if connected is None else ("connected" if connected else "disconnected")
    return {"display": state}


@register(
    "display",
    config=DisplayProbeConfig,
    sample=DisplaySample,
    cadence=Cadence(interval=30, timeout=2, quick=True),
    alarms={"display_disconnected": DisplayDisconnectedAlarm},
    verdicts=verdicts,
    summary=summary,
)
class DisplayProbe(SysfsProbe[DisplayProbeConfig]):
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
