"""Under-voltage on Raspberry Pi boards: the firmware's throttled flags.

Village halls have unstable power and cheap USB supplies; under-voltage corrupts SD cards and makes
playback stutter, and it is invisible from outside. Sources, first found wins: the ``rpi_volt``
hwmon sensor (``in0_lcrit_alarm``), the firmware's ``get_throttled`` sysfs file, the output of
``vcgencmd get_throttled``. Other boards: not applicable, not "fine".
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.domain.health import Verdict
from agent.domain.schema import between
from agent.monitoring.probes.base import (
    ProbeContext,
    Runner,
    Sample,
    read_int,
    read_text,
    remaining,
    run_command,
)
from agent.monitoring.probes.registry import (
    Cadence,
    CountHysteresis,
    Judging,
    Severity,
    register,
)

UNDERVOLT_NOW = 1 << 0
FREQ_CAPPED_NOW = 1 << 1
THROTTLED_NOW = 1 << 2
SOFT_TEMP_LIMIT_NOW = 1 << 3
UNDERVOLT_SINCE_BOOT = 1 << 16
THROTTLED_SINCE_BOOT = 1 << 18


@dataclass
class PowerProbeConfig:
    vcgencmd: str = "vcgencmd"


@dataclass
class UndervoltageAlarm(CountHysteresis):
    raise_after: int = field(default=1, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=5, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"


@dataclass
class PowerSample(Sample):
    source: str | None = None
    undervoltage_now: bool | None = None
    undervoltage_since_boot: bool | None = None
    throttled_now: bool | None = None
    throttled_bits: int | None = None


_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")


def parse_vcgencmd(text: str) -> int | None:
    m = _THROTTLED.search(text)
    return int(m.group(1), 0) if m else None


def verdicts(s: PowerSample, ctx: Judging) -> dict[str, Verdict]:
    """Under-voltage now; a board without a sensor says nothing (unknown)."""
    detail = {"source": s.source, "since_boot": s.undervoltage_since_boot}
    return {"undervoltage": Verdict(s.undervoltage_now, detail)}


@register(
    "power",
    config=PowerProbeConfig,
    sample=PowerSample,
    cadence=Cadence(interval=60, timeout=3),
    alarms={"undervoltage": UndervoltageAlarm},
    verdicts=verdicts,
)
class PowerProbe:
    def __init__(
        self,
        cfg: PowerProbeConfig,
        *,
        sysfs: Path = Path("/sys"),
        runner: Runner = run_command,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self.cfg = cfg
        self.sysfs = sysfs
        self.runner = runner
        self.which = which
        self._tool: tuple[float, str | None] | None = None  # (checked at, path): re-checked hourly

    @classmethod
    def create(cls, cfg: PowerProbeConfig, ctx: ProbeContext) -> PowerProbe:
        r = ctx.roots
        return cls(cfg, sysfs=r.sysfs, runner=r.runner, which=r.which)

    def collect(self, deadline: float) -> PowerSample:
        sample = PowerSample(at=time.time())
        for hw in sorted((self.sysfs / "class/hwmon").glob("hwmon*")):
            if read_text(hw / "name") == "rpi_volt":
                alarm = read_int(hw / "in0_lcrit_alarm")
                if alarm is not None:
                    sample.source = "hwmon rpi_volt"
                    sample.undervoltage_now = alarm == 1
                    # the hwmon sensor has no history; keep the firmware's bits too if present
        bits = read_text(self.sysfs / "devices/platform/soc/soc:firmware/get_throttled")
        if bits is not None:
            try:
                self._apply(sample, int(bits, 16), "sysfs get_throttled")
            except ValueError:
                pass
        if sample.source is None and self._vcgencmd():
            out = self.runner([self.cfg.vcgencmd, "get_throttled"], remaining(deadline))
            value = parse_vcgencmd(out.stdout)
            if value is not None:
                self._apply(sample, value, "vcgencmd")
            else:
                sample.ok, sample.error = (
                    False,
                    f"unexpected vcgencmd output: {out.stdout.strip()[:100]!r}",
                )
        if sample.source is None and sample.ok:
            sample.skipped = "no under-voltage sensor (not a Raspberry Pi?)"
        return sample

    def _vcgencmd(self) -> str | None:
        now = time.monotonic()
        if self._tool is None or now - self._tool[0] > 3600.0:
            self._tool = (now, self.which(self.cfg.vcgencmd))
        return self._tool[1]

    @staticmethod
    def _apply(sample: PowerSample, bits: int, source: str) -> None:
        sample.throttled_bits = bits
        if sample.undervoltage_now is None:
            sample.undervoltage_now = bool(bits & UNDERVOLT_NOW)
        sample.undervoltage_since_boot = bool(bits & UNDERVOLT_SINCE_BOOT)
        sample.throttled_now = bool(bits & (THROTTLED_NOW | FREQ_CAPPED_NOW))
        sample.source = sample.source or source
