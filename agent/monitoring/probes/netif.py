"""Network interfaces from sysfs: carrier, carrier changes, throughput and error counters.

Rates come from counter deltas between two samples over the monotonic clock; a counter that goes
backwards (driver reload, 32-bit wrap) starts a new baseline instead of producing a negative rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.monitoring.probes.base import Sample, SysfsProbe, read_int, read_text
from agent.monitoring.probes.registry import Cadence, register

COUNTERS = (
    "rx_bytes",
    "tx_bytes",
    "rx_packets",
    "tx_packets",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
)


@dataclass
class NetifProbeConfig:
    """``interfaces``: names to watch; empty = every interface except lo and virtual ones."""

    interfaces: list[str] = field(default_factory=list)


@dataclass
class InterfaceState:
    name: str
    operstate: str | None = None
    carrier: bool | None = None
    carrier_changes: int | None = None
    speed_mbps: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # per second, from the previous sample


@dataclass
class NetifSample(Sample):
    interfaces: list[InterfaceState] = field(default_factory=list)


@register(
    "netif",
    config=NetifProbeConfig,
    sample=NetifSample,
    cadence=Cadence(60, 2, quick=True),
)
class NetifProbe(SysfsProbe[NetifProbeConfig]):
    def __init__(self, cfg: NetifProbeConfig, *, sysfs: Path = Path("/sys")) -> None:
        super().__init__(cfg, sysfs=sysfs)
        self._previous: dict[str, tuple[float, dict[str, int]]] = {}

    def interface_names(self) -> list[str]:
        if self.cfg.interfaces:
            return list(self.cfg.interfaces)
        base = self.sysfs / "class/net"
        try:
            names = sorted(p.name for p in base.iterdir())
        except OSError:
            return []
        # Physical ones have a device link; skip lo, bridges' helpers, ifb and the like.
        return [n for n in names if n != "lo" and (base / n / "device").exists()]

    def collect(self, deadline: float) -> NetifSample:
        sample = NetifSample(at=time.time())
        now = time.monotonic()
        for name in self.interface_names():
            base = self.sysfs / "class/net" / name
            if not base.exists():
                sample.interfaces.append(InterfaceState(name, operstate="absent"))
                continue
            state = InterfaceState(name, operstate=read_text(base / "operstate"))
            carrier = read_int(base / "carrier")  # EINVAL while the interface is down
            state.carrier = None if carrier is None else carrier == 1
            state.carrier_changes = read_int(base / "carrier_changes")
            speed = read_int(base / "speed")
            state.speed_mbps = speed if speed is not None and speed > 0 else None
            for counter in COUNTERS:
                value = read_int(base / "statistics" / counter)
                if value is not None:
                    state.counters[counter] = value
            previous = self._previous.get(name)
            if previous is not None:
                dt = now - previous[0]
                if dt > 0:
                    for key, value in state.counters.items():
                        old = previous[1].get(key)
                        if old is not None and value >= old:
                            state.rates[key] = (value - old) / dt
            self._previous[name] = (now, state.counters)
            sample.interfaces.append(state)
        return sample
