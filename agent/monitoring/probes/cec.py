"""TV power over HDMI-CEC, read with ``cec-ctl`` where it exists.

Many TVs do not answer CEC at all, or only when awake; so no answer means ``unknown``, never
``off``. Only an explicit "standby" report from the TV counts as off. The adapter must have a
logical address (``cec-ctl --playback`` once at boot); without one cec-ctl fails and we say so.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from agent.domain.health import Verdict
from agent.domain.schema import between
from agent.monitoring.probes.base import ProbeContext, Runner, Sample, remaining, run_command
from agent.monitoring.probes.registry import (
    Cadence,
    CountHysteresis,
    Judging,
    Severity,
    register,
)


@dataclass
class CecProbeConfig:
    device: str = "/dev/cec0"
    command: list[str] = field(
        default_factory=lambda: [
            "cec-ctl",
            "-d",
            "{device}",
            "--to",
            "0",
            "--give-device-power-status",
        ]
    )


@dataclass
class TvOffAlarm(CountHysteresis):
    """Only an explicit "standby" from the TV counts; no answer keeps the current state."""

    raise_after: int = field(default=2, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=1, metadata={"check": between(1, 1000)})
    severity: Severity = "info"


@dataclass
class CecSample(Sample):
    power: str = "unknown"  # on | standby | to_on | to_standby | unknown
    raw: str | None = None
    reason: str | None = None


MISSING_RECHECK_SECONDS = 3600.0
_PWR = re.compile(r"pwr-state:\s*(.+?)\s*\(0x([0-9a-fA-F]{2})\)")
_POWER_CODES = {0: "on", 1: "standby", 2: "to_on", 3: "to_standby"}
_NO_ANSWER = ("Not Acknowledged", "NACK", "Timeout", "Aborted", "Feature Abort")


def parse_power_status(text: str) -> tuple[str, str | None, str | None]:
    """(power, raw state text, reason when unknown) from cec-ctl output."""
    m = _PWR.search(text)
    if m:
        return _POWER_CODES.get(int(m.group(2), 16), "unknown"), m.group(1), None
    for marker in _NO_ANSWER:
        if marker.lower() in text.lower():
            return "unknown", None, f"TV did not answer ({marker})"
    return "unknown", None, "no power status in cec-ctl output"


_TV_OFF = {"standby": True, "to_standby": True, "on": False, "to_on": False}


def verdicts(s: CecSample, ctx: Judging) -> dict[str, Verdict]:
    """Off only on the TV's own word; "unknown" (no answer) leaves the alarm as it is."""
    return {"tv_off": Verdict(_TV_OFF.get(s.power), {"power": s.power})}


def summary(s: CecSample, mode: str) -> dict[str, Any]:
    return {} if s.skipped else {"tv": s.power}


@register(
    "cec",
    config=CecProbeConfig,
    sample=CecSample,
    cadence=Cadence(interval=300, timeout=5, interval_range=(10, 86400), timeout_range=(0.5, 60)),
    alarms={"tv_off": TvOffAlarm},
    verdicts=verdicts,
    summary=summary,
)
class CecProbe:
    def __init__(self, cfg: CecProbeConfig, *, runner: Runner = run_command) -> None:
        self.cfg = cfg
        self.runner = runner
        self._missing_until = 0.0  # a missing cec-ctl is re-checked hourly, not every run

    @classmethod
    def create(cls, cfg: CecProbeConfig, ctx: ProbeContext) -> CecProbe:
        return cls(cfg, runner=ctx.roots.runner)

    def collect(self, deadline: float) -> CecSample:
        sample = CecSample(at=time.time())
        argv = [a.format(device=self.cfg.device) for a in self.cfg.command]
        if time.monotonic() < self._missing_until:
            sample.skipped = sample.reason = f"{argv[0]} not installed"
            return sample
        out = self.runner(argv, remaining(deadline))
        if out.missing:
            self._missing_until = time.monotonic() + MISSING_RECHECK_SECONDS
            sample.skipped = sample.reason = f"{argv[0]} not installed"
            return sample
        if out.timed_out:
            sample.reason = "cec-ctl did not finish before the deadline"
            return sample
        sample.power, sample.raw, sample.reason = parse_power_status(out.stdout + "\n" + out.stderr)
        if (
            sample.power == "unknown"
            and out.returncode not in (0, None)
            and not sample.reason.startswith("TV")
        ):
            last = (out.stderr or out.stdout).strip().splitlines()
            sample.reason = f"cec-ctl failed: {last[-1][:200] if last else out.returncode}"
        return sample
