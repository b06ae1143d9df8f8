"""TCP connect time to the broker and other configured hosts.

A refused connection still proves the path (the far host answered with a RST), so ``refused`` counts
as reachable: the link is up even if the service is down. Connects are non-blocking and bounded by
the probe deadline; names are resolved with a deadline too (getaddrinfo has none).
"""

from __future__ import annotations

import errno
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from agent.monitoring.probes.base import (
    ProbeContext,
    ResolveError,
    Resolver,
    Sample,
    check_host_port_list,
    merge,
    parse_host_port,
    remaining,
    resolve,
)
from agent.monitoring.probes.registry import Cadence, LinkCycle, register

REACHABLE = ("open", "refused")


@dataclass
class TcpProbeConfig:
    """``targets`` are ``host:port``; the MQTT broker is added by the agent when it knows it."""

    targets: list[str] = field(default_factory=list, metadata={"check": check_host_port_list})


@dataclass
class TcpResult:
    target: str
    status: str  # open | refused | timeout | unreachable | dns_error | error
    rtt_ms: float | None = None
    address: str | None = None
    detail: str | None = None

    @property
    def reachable(self) -> bool:
        return self.status in REACHABLE


@dataclass
class TcpSample(Sample):
    results: list[TcpResult] = field(default_factory=list)

    @property
    def any_reachable(self) -> bool:
        return any(r.reachable for r in self.results)


def connect_time(
    family: int, sockaddr: tuple[Any, ...], deadline: float
) -> tuple[str, float | None, str | None]:
    """One non-blocking connect; (status, rtt_ms, detail). Never waits past ``deadline``."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        start = time.monotonic()
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS):
            return _classify(code), None, errno.errorcode.get(code, str(code))
        if code == errno.EINPROGRESS:
            _r, writable, _x = select.select([], [sock], [], remaining(deadline))
            if not writable:
                return "timeout", None, None
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        rtt = (time.monotonic() - start) * 1000.0
        if code == 0:
            return "open", rtt, None
        status = _classify(code)
        return status, rtt if status == "refused" else None, errno.errorcode.get(code, str(code))
    except OSError as exc:
        return _classify(exc.errno or 0), None, str(exc)
    finally:
        sock.close()


def _classify(code: int) -> str:
    if code == errno.ECONNREFUSED:
        return "refused"
    if code == errno.ETIMEDOUT:
        return "timeout"
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN):
        return "unreachable"
    return "error"


def link_cycle(sample: TcpSample) -> LinkCycle | None:
    """Each target is one attempt; the link is up when any target answered (refused counts)."""
    if not sample.results:
        return None
    return LinkCycle(
        sample.any_reachable,
        [(r.reachable, r.rtt_ms) for r in sample.results],
        {"targets": {r.target: r.status for r in sample.results}},
    )


@register(
    "tcp",
    config=TcpProbeConfig,
    sample=TcpSample,
    cadence=Cadence(interval=60, timeout=5, interval_range=(5, 86400)),
    link=link_cycle,
)
class TcpProbe:
    def __init__(self, cfg: TcpProbeConfig, *, resolver: Resolver = socket.getaddrinfo) -> None:
        self.cfg = cfg
        self.resolver = resolver
        self.targets: list[str] = list(cfg.targets)

    @classmethod
    def create(cls, cfg: TcpProbeConfig, ctx: ProbeContext) -> TcpProbe:
        probe = cls(cfg, resolver=ctx.roots.resolver)
        probe.targets = merge(probe.targets, ctx.tcp_targets)
        return probe

    def has_targets(self) -> bool:
        return bool(self.targets)

    def collect(self, deadline: float) -> TcpSample:
        sample = TcpSample(at=time.time())
        if not self.targets:
            sample.skipped = "no targets configured"
            return sample
        # Split the time fairly so one dead target cannot eat the others' budget.
        for i, target in enumerate(self.targets):
            share = remaining(deadline) / (len(self.targets) - i)
            sample.results.append(self.check(target, time.monotonic() + share))
        return sample

    def check(self, target: str, deadline: float) -> TcpResult:
        host, port = parse_host_port(target)
        try:
            addrs = resolve(host, port, deadline, resolver=self.resolver)
        except ResolveError as exc:
            return TcpResult(target, "dns_error", detail=exc.reason)
        result = TcpResult(target, "error", detail="no address tried")
        for family, sockaddr in addrs:
            status, rtt, detail = connect_time(family, sockaddr, deadline)
            result = TcpResult(target, status, rtt, sockaddr[0], detail)
            if result.reachable or remaining(deadline) <= 0:
                break
        return result
