from __future__ import annotations

import time
from pathlib import Path

from agent.monitoring.probes.gateway import GatewayProbe, GatewayProbeConfig, parse_route
from tests.probes.probe_helpers import write_tree

ROUTE_HEADER = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
)
# Gateway fields are little-endian hex: 0100007F = 127.0.0.1, 0200007F = 127.0.0.2.
ROUTE_LOOPBACK_GW = (
    ROUTE_HEADER
    + "eth0\t00000000\t0200007F\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
    + "wwan0\t00000000\t0100007F\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    + "eth0\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n"
)
ARP = (
    "IP address       HW type     Flags       HW address            Mask     Device\n"
    "127.0.0.1        0x1         0x2         00:11:22:33:44:55     *        wwan0\n"
    "127.0.0.2        0x1         0x0         00:00:00:00:00:00     *        eth0\n"
)


def procfs(tmp_path: Path, route: str = ROUTE_LOOPBACK_GW, arp: str | None = ARP) -> Path:
    files = {"net/route": route}
    if arp is not None:
        files["net/arp"] = arp
    return write_tree(tmp_path, files)


def test_lowest_metric_default_route_wins() -> None:
    assert parse_route(ROUTE_LOOPBACK_GW) == ("127.0.0.1", "wwan0")


def test_routes_without_gateway_flag_or_down_are_ignored() -> None:
    no_gw = ROUTE_HEADER + "eth0\t00000000\t0100007F\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"
    assert parse_route(no_gw) is None
    assert parse_route(ROUTE_HEADER) is None


def test_gateway_reachable_by_tcp(tmp_path: Path, listening_port: int) -> None:
    p = GatewayProbe(GatewayProbeConfig(tcp_port=listening_port), procfs=procfs(tmp_path, arp=None))
    s = p.collect(time.monotonic() + 1)
    assert (s.gateway, s.interface) == ("127.0.0.1", "wwan0")
    assert s.tcp_status == "open" and s.rtt_ms is not None
    assert s.reachable is True and s.neighbour is None


def test_refusal_counts_as_reachable(tmp_path: Path, closed_port: int) -> None:
    s = GatewayProbe(GatewayProbeConfig(tcp_port=closed_port), procfs=procfs(tmp_path)).collect(
        time.monotonic() + 1
    )
    assert s.tcp_status == "refused" and s.reachable is True


def test_neighbour_table_alone(tmp_path: Path) -> None:
    s = GatewayProbe(GatewayProbeConfig(tcp_port=0), procfs=procfs(tmp_path)).collect(
        time.monotonic() + 1
    )
    assert s.neighbour == "complete" and s.reachable is True and s.tcp_status is None


def test_incomplete_neighbour_and_silent_port_is_unreachable(
    tmp_path: Path, blackhole_port: int
) -> None:
    # The blackhole listener is on 127.0.0.1: a route to it whose neighbour entry is incomplete.
    route = ROUTE_HEADER + "eth0\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    arp = ARP.replace("127.0.0.1        0x1         0x2", "127.0.0.1        0x1         0x0")
    start = time.monotonic()
    s = GatewayProbe(
        GatewayProbeConfig(tcp_port=blackhole_port),
        procfs=procfs(tmp_path, route, arp),
    ).collect(start + 0.3)
    assert time.monotonic() - start < 0.5
    assert s.neighbour == "incomplete" and s.tcp_status == "timeout"
    assert s.reachable is False


def test_no_default_route(tmp_path: Path) -> None:
    s = GatewayProbe(GatewayProbeConfig(), procfs=procfs(tmp_path, ROUTE_HEADER)).collect(
        time.monotonic() + 1
    )
    assert s.gateway is None and s.reachable is False and s.error == "no default route"


def test_unreadable_routes_is_a_probe_error(tmp_path: Path) -> None:
    s = GatewayProbe(GatewayProbeConfig(), procfs=tmp_path).collect(time.monotonic() + 1)
    assert not s.ok and "cannot read routes" in (s.error or "")
