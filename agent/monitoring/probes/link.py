"""The return link: the one place that decides which probes measure it and whose word counts.

- Which link probes run, per mode (``LINK_PROBES``): telecom runs tcp, dns, icmp, gateway and
  netif; satellite runs dvb, datacast and netif, and tcp/dns only when they have targets (a
  return path, if the box has one). Every registered probe not named here is a box probe and runs
  in both modes.
- Who speaks for the link (``SPEAKERS``, in order of preference): TCP once it has targets, else
  ICMP. A probe speaks by declaring ``link=`` (how its sample reads as a ``LinkCycle``); its
  cycles feed the sliding window and the periodic summary in either mode.
- The link's alarms, judged across probes, in telecom mode only: ``link_down`` from the speaking
  probe's cycles, ``link_degraded`` from the window. In satellite mode the DVB lock is the link
  (the dvb probe's own alarm).

How ICMP pings (unprivileged socket, ``ping`` binary, or skipped with the reason) is the icmp
probe's own business (``IcmpProbe.choose_method``): a skipped ICMP probe has no cycle to give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.domain.health import Verdict
from agent.domain.linkstats import WindowStats
from agent.domain.schema import between
from agent.monitoring.probes.base import Probe
from agent.monitoring.probes.registry import (
    REGISTRY,
    CountHysteresis,
    LinkCycle,
    ProbeSpec,
    Registry,
    Severity,
)

# mode -> {link probe: runs only when it has targets}
LINK_PROBES: dict[str, dict[str, bool]] = {
    "telecom": {"tcp": False, "dns": False, "icmp": False, "gateway": False, "netif": False},
    "satellite": {"dvb": False, "datacast": False, "tcp": True, "dns": True, "netif": False},
}
SPEAKERS = ("tcp", "icmp")
TELECOM = "telecom"


@dataclass
class LinkDownAlarm(CountHysteresis):
    severity: Severity = "critical"


@dataclass
class LinkDegradedAlarm(CountHysteresis):
    """Judged on the sliding window: p95 RTT or loss over the limit, with enough attempts."""

    rtt_p95_ms: float = field(default=1500.0, metadata={"check": between(1, 600000)})
    loss_pct: float = field(default=10.0, metadata={"check": between(0, 100)})
    jitter_ms: float = field(default=0.0, metadata={"check": between(0, 600000)})  # 0 = ignore
    min_attempts: int = field(default=5, metadata={"check": between(1, 100000)})
    raise_after: int = field(default=3, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=3, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"


REGISTRY.add_alarms("link", {"link_down": LinkDownAlarm, "link_degraded": LinkDegradedAlarm})


def has_targets(probe: object) -> bool:
    """Whether a probe has anything to measure; one that does not say is assumed to."""
    check = getattr(probe, "has_targets", None)
    return bool(check()) if callable(check) else True


def probe_names(mode: str, registry: Registry = REGISTRY) -> list[str]:
    """The probes that run in ``mode``: its link probes, then every box probe."""
    link_names = {name for plan in LINK_PROBES.values() for name in plan}
    chosen = [name for name in LINK_PROBES[mode] if name in registry]
    return chosen + [name for name in registry.names() if name not in link_names]


def wanted(mode: str, probe: Probe) -> bool:
    """False for a probe this mode runs only with targets, when it has none."""
    return not LINK_PROBES[mode].get(probe.name, False) or has_targets(probe)


class Link:
    """Reads probe samples as link cycles and judges the link's alarms (see the module docstring).

    A speaker counts as present once it has targets (asked of the probes the monitor runs) or
    once it has produced a cycle; a cycle counts only when no speaker before it is present.
    """

    def __init__(self, mode: str, probes: Sequence[Probe] = ()) -> None:
        self.mode = mode
        self.probes = list(probes)
        self._heard: set[str] = set()

    def _present(self, name: str) -> bool:
        return name in self._heard or any(p.name == name and has_targets(p) for p in self.probes)

    def cycle(self, spec: ProbeSpec, sample: Any) -> LinkCycle | None:
        """The link cycle in ``sample`` if its probe speaks for the link now, else None."""
        if spec.link is None or spec.name not in SPEAKERS:
            return None
        cycle = spec.link(sample)
        if cycle is None:
            return None
        self._heard.add(spec.name)
        before = SPEAKERS[: SPEAKERS.index(spec.name)]
        return None if any(self._present(name) for name in before) else cycle

    def down_verdict(self, cycle: LinkCycle) -> dict[str, Verdict]:
        if self.mode != TELECOM:
            return {}
        return {"link_down": Verdict(not cycle.up, cycle.detail)}

    def degraded_verdict(
        self, stats: WindowStats, c: LinkDegradedAlarm, down: bool
    ) -> dict[str, Verdict]:
        """Unknown while link_down is raised (a dead link is its business) or with too few
        attempts in the window to say anything."""
        if self.mode != TELECOM:
            return {}
        bad: bool | None
        if down or stats.attempts < c.min_attempts:
            bad = None
        else:
            reasons = []
            if stats.rtt_p95_ms is not None and stats.rtt_p95_ms > c.rtt_p95_ms:
                reasons.append("rtt")
            if stats.loss is not None and stats.loss * 100.0 > c.loss_pct:
                reasons.append("loss")
            if c.jitter_ms > 0 and stats.jitter_ms is not None and stats.jitter_ms > c.jitter_ms:
                reasons.append("jitter")
            bad = bool(reasons)
        detail = {
            "rtt_p95_ms": stats.rtt_p95_ms,
            "loss": stats.loss,
            "jitter_ms": stats.jitter_ms,
            "attempts": stats.attempts,
        }
        return {"link_degraded": Verdict(bad, detail)}

    def summary(self, stats: WindowStats, alarms: Any) -> dict[str, Any]:
        """Heartbeat fields for the return link (telecom; in satellite mode dvb says "link")."""
        if self.mode != TELECOM:
            return {}
        link = "unknown"
        if "link_down" in alarms:
            link = "down"
        elif stats.cycles:
            link = "up" if stats.up_cycles else "down"
        return {
            "link": link,
            "rtt_ms": _r(stats.rtt_p50_ms),
            "rtt_p95_ms": _r(stats.rtt_p95_ms),
            "loss_pct": None if stats.loss is None else round(stats.loss * 100.0, 1),
        }


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
