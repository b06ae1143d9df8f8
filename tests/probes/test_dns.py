from __future__ import annotations

import socket
import threading
import time

from agent.monitoring.probes import base
from agent.monitoring.probes.dns import DnsProbe, DnsProbeConfig


def test_localhost_resolves_with_a_time() -> None:
    s = DnsProbe(DnsProbeConfig(names=["localhost"])).collect(time.monotonic() + 2)
    (r,) = s.results
    assert r.ok and r.ms is not None and r.ms < 2000
    assert "127.0.0.1" in r.addresses or "::1" in r.addresses
    assert s.all_ok


def test_numeric_names_skip_the_resolver() -> None:
    def boom(*_a: object) -> list:
        raise AssertionError("resolver must not be called for an address")

    (r,) = (
        DnsProbe(DnsProbeConfig(names=["127.0.0.1"]), resolver=boom)
        .collect(time.monotonic() + 1)
        .results
    )
    assert r.ok and r.addresses == ["127.0.0.1"]


def test_dead_resolver_gives_timeout_at_the_deadline_not_ten_seconds() -> None:
    release = threading.Event()

    def dead(*_a: object) -> list:
        release.wait(5)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    start = time.monotonic()
    try:
        s = DnsProbe(DnsProbeConfig(names=["broker.example"]), resolver=dead).collect(start + 0.3)
        assert time.monotonic() - start < 0.5
        (r,) = s.results
        assert not r.ok and r.error == "timeout"
        assert not s.all_ok
    finally:
        release.set()


def test_hung_lookups_are_capped_then_fail_fast() -> None:
    release = threading.Event()

    def dead(*_a: object) -> list:
        release.wait(5)
        return []

    probe = DnsProbe(DnsProbeConfig(names=[f"n{i}.example" for i in range(6)]), resolver=dead)
    try:
        s = probe.collect(time.monotonic() + 0.6)
        errors = [r.error for r in s.results]
        assert errors[:4] == ["timeout"] * 4
        assert all("busy" in (e or "") for e in errors[4:])
    finally:
        release.set()
    # once the stuck lookups return, the slots are free again
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if base._lookup_slots.acquire(blocking=False):
            base._lookup_slots.release()
            break
        time.sleep(0.01)
    (r,) = DnsProbe(DnsProbeConfig(names=["localhost"])).collect(time.monotonic() + 2).results
    assert r.ok


def test_resolver_error_text_is_kept() -> None:
    def nx(*_a: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    (r,) = (
        DnsProbe(DnsProbeConfig(names=["x.invalid"]), resolver=nx)
        .collect(time.monotonic() + 1)
        .results
    )
    assert r.error == "resolve failed: Name or service not known"
