"""ICMP echo where the system allows it, skipped with a stated reason where it does not.

Order of attempts: an unprivileged ping socket (``SOCK_DGRAM``/``IPPROTO_ICMP``, allowed when our
group is inside ``net.ipv4.ping_group_range``; Debian 12 leaves it closed), then the system
``ping`` binary (it carries cap_net_raw). We never open raw sockets: the agent does not run as
root. Where neither works the sample says ``skipped`` with the reason, and the TCP probe carries
link health alone.
"""

from __future__ import annotations

import errno
import os
import re
import select
import shutil
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.domain.schema import between
from agent.monitoring.probes.base import (
    ProbeContext,
    ResolveError,
    Runner,
    Sample,
    read_text,
    remaining,
    resolve,
    run_command,
)
from agent.monitoring.probes.registry import Cadence, LinkCycle, register


@dataclass
class IcmpProbeConfig:
    hosts: list[str] = field(default_factory=list)
    count: int = field(default=3, metadata={"check": between(1, 20)})
    method: Literal["auto", "socket", "binary"] = "auto"
    ping_binary: str = "ping"


@dataclass
class IcmpResult:
    host: str
    sent: int = 0
    received: int = 0
    rtts_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def loss(self) -> float | None:
        return None if self.sent == 0 else 1.0 - self.received / self.sent


@dataclass
class IcmpSample(Sample):
    method: str | None = None
    results: list[IcmpResult] = field(default_factory=list)


ICMP_ECHO = 8
ICMP_ECHOREPLY = 0
ICMPV6_ECHO = 128
ICMPV6_ECHOREPLY = 129


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(seq: int, payload: bytes, v6: bool = False) -> bytes:
    kind = ICMPV6_ECHO if v6 else ICMP_ECHO
    header = struct.pack("!BBHHH", kind, 0, 0, 0, seq)  # the kernel owns the id on ping sockets
    if v6:
        return header + payload  # the kernel computes the ICMPv6 checksum
    csum = _checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, 0, seq) + payload


def ping_socket_open(v6: bool = False) -> socket.socket:
    """Open an unprivileged ping socket; raises PermissionError where ping_group_range forbids."""
    if v6:
        return socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)


def ping_with_socket(host: str, addr: str, v6: bool, count: int, deadline: float) -> IcmpResult:
    result = IcmpResult(host)
    reply_kind = ICMPV6_ECHOREPLY if v6 else ICMP_ECHOREPLY
    with ping_socket_open(v6) as sock:
        sock.setblocking(False)
        sent_at: dict[int, float] = {}
        for seq in range(1, count + 1):
            payload = os.urandom(8)
            sock.sendto(echo_request(seq, payload, v6), (addr, 0))
            sent_at[seq] = time.monotonic()
            result.sent += 1
            # Wait for this reply (or the per-packet share of the budget) before the next one.
            per_packet = remaining(deadline) / (count - seq + 1)
            wait_until = time.monotonic() + per_packet
            while seq in sent_at and remaining(wait_until) > 0:
                ready, _w, _x = select.select([sock], [], [], remaining(wait_until))
                if not ready:
                    break
                data = sock.recv(2048)
                if len(data) < 8:
                    continue
                kind, _code, _csum, _ident, rseq = struct.unpack("!BBHHH", data[:8])
                if kind == reply_kind and rseq in sent_at:
                    result.rtts_ms.append((time.monotonic() - sent_at.pop(rseq)) * 1000.0)
                    result.received += 1
    return result


_PING_TX = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_TIME = re.compile(r"time[=<]\s*([0-9.]+)\s*ms")


def parse_ping_output(host: str, text: str) -> IcmpResult:
    """Parse iputils or busybox ping output: the summary line and each reply's time."""
    result = IcmpResult(host)
    result.rtts_ms = [float(m) for m in _PING_TIME.findall(text)]
    summary = _PING_TX.search(text)
    if summary:
        result.sent, result.received = int(summary.group(1)), int(summary.group(2))
    else:
        result.received = len(result.rtts_ms)
        result.sent = max(result.received, 0)
        result.error = "no summary line in ping output"
    return result


def link_cycle(sample: IcmpSample) -> LinkCycle | None:
    """Each echo is one attempt; the link is up when any host answered any echo."""
    if not sample.results:
        return None
    attempts: list[tuple[bool, float | None]] = []
    for r in sample.results:
        attempts += [(True, rtt) for rtt in r.rtts_ms]
        attempts += [(False, None)] * max(0, r.sent - r.received)
    return LinkCycle(
        any(r.received > 0 for r in sample.results),
        attempts,
        {"hosts": {r.host: f"{r.received}/{r.sent}" for r in sample.results}},
    )


@register(
    "icmp",
    config=IcmpProbeConfig,
    sample=IcmpSample,
    cadence=Cadence(interval=60, timeout=5, interval_range=(5, 86400), timeout_range=(0.5, 60)),
    link=link_cycle,
)
class IcmpProbe:
    def __init__(
        self,
        cfg: IcmpProbeConfig,
        *,
        runner: Runner = run_command,
        procfs: Path = Path("/proc"),
        which: object = shutil.which,
        socket_opener: object = ping_socket_open,
    ) -> None:
        self.cfg = cfg
        self.runner = runner
        self.procfs = procfs
        self.which = which
        self.socket_opener = socket_opener
        self.hosts: list[str] = list(cfg.hosts)
        self._method: str | None = None
        self._skip_reason: str | None = None

    @classmethod
    def create(cls, cfg: IcmpProbeConfig, ctx: ProbeContext) -> IcmpProbe:
        r = ctx.roots
        return cls(cfg, runner=r.runner, procfs=r.procfs, which=r.which)

    def has_targets(self) -> bool:
        return bool(self.hosts)

    def choose_method(self) -> tuple[str | None, str | None]:
        """Find out once which way (if any) this box lets us ping; (method, skip reason)."""
        reasons = []
        if self.cfg.method in ("auto", "socket"):
            try:
                self.socket_opener().close()  # type: ignore[operator]
                return "socket", None
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT):
                    raise
                rng = read_text(self.procfs / "sys/net/ipv4/ping_group_range") or "?"
                rng = " ".join(rng.split())
                reasons.append(f"unprivileged ICMP not permitted (net.ipv4.ping_group_range={rng})")
        if self.cfg.method in ("auto", "binary"):
            binary = self.which(self.cfg.ping_binary)  # type: ignore[operator]
            if binary:
                return "binary", None
            reasons.append(f"no {self.cfg.ping_binary!r} binary found")
        return None, "; ".join(reasons)

    def collect(self, deadline: float) -> IcmpSample:
        sample = IcmpSample(at=time.time())
        if not self.hosts:
            sample.skipped = "no hosts configured"
            return sample
        if self._method is None and self._skip_reason is None:
            self._method, self._skip_reason = self.choose_method()
        if self._method is None:
            sample.skipped = self._skip_reason
            return sample
        sample.method = self._method
        for i, host in enumerate(self.hosts):
            host_deadline = time.monotonic() + remaining(deadline) / (len(self.hosts) - i)
            sample.results.append(self.ping(host, host_deadline))
        return sample

    def ping(self, host: str, deadline: float) -> IcmpResult:
        if self._method == "binary":
            wait = max(1, int(remaining(deadline)))
            argv = [
                self.cfg.ping_binary,
                "-n",
                "-c",
                str(self.cfg.count),
                "-i",
                "0.2",
                "-w",
                str(wait),
                host,
            ]
            out = self.runner(argv, remaining(deadline))
            result = parse_ping_output(host, out.stdout)
            if out.timed_out:
                result.error = "ping did not finish before the deadline"
            elif out.missing:
                result.error = out.stderr
            return result
        try:
            family, sockaddr = resolve(host, None, deadline)[0]
        except ResolveError as exc:
            return IcmpResult(host, error=exc.reason)
        try:
            return ping_with_socket(
                host, sockaddr[0], family == socket.AF_INET6, self.cfg.count, deadline
            )
        except OSError as exc:
            return IcmpResult(host, error=str(exc))
