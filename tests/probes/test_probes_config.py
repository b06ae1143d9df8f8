"""The example config block parses into exactly the defaults, and bad values are refused."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from agent.domain.schema import SchemaError, build
from agent.monitoring.probes import ProbesConfig, build_probes, probe_names_for
from agent.runtime.documents import parse_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "config/agent.example.yaml"


def load(text: str) -> ProbesConfig:
    node = parse_yaml(text, "probes.yaml")
    return build(ProbesConfig, node.value["probes"], "probes.yaml")


def test_example_matches_the_defaults() -> None:
    assert asdict(load(EXAMPLE.read_text())) == asdict(ProbesConfig())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("probes: {mode: cable}", "mode"),
        ("probes: {tcp: {targets: ['no-port']}}", "tcp.targets"),
        ("probes: {tcp: {interval_seconds: 0.5}}", "tcp.interval_seconds"),
        ("probes: {alarms: {overheat: {raise_c: 70, clear_c: 75}}}", "alarms.overheat.clear_c"),
        ("probes: {alarms: {disk_low: {low_pct: 20, ok_pct: 10}}}", "alarms.disk_low.ok_pct"),
        ("probes: {alarms: {link_down: {severity: fatal}}}", "alarms.link_down.severity"),
        ("probes: {dvb: {source: femon}}", "dvb.source"),
        ("probes: {thermal: {nonsense: 1}}", "thermal.nonsense"),
    ],
)
def test_bad_values_are_refused_with_the_key(text: str, fragment: str) -> None:
    with pytest.raises(SchemaError) as err:
        load(text)
    assert fragment in str(err.value)


def test_mode_picks_the_link_probes() -> None:
    telecom = probe_names_for(ProbesConfig())
    assert {"tcp", "dns", "icmp", "gateway", "netif"} <= set(telecom) and "dvb" not in telecom
    sat = load("probes: {mode: satellite, icmp: {enabled: false}}")
    built = [p.name for p in build_probes(sat)]
    assert "dvb" in built and "datacast" in built and "tcp" not in built  # no return-path targets
    with_return = [p.name for p in build_probes(sat, tcp_targets=["127.0.0.1:1883"])]
    assert "tcp" in with_return
    off = load("probes: {cec: {enabled: false}, power: {enabled: false}}")
    assert "cec" not in probe_names_for(off) and "power" not in probe_names_for(off)
