"""SD/eMMC wear where the kernel exposes it (eMMC 5.0+ ``life_time`` and ``pre_eol_info``).

SD cards expose no wear figure through the kernel, so for them we report only what is known
(type, name, bytes written since boot from /sys/block/*/stat) and say wear is unavailable; we do
not guess.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.monitoring.probes.base import Sample, SysfsProbe, read_text
from agent.monitoring.probes.registry import Cadence, register

PRE_EOL = {1: "normal", 2: "warning", 3: "urgent"}


@dataclass
class StorageWearProbeConfig:
    """No keys of its own."""


@dataclass
class MmcDevice:
    name: str
    type: str | None = None
    model: str | None = None
    life_time_a_pct: int | None = None  # upper bound of the used-life band, e.g. 10 = 0-10 %
    life_time_b_pct: int | None = None
    pre_eol: str | None = None
    written_bytes_since_boot: int | None = None


@dataclass
class StorageWearSample(Sample):
    devices: list[MmcDevice] = field(default_factory=list)

    @property
    def worst_life_pct(self) -> int | None:
        values = [
            v for d in self.devices for v in (d.life_time_a_pct, d.life_time_b_pct) if v is not None
        ]
        return max(values) if values else None


def life_band(code: int) -> int | None:
    """JEDEC DEVICE_LIFE_TIME_EST: 0x01 = 0-10 % used ... 0x0A = 90-100 %, 0x0B = exceeded."""
    if 1 <= code <= 10:
        return code * 10
    if code == 11:
        return 110
    return None


@register(
    "storage_wear",
    config=StorageWearProbeConfig,
    sample=StorageWearSample,
    cadence=Cadence(interval=3600, timeout=2, interval_range=(60, 7 * 86400), quick=True),
)
class StorageWearProbe(SysfsProbe[StorageWearProbeConfig]):
    def collect(self, deadline: float) -> StorageWearSample:
        sample = StorageWearSample(at=time.time())
        for dev in sorted((self.sysfs / "bus/mmc/devices").glob("*")):
            item = MmcDevice(dev.name, read_text(dev / "type"), read_text(dev / "name"))
            life = read_text(dev / "life_time")
            if life:
                parts = life.split()
                try:
                    item.life_time_a_pct = life_band(int(parts[0], 16))
                    item.life_time_b_pct = life_band(int(parts[1], 16)) if len(parts) > 1 else None
                except ValueError:
                    pass
            eol = read_text(dev / "pre_eol_info")
            if eol:
                try:
                    item.pre_eol = PRE_EOL.get(int(eol, 16), "unknown")
                except ValueError:
                    pass
            item.written_bytes_since_boot = self._written(dev)
            sample.devices.append(item)
        if not sample.devices:
            sample.skipped = "no MMC/SD devices"
        return sample

    def _written(self, dev: Path) -> int | None:
        """Sectors written (field 7 of the block device's stat) times 512."""
        block = dev / "block"
        try:
            disks = sorted(block.iterdir())
        except OSError:
            return None
        for disk in disks:
            stat = read_text(disk / "stat")
            if stat:
                fields = stat.split()
                if len(fields) > 6:
                    return int(fields[6]) * 512
        return None
