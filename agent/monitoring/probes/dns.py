"""DNS resolution time through the system resolver, with a hard deadline.

We time ``getaddrinfo`` itself (the same path the MQTT client uses), not a hand-made query,
because what matters is whether the terminal can resolve its broker. ``getaddrinfo`` has no
timeout of its own (measured: 10 s against a dead resolver), so it runs on a helper thread that
is abandoned at the deadline; see ``agent.monitoring.probes.base.resolve``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from agent.monitoring.probes.base import (
    ProbeContext,
    ResolveError,
    Resolver,
    Sample,
    merge,
    remaining,
    resolve,
)
from agent.monitoring.probes.registry import Cadence, register


@dataclass
class DnsProbeConfig:
    """``names`` to resolve; the broker's host name is added by the agent when it has one."""

    names: list[str] = field(default_factory=list)


@dataclass
class DnsResult:
    name: str
    ok: bool
    ms: float | None = None
    addresses: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class DnsSample(Sample):
    results: list[DnsResult] = field(default_factory=list)

    @property
    def all_ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)


@register(
    "dns",
    config=DnsProbeConfig,
    sample=DnsSample,
    cadence=Cadence(interval=300, timeout=5, interval_range=(10, 86400)),
)
class DnsProbe:
    def __init__(self, cfg: DnsProbeConfig, *, resolver: Resolver = socket.getaddrinfo) -> None:
        self.cfg = cfg
        self.resolver = resolver
        self.names: list[str] = list(cfg.names)

    @classmethod
    def create(cls, cfg: DnsProbeConfig, ctx: ProbeContext) -> DnsProbe:
        probe = cls(cfg, resolver=ctx.roots.resolver)
        probe.names = merge(probe.names, ctx.dns_names)
        return probe

    def has_targets(self) -> bool:
        return bool(self.names)

    def collect(self, deadline: float) -> DnsSample:
        sample = DnsSample(at=time.time())
        if not self.names:
            sample.skipped = "no names configured"
            return sample
        for i, name in enumerate(self.names):
            share = remaining(deadline) / (len(self.names) - i)
            sample.results.append(self.lookup(name, time.monotonic() + share))
        return sample

    def lookup(self, name: str, deadline: float) -> DnsResult:
        start = time.monotonic()
        try:
            addrs = resolve(name, None, deadline, resolver=self.resolver)
        except ResolveError as exc:
            return DnsResult(name, False, error=exc.reason)
        ms = (time.monotonic() - start) * 1000.0
        return DnsResult(name, True, ms, sorted({a[1][0] for a in addrs}))
