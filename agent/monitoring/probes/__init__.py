"""Link and device probes: one file per probe, each declaring and registering itself.

Importing this package imports each of its modules once; a probe file registers itself when
imported (``agent.monitoring.probes.registry``), and nothing else lists the probes.
``build_probes`` turns the ``probes:`` config section into probe objects: the probes the link plan
runs in the configured mode (``probes.link``) plus every box probe, each made by its own
``create(cfg, ctx)`` with the roots and functions it reads through (sysfs/procfs roots, command
runner, ioctl, resolver), so tests and benchmarks can point them at fake trees and recorded
outputs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from pathlib import Path

from agent.monitoring.probes import link
from agent.monitoring.probes.base import Probe, ProbeContext, Roots, Sample
from agent.monitoring.probes.config import ProbesConfig
from agent.monitoring.probes.registry import REGISTRY

__all__ = ["Probe", "ProbesConfig", "Sample", "Roots", "build_probes", "probe_names_for"]


def _import_probe_files() -> None:
    """Import every module of this package once: a probe file registers itself when imported, so
    a new probe is a new file here and nothing else."""
    with REGISTRY.batch():
        for info in pkgutil.iter_modules(__path__):
            if info.name.isidentifier() and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")


_import_probe_files()


def probe_names_for(cfg: ProbesConfig) -> list[str]:
    """The enabled probes for ``cfg.mode``, in the order they are built."""
    return [n for n in link.probe_names(cfg.mode) if getattr(cfg, n).enabled]


def build_probes(
    cfg: ProbesConfig,
    roots: Roots | None = None,
    *,
    tcp_targets: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    disk_paths: Sequence[Path] = (),
) -> list[Probe]:
    """The enabled probes for ``cfg.mode``; extra targets/names/paths come from the agent config."""
    ctx = ProbeContext(roots or Roots(), tuple(tcp_targets), tuple(dns_names), tuple(disk_paths))
    probes: list[Probe] = []
    for name in probe_names_for(cfg):
        section = getattr(cfg, name)
        probe = REGISTRY.get(name).factory(section, ctx)
        probe.interval, probe.timeout = section.interval_seconds, section.timeout_seconds
        if link.wanted(cfg.mode, probe):
            probes.append(probe)
    return probes
