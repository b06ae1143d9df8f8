"""A probe written outside the agent: fan speed from hwmon, in one file that registers itself.

This file is the whole plugin (its config keys, sample, ``collect``, alarm verdicts, summary field
and registration); tests/probes/test_plugin_probe.py proves the agent needs nothing else to run
it. It is off unless the config turns it on, so importing it changes no other test's agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.domain.health import Verdict
from agent.domain.schema import between
from agent.monitoring.probes.base import ProbeContext, Sample, read_int
from agent.monitoring.probes.registry import Cadence, CountHysteresis, Judging, Severity, register


@dataclass
class FanProbeConfig:
    """``fans``: labels to watch (``hwmon0:fan1``); empty = every fan."""

    fans: list[str] = field(default_factory=list)


@dataclass
class FanStoppedAlarm(CountHysteresis):
    """The slowest watched fan turns slower than ``below_rpm``."""

    below_rpm: int = field(default=200, metadata={"check": between(0, 100_000)})
    severity: Severity = "warning"


@dataclass
class FanSample(Sample):
    rpm: dict[str, int] = field(default_factory=dict)

    @property
    def slowest(self) -> int | None:
        return min(self.rpm.values()) if self.rpm else None


def verdicts(sample: FanSample, ctx: Judging) -> dict[str, Verdict]:
    """No fan read = unknown: a box without a fan sensor is not a box with a stopped fan."""
    if sample.slowest is None:
        return {}
    stopped = sample.slowest < ctx.alarms.fan_stopped.below_rpm
    return {"fan_stopped": Verdict(stopped, {"rpm": dict(sample.rpm)})}


def summary(sample: FanSample, mode: str) -> dict[str, Any]:
    return {"fan_rpm": sample.slowest}


@register(
    "fan",
    config=FanProbeConfig,
    sample=FanSample,
    cadence=Cadence(interval=60, timeout=2, interval_range=(0.01, 86400), enabled=False),
    alarms={"fan_stopped": FanStoppedAlarm},
    verdicts=verdicts,
    summary=summary,
)
class FanProbe:
    def __init__(self, cfg: FanProbeConfig, *, sysfs: Path = Path("/sys")) -> None:
        self.cfg = cfg
        self.sysfs = sysfs

    @classmethod
    def create(cls, cfg: FanProbeConfig, ctx: ProbeContext) -> FanProbe:
        return cls(cfg, sysfs=ctx.roots.sysfs)

    def collect(self, deadline: float) -> FanSample:
        sample = FanSample(at=time.time())
        for hw in sorted((self.sysfs / "class/hwmon").glob("hwmon*")):
            for fan in sorted(hw.glob("fan*_input")):
                label = f"{hw.name}:{fan.name.removesuffix('_input')}"
                rpm = read_int(fan)
                if rpm is not None and (not self.cfg.fans or label in self.cfg.fans):
                    sample.rpm[label] = rpm
        if not sample.rpm:
            sample.skipped = "no fan sensor exposed"
        return sample
