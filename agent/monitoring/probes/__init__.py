"""Link and device probes: one small plugin per file, each with its config, sample and collect().

``build_probes`` is the registry: it turns the ``probes:`` config section into probe objects,
picking the link probes for the configured mode and passing each probe the roots and functions it
reads through (sysfs/procfs roots, command runner, ioctl, resolver), so tests and benchmarks can
point them at fake trees and recorded outputs.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.monitoring.probes.base import Probe, Resolver, Runner, Sample, run_command
from agent.monitoring.probes.cec import CecProbe
from agent.monitoring.probes.clocksync import AdjtimexFn, ClockSyncProbe, libc_adjtimex
from agent.monitoring.probes.config import ProbesConfig
from agent.monitoring.probes.datacast import DatacastProbe
from agent.monitoring.probes.display import DisplayProbe
from agent.monitoring.probes.dns import DnsProbe
from agent.monitoring.probes.dvb import DvbProbe, IoctlFn, kernel_ioctl
from agent.monitoring.probes.gateway import GatewayProbe
from agent.monitoring.probes.icmp import IcmpProbe
from agent.monitoring.probes.netif import NetifProbe
from agent.monitoring.probes.power import PowerProbe
from agent.monitoring.probes.storage_wear import StorageWearProbe
from agent.monitoring.probes.system import SystemProbe
from agent.monitoring.probes.tcp import TcpProbe
from agent.monitoring.probes.thermal import ThermalProbe

__all__ = [
    "Probe",
    "ProbesConfig",
    "Sample",
    "Roots",
    "build_probes",
    "PROBE_NAMES",
    "probe_names_for",
]

BOX_PROBES = ("system", "thermal", "display", "cec", "clocksync", "storage_wear", "power")
LINK_PROBES = {
    "telecom": ("tcp", "dns", "icmp", "gateway", "netif"),
    # The return path may exist on a satellite box too: tcp/dns run when targets are configured.
    "satellite": ("dvb", "datacast", "tcp", "dns", "netif"),
}
PROBE_NAMES = ("tcp", "dns", "icmp", "gateway", "netif", "dvb", "datacast", *BOX_PROBES)


@dataclass
class Roots:
    """Where probes read the world from; defaults are the real system."""

    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    dev: Path = Path("/dev")
    runner: Runner = run_command
    ioctl: IoctlFn = kernel_ioctl
    resolver: Resolver = socket.getaddrinfo
    adjtimex: AdjtimexFn = libc_adjtimex
    which: Callable[[str], str | None] = shutil.which
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    extra: dict[str, object] = field(default_factory=dict)


def probe_names_for(cfg: ProbesConfig) -> list[str]:
    names = list(LINK_PROBES[cfg.mode]) + list(BOX_PROBES)
    return [n for n in names if getattr(cfg, n).enabled]


def build_probes(
    cfg: ProbesConfig,
    roots: Roots | None = None,
    *,
    tcp_targets: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    disk_paths: Sequence[Path] = (),
) -> list[Probe]:
    """The enabled probes for ``cfg.mode``; extra targets/names/paths come from the agent config."""
    r = roots or Roots()
    factories: dict[str, Callable[[], Probe]] = {
        "tcp": lambda: TcpProbe(cfg.tcp, resolver=r.resolver),
        "dns": lambda: DnsProbe(cfg.dns, resolver=r.resolver),
        "icmp": lambda: IcmpProbe(cfg.icmp, runner=r.runner, procfs=r.procfs, which=r.which),
        "gateway": lambda: GatewayProbe(cfg.gateway, procfs=r.procfs),
        "netif": lambda: NetifProbe(cfg.netif, sysfs=r.sysfs),
        "dvb": lambda: DvbProbe(cfg.dvb, dev_root=r.dev, ioctl=r.ioctl, runner=r.runner),
        "datacast": lambda: DatacastProbe(cfg.datacast, sysfs=r.sysfs),
        "system": lambda: SystemProbe(cfg.system, procfs=r.procfs, statvfs=r.statvfs),
        "thermal": lambda: ThermalProbe(cfg.thermal, sysfs=r.sysfs),
        "display": lambda: DisplayProbe(cfg.display, sysfs=r.sysfs),
        "cec": lambda: CecProbe(cfg.cec, runner=r.runner),
        "clocksync": lambda: ClockSyncProbe(cfg.clocksync, adjtimex=r.adjtimex),
        "storage_wear": lambda: StorageWearProbe(cfg.storage_wear, sysfs=r.sysfs),
        "power": lambda: PowerProbe(cfg.power, sysfs=r.sysfs, runner=r.runner, which=r.which),
    }
    probes: list[Probe] = []
    for name in probe_names_for(cfg):
        probe = factories[name]()
        if isinstance(probe, TcpProbe):
            probe.targets = _merge(probe.targets, tcp_targets)
            if cfg.mode == "satellite" and not probe.targets:
                continue
        elif isinstance(probe, DnsProbe):
            probe.names = _merge(probe.names, dns_names)
            if cfg.mode == "satellite" and not probe.names:
                continue
        elif isinstance(probe, SystemProbe):
            probe.paths = [
                Path(p) for p in _merge([str(p) for p in probe.paths], [str(p) for p in disk_paths])
            ]
        probes.append(probe)
    return probes


def _merge(first: Sequence[str], second: Sequence[str]) -> list[str]:
    out: list[str] = []
    for item in [*first, *second]:
        if item not in out:
            out.append(item)
    return out
