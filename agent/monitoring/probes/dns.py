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

from agent.domain.schema import between
from agent.monitoring.probes.base import ResolveError, Resolver, Sample, remaining, resolve


@dataclass
class DnsProbeConfig:
    """``names`` to resolve; the broker's host name is added by the agent when it has one."""

    enabled: bool = True
    names: list[str] = field(default_factory=list)
    interval_seconds: float = field(default=300.0, metadata={"check": between(10, 86400)})
    timeout_seconds: float = field(default=5.0, metadata={"check": between(0.1, 60)})


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


class DnsProbe:
    name = "dns"

    def __init__(self, cfg: DnsProbeConfig, *, resolver: Resolver = socket.getaddrinfo) -> None:
        self.cfg = cfg
        self.interval = cfg.interval_seconds
        self.timeout = cfg.timeout_seconds
        self.resolver = resolver
        self.names: list[str] = list(cfg.names)

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
