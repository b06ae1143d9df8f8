"""Temperatures from the kernel's thermal zones and hwmon sensors (millidegrees in sysfs).

Set-top boxes in unheated halls run hot in summer behind a TV; the hottest sensor is what matters
for the overheat alarm, and every sensor is kept for the status snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.domain.schema import between
from agent.monitoring.probes.base import Sample, read_int, read_text


@dataclass
class ThermalProbeConfig:
    enabled: bool = True
    interval_seconds: float = field(default=60.0, metadata={"check": between(1, 86400)})
    timeout_seconds: float = field(default=2.0, metadata={"check": between(0.1, 60)})


@dataclass
class ThermalSample(Sample):
    sensors: dict[str, float] = field(default_factory=dict)  # name -> degrees C

    @property
    def max_c(self) -> float | None:
        return max(self.sensors.values()) if self.sensors else None


class ThermalProbe:
    name = "thermal"

    def __init__(self, cfg: ThermalProbeConfig, *, sysfs: Path = Path("/sys")) -> None:
        self.cfg = cfg
        self.interval = cfg.interval_seconds
        self.timeout = cfg.timeout_seconds
        self.sysfs = sysfs

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
