"""The demo touches nothing but this machine's loopback.

``scripts/demo`` runs the real agent on ``config/demo.yaml`` with a private Mosquitto. Its probes
run exactly as on a terminal, so a probe left pointing at the default gateway, a public name or a
ping host sends real packets from whatever machine runs the demo. This test builds the probes the
demo's agent would build (the real config loader, the demo's own broker wiring, the real probe
registry) and asks every network probe where it would send packets.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

from agent.cli.county.demo import with_private_broker
from agent.monitoring.probes import build_probes
from agent.monitoring.probes.cec import CecProbe
from agent.monitoring.probes.clocksync import ClockSyncProbe
from agent.monitoring.probes.datacast import DatacastProbe
from agent.monitoring.probes.display import DisplayProbe
from agent.monitoring.probes.dns import DnsProbe
from agent.monitoring.probes.dvb import DvbProbe
from agent.monitoring.probes.gateway import GatewayProbe
from agent.monitoring.probes.icmp import IcmpProbe
from agent.monitoring.probes.netif import NetifProbe
from agent.monitoring.probes.power import PowerProbe
from agent.monitoring.probes.storage_wear import StorageWearProbe
from agent.monitoring.probes.system import SystemProbe
from agent.monitoring.probes.tcp import TcpProbe
from agent.monitoring.probes.thermal import ThermalProbe
from agent.monitoring.wiring import broker_target
from agent.runtime.config import AgentConfig, load_config
from tests.helpers import ROOT, write_config

DEMO_CONFIG = ROOT / "config" / "demo.yaml"

# Probes that read local files, devices or commands only and never open a network socket.
LOCAL_ONLY = (
    NetifProbe,
    DvbProbe,
    DatacastProbe,
    SystemProbe,
    ThermalProbe,
    DisplayProbe,
    CecProbe,
    ClockSyncProbe,
    StorageWearProbe,
    PowerProbe,
)


def host_of(target: str) -> str:
    """The host of a ``host:port`` or ``[v6]:port`` probe target."""
    host = target.rpartition(":")[0]
    return host[1:-1] if host.startswith("[") else host


def is_loopback(host: str) -> bool:
    """Only a literal loopback address counts: a name needs a resolver, which may ask the network."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def network_targets(probe: object) -> list[str]:
    """Where one probe would send packets; fails for a probe this test does not know."""
    if isinstance(probe, TcpProbe):
        return [host_of(t) for t in probe.targets]
    if isinstance(probe, DnsProbe):
        return list(probe.names)
    if isinstance(probe, IcmpProbe):
        return list(probe.hosts)
    if isinstance(probe, GatewayProbe):
        # Its target is this machine's default route, never loopback; with tcp_port 0 it only
        # reads /proc/net/route and /proc/net/arp.
        return ["the default gateway"] if probe.cfg.tcp_port else []
    if isinstance(probe, LOCAL_ONLY):
        return []
    raise AssertionError(f"probe {type(probe).__name__}: say here whether it uses the network")


def non_loopback_targets(cfg: AgentConfig) -> dict[str, list[str]]:
    """Per enabled probe, the targets that are not loopback, as the agent would run them."""
    tcp, names = broker_target(cfg)
    probes = build_probes(cfg.probes, tcp_targets=tcp, dns_names=names)
    found = {}
    for probe in probes:
        bad = [t for t in network_targets(probe) if not is_loopback(t)]
        if bad:
            found[probe.name] = bad
    return found


def test_a_default_config_would_reach_past_loopback(tmp_path: Path) -> None:
    """The check itself can fail: the defaults probe the default gateway."""
    path = tmp_path / "agent.yaml"
    path.write_text("terminal: t-1\ncounty: c-1\ncontent_dir: c\nstate_dir: s\n")
    assert non_loopback_targets(load_config(path)) == {"gateway": ["the default gateway"]}
    path.write_text(path.read_text() + "probes: {icmp: {hosts: ['127.0.0.1', 'example.org']}}\n")
    assert non_loopback_targets(load_config(path))["icmp"] == ["example.org"]


def test_demo_config_as_loaded_touches_loopback_only() -> None:
    cfg = load_config(DEMO_CONFIG)
    assert cfg.probes.enabled, "the demo shows the probes working"
    assert non_loopback_targets(cfg) == {}


def test_the_agent_config_of_the_tests_touches_loopback_only(tmp_path: Path) -> None:
    """Every test that starts an agent builds its config with ``tests.helpers.write_config``."""
    assert non_loopback_targets(load_config(write_config(tmp_path))) == {}
    mqtt = {"host": "127.0.0.1", "port": 1883}
    assert non_loopback_targets(load_config(write_config(tmp_path, mqtt=mqtt))) == {}


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto not installed")
def test_demo_as_run_with_its_private_broker_touches_loopback_only(tmp_path: Path) -> None:
    """The config the demo really runs: its own, pointed at a private Mosquitto."""
    config = tmp_path / "config" / "demo.yaml"
    config.parent.mkdir()
    shutil.copy(DEMO_CONFIG, config)
    derived, broker = with_private_broker(config, load_config(config))
    try:
        cfg = load_config(derived)
        assert cfg.mqtt is not None and is_loopback(cfg.mqtt.host)
        probes = build_probes(cfg.probes, tcp_targets=broker_target(cfg)[0])
        tcp = [p.targets for p in probes if isinstance(p, TcpProbe)]
        assert tcp == [[f"127.0.0.1:{broker.port}"]]  # the demo's link probe checks its broker
        assert non_loopback_targets(cfg) == {}
    finally:
        if broker is not None:
            broker.stop()
