"""Samples to alarm changes: each probe's verdicts and the link's, counted by the domain's
hysteresis machines (``agent.domain.health``).

The judge knows no probe by name: it finds a sample's probe in the registry by the sample's type,
asks that probe's ``verdicts`` function, and asks the link plan (``probes.link``) whether the
sample speaks for the link. A verdict function that raises, or that names an alarm its probe did
not declare, is logged and skipped: a plugin's bug costs its own alarms, not the monitor thread.
Owned by one thread (the monitor's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.domain.health import AlarmChange, HealthEngine, Verdict
from agent.domain.linkstats import WindowStats
from agent.monitoring.probes.base import Probe
from agent.monitoring.probes.link import Link
from agent.monitoring.probes.registry import (
    REGISTRY,
    Judging,
    LinkCycle,
    ProbeSpec,
    Registry,
    hysteresis_of,
)

log = logging.getLogger("agent.monitoring.monitor")


@dataclass(frozen=True)
class Observation:
    """What one sample caused: alarm changes, and the link cycle it counts as (if any)."""

    changes: list[AlarmChange]
    cycle: LinkCycle | None = None
    spec: ProbeSpec | None = None


class AlarmJudge:
    """All alarms of the registered probes and the link, judged from samples and window stats."""

    def __init__(
        self,
        alarms: Any,
        mode: str = "telecom",
        *,
        probes: Sequence[Probe] = (),
        registry: Registry = REGISTRY,
    ) -> None:
        self.alarms = alarms
        self.mode = mode
        self.registry = registry
        self.link = Link(mode, probes)
        self.engine = HealthEngine(
            {name: hysteresis_of(getattr(alarms, name)) for name in registry.alarm_settings()}
        )
        self._first_seen: dict[str, float] = {}

    @property
    def machines(self) -> dict[str, Any]:
        return self.engine.machines

    def restore(self, name: str, raised_at: float) -> None:
        self.engine.restore(name, raised_at)

    def active(self) -> dict[str, float]:
        return self.engine.active()

    def observe(self, sample: object, now: float, mono: float) -> Observation:
        spec = self.registry.for_sample(sample)
        if spec is None:
            return Observation([])
        first = self._first_seen.setdefault(spec.name, mono)
        verdicts = self._verdicts(spec, sample, Judging(self.mode, self.alarms, mono - first))
        cycle = self.link.cycle(spec, sample)
        if cycle is not None:
            verdicts.update(self.link.down_verdict(cycle))
        return Observation(self.engine.judge(verdicts, now, mono), cycle, spec)

    def sample(self, sample: object, now: float, mono: float) -> list[AlarmChange]:
        """The alarm changes one probe sample causes."""
        return self.observe(sample, now, mono).changes

    def window(self, stats: WindowStats, now: float, mono: float) -> list[AlarmChange]:
        """The sliding window, re-judged after each link cycle."""
        settings = self.alarms.link_degraded
        down = self.engine.is_active("link_down")
        return self.engine.judge(self.link.degraded_verdict(stats, settings, down), now, mono)

    def _verdicts(self, spec: ProbeSpec, sample: object, ctx: Judging) -> dict[str, Verdict]:
        if spec.verdicts is None:
            return {}
        try:
            verdicts = dict(spec.verdicts(sample, ctx))
        except Exception:  # errors as data: this probe's alarms wait for its next sample
            log.exception("verdicts of probe %s failed", spec.name)
            return {}
        return _declared(spec, verdicts)


def _declared(spec: ProbeSpec, verdicts: Mapping[str, Verdict]) -> dict[str, Verdict]:
    stray = sorted(set(verdicts) - set(spec.alarms))
    if stray:
        log.error("probe %s gave verdicts on alarms it does not declare: %s", spec.name, stray)
    return {name: v for name, v in verdicts.items() if name in spec.alarms}
