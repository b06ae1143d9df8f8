"""Temperatures from the kernel's thermal zones and hwmon sensors (millidegrees in sysfs).

Set-top boxes in unheated halls run hot in summer behind a TV; the hottest sensor is what matters
for the overheat alarm, and every sensor is kept for the status snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agent.domain.health import Verdict
from agent.domain.schema import between
from agent.monitoring.probes.base import Sample, SysfsProbe, read_int, read_text
from agent.monitoring.probes.registry import (
    Cadence,
    CountHysteresis,
    Judging,
    Severity,
    register,
)


@dataclass
class ThermalProbeConfig:
    """No keys of its own."""


@dataclass
class OverheatAlarm(CountHysteresis):
    """Hottest sensor at or above ``raise_c``; clears at or below ``clear_c``."""

    raise_c: float = field(default=80.0, metadata={"check": between(20, 150)})
    clear_c: float = field(default=72.0, metadata={"check": between(20, 150)})
    raise_after: int = field(default=2, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"

    def _validate(self) -> list[tuple[str, str]]:
        return [("clear_c", "must be below raise_c")] if self.clear_c >= self.raise_c else []


@dataclass
class ThermalSample(Sample):
    sensors: dict[str, float] = field(default_factory=dict)  # name -> degrees C

    @property
    def max_c(self) -> float | None:
        return max(self.sensors.values()) if self.sensors else None


def verdicts(s: ThermalSample, ctx: Judging) -> dict[str, Verdict]:
    """Between ``clear_c`` and ``raise_c`` is the band: unknown, so it neither counts nor resets."""
    hottest = s.max_c
    if hottest is None:
        return {}
    c = ctx.alarms.overheat
    bad = True if hottest >= c.raise_c else (False if hottest <= c.clear_c else None)
    return {"overheat": Verdict(bad, {"max_c": hottest})}


def summary(s: ThermalSample, mode: str) -> dict[str, Any]:
    return {"temp_c": None if s.max_c is None else round(s.max_c, 1)}


@register(
    "thermal",
    config=ThermalProbeConfig,
    sample=ThermalSample,
    cadence=Cadence(interval=60, timeout=2, quick=True),
    alarms={"overheat": OverheatAlarm},
    verdicts=verdicts,
    summary=summary,
)
class ThermalProbe(SysfsProbe[ThermalProbeConfig]):
    def collect(self, deadline: float) -> ThermalSample:
        sample = ThermalSample(at=time.time())
        for zone in sorted((self.sysfs / "class/thermal").glob("thermal_zone*")):
            milli = read_int(zone / "temp")
            if milli is not None and -40000 < milli < 200000:  # drop sensors that report garbage
                kind = read_text(zone / "type") or zone.name
                sample.sensors[f"{zone.name}:{kind}"] = milli / 1000.0
        for hw in sorted((self.sysfs / "class/hwmon").glob("hwmon*")):
            chip = read_text(hw / "name") or hw.name
            for temp in sorted(hw.glob("temp*_input")):
                milli = read_int(temp)
                if milli is not None and -40000 < milli < 200000:
                    label = read_text(hw / temp.name.replace("_input", "_label")) or temp.name[:-6]
                    sample.sensors[f"{hw.name}:{chip}:{label}"] = milli / 1000.0
        if not sample.sensors:
            sample.skipped = "no temperature sensors exposed"
        return sample
