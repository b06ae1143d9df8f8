from __future__ import annotations

import socket
import time

from agent.monitoring.probes.tcp import TcpProbe, TcpProbeConfig


def probe(*targets: str, resolver=socket.getaddrinfo) -> TcpProbe:
    return TcpProbe(TcpProbeConfig(targets=list(targets)), resolver=resolver)


def test_open_port_gives_connect_time(listening_port: int) -> None:
    s = probe(f"127.0.0.1:{listening_port}").collect(time.monotonic() + 1)
    (r,) = s.results
    assert r.status == "open" and r.reachable
    assert r.rtt_ms is not None and 0 < r.rtt_ms < 1000
    assert s.any_reachable


def test_refused_port_still_proves_the_path(closed_port: int) -> None:
    (r,) = probe(f"127.0.0.1:{closed_port}").collect(time.monotonic() + 1).results
    assert r.status == "refused"
    assert r.reachable and r.rtt_ms is not None


def test_silent_port_times_out_at_the_deadline(blackhole_port: int) -> None:
    start = time.monotonic()
    s = probe(f"127.0.0.1:{blackhole_port}").collect(start + 0.4)
    elapsed = time.monotonic() - start
    (r,) = s.results
    assert r.status == "timeout" and not r.reachable
    assert 0.35 <= elapsed < 0.6
    assert not s.any_reachable


def test_budget_is_shared_so_a_dead_target_cannot_starve_the_next(
    blackhole_port: int, listening_port: int
) -> None:
    start = time.monotonic()
    s = probe(f"127.0.0.1:{blackhole_port}", f"127.0.0.1:{listening_port}").collect(start + 0.6)
    assert [r.status for r in s.results] == ["timeout", "open"]
    assert time.monotonic() - start < 0.8
    assert s.any_reachable


def test_ipv6_loopback(listening_port: int) -> None:
    srv = socket.socket(socket.AF_INET6)
    try:
        srv.bind(("::1", 0))
    except OSError:
        srv.close()
        import pytest

        pytest.skip("no IPv6 loopback here")
    srv.listen(4)
    try:
        (r,) = probe(f"[::1]:{srv.getsockname()[1]}").collect(time.monotonic() + 1).results
        assert r.status == "open" and r.address == "::1"
    finally:
        srv.close()


def test_hung_resolver_is_cut_at_the_deadline() -> None:
    def slow(*_args: object) -> list:
        time.sleep(2)
        return []

    start = time.monotonic()
    (r,) = probe("broker.example:8883", resolver=slow).collect(start + 0.3).results
    assert r.status == "dns_error" and r.detail == "timeout"
    assert time.monotonic() - start < 0.5


def test_name_resolution_failure_is_reported() -> None:
    def fail(*_args: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    (r,) = probe("nowhere.invalid:1883", resolver=fail).collect(time.monotonic() + 1).results
    assert r.status == "dns_error"
    assert "Name or service not known" in (r.detail or "")


def test_no_targets_is_skipped_not_failed() -> None:
    s = probe().collect(time.monotonic() + 1)
    assert s.ok and s.skipped == "no targets configured" and not s.results
