"""The default gateway (from /proc/net/route) and whether it answers.

On a rural DSL line, "the gateway answers but the broker does not" (upstream fault) and "the
gateway does not answer" (cable, modem, power in the hall) send a technician to different places,
so we report both. Reachability comes from the kernel's neighbour table (an ARP entry in state
complete proves the modem answered recently) and, if configured, a TCP connect to one port on the
gateway (a refusal proves it too).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.domain.schema import between
from agent.monitoring.probes.base import ProbeContext, Sample, remaining
from agent.monitoring.probes.registry import Cadence, register
from agent.monitoring.probes.tcp import REACHABLE, connect_time

RTF_UP = 0x1
RTF_GATEWAY = 0x2
ATF_COM = 0x2  # neighbour entry complete


@dataclass
class GatewayProbeConfig:
    """``tcp_port``: a port to try on the gateway (0 = only read the neighbour table)."""

    tcp_port: int = field(default=80, metadata={"check": between(0, 65535)})


@dataclass
class GatewaySample(Sample):
    gateway: str | None = None
    interface: str | None = None
    neighbour: str | None = None  # complete | incomplete | absent
    tcp_status: str | None = None
    rtt_ms: float | None = None
    reachable: bool | None = None


def parse_route(text: str) -> tuple[str, str] | None:
    """The default IPv4 route with the lowest metric: (gateway address, interface)."""
    best: tuple[int, str, str] | None = None
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8:
            continue
        iface, dest, gw, flags, metric, mask = (
            parts[0],
            parts[1],
            parts[2],
            parts[3],
            parts[6],
            parts[7],
        )
        try:
            if int(dest, 16) != 0 or int(mask, 16) != 0:
                continue
            if int(flags, 16) & (RTF_UP | RTF_GATEWAY) != (RTF_UP | RTF_GATEWAY):
                continue
            address = socket.inet_ntoa(struct.pack("<I", int(gw, 16)))
            rank = int(metric)
        except ValueError:
            continue
        if best is None or rank < best[0]:
            best = (rank, address, iface)
    return (best[1], best[2]) if best else None


def parse_arp(text: str, address: str) -> str:
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == address:
            return "complete" if int(parts[2], 16) & ATF_COM else "incomplete"
    return "absent"


@register(
    "gateway",
    config=GatewayProbeConfig,
    sample=GatewaySample,
    cadence=Cadence(interval=60, timeout=3, interval_range=(5, 86400)),
)
class GatewayProbe:
    def __init__(self, cfg: GatewayProbeConfig, *, procfs: Path = Path("/proc")) -> None:
        self.cfg = cfg
        self.procfs = procfs

    @classmethod
    def create(cls, cfg: GatewayProbeConfig, ctx: ProbeContext) -> GatewayProbe:
        return cls(cfg, procfs=ctx.roots.procfs)

    def collect(self, deadline: float) -> GatewaySample:
        sample = GatewaySample(at=time.time())
        try:
            route = parse_route((self.procfs / "net/route").read_text())
        except OSError as exc:
            sample.ok, sample.error = False, f"cannot read routes: {exc.strerror}"
            return sample
        if route is None:
            sample.reachable = False
            sample.error = "no default route"
            return sample
        sample.gateway, sample.interface = route
        try:
            sample.neighbour = parse_arp((self.procfs / "net/arp").read_text(), sample.gateway)
        except OSError:
            sample.neighbour = None
        if self.cfg.tcp_port:
            status, rtt, _detail = connect_time(
                socket.AF_INET,
                (sample.gateway, self.cfg.tcp_port),
                time.monotonic() + remaining(deadline),
            )
            sample.tcp_status, sample.rtt_ms = status, rtt
        tcp_ok = sample.tcp_status in REACHABLE if sample.tcp_status else None
        if tcp_ok or sample.neighbour == "complete":
            sample.reachable = True
        elif tcp_ok is False or sample.neighbour in ("incomplete", "absent"):
            sample.reachable = False
        return sample
