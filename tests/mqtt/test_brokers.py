"""Brokers other than Mosquitto: ``protocol: auto`` (MQTT 5, else 3.1.1, remembered), the id rule
(no '.'), and the county tools with a roster, which needs no retained message through a wildcard.

The ``broker`` fixture is the broker ``RDE_TEST_BROKER`` names; the NATS tests below start a
private NATS of their own (it starts in well under a second) so the fallback is tested in the
default suite too.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.link import MqttLink
from agent.adapters.mqtt.version import MEMORY_FILE, REPROBE_AFTER_S, ProtocolChoice
from agent.cli.county.client import CountyClient, ToolError
from agent.cli.county.push import push_schedule
from agent.cli.county.roster import parse_roster
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.testing.bridge import MemoryBridge
from agent.testing.brokers import PrivateNats
from tests.helpers import schedule, write_config
from tests.mqtt.conftest import COUNTY, TERMINAL, county_cfg, countyctl, wait_until

needs_nats = pytest.mark.skipif(
    shutil.which("nats-server") is None, reason="nats-server is not installed"
)


class Rc:
    """A CONNACK reason as paho gives it (``value``)."""

    def __init__(self, value: int) -> None:
        self.value = value


# -- protocol: auto, without a broker ---------------------------------------------------------


def test_auto_falls_back_on_0x84_and_remembers_it(tmp_path: Path) -> None:
    memory = tmp_path / MEMORY_FILE
    choice = ProtocolChoice("auto", memory)
    assert choice.next() == "5"
    assert choice.refused("5", Rc(0x84)) is True
    assert choice.next() == "3.1.1"
    choice.accepted("3.1.1")
    assert "0x84" in choice.why and choice.status()["protocol"] == "3.1.1"
    assert json.loads(memory.read_text())["protocol"] == "3.1.1"
    again = ProtocolChoice("auto", memory)  # an agent restart: no new probe
    assert again.next() == "3.1.1" and again.why.startswith("remembered")


def test_a_close_before_connack_falls_back_only_when_3_1_1_then_works(tmp_path: Path) -> None:
    choice = ProtocolChoice("auto", tmp_path / MEMORY_FILE)
    assert choice.closed_before_connack("5") is True
    assert choice.next() == "3.1.1"
    choice.failed("3.1.1")  # the link was just flaky: nothing learnt
    assert choice.next() == "5"
    assert not (tmp_path / MEMORY_FILE).exists()
    assert choice.refused("5", Rc(0x87)) is False  # not authorized: no version question


def test_an_old_3_1_1_answer_is_probed_again_after_a_lost_connection(tmp_path: Path) -> None:
    now = [1000.0]
    choice = ProtocolChoice("auto", tmp_path / MEMORY_FILE, wall=lambda: now[0])
    choice.refused("5", Rc(0x84))
    choice.accepted("3.1.1")
    choice.lost_after_connect()
    assert choice.next() == "3.1.1"  # fresh answer: no probe
    now[0] += REPROBE_AFTER_S + 1
    choice.lost_after_connect()
    assert choice.next() == "5"
    choice.accepted("5")  # an upgraded broker
    assert choice.next() == "5" and choice.why == "MQTT 5 accepted"


def test_a_configured_version_is_never_changed(tmp_path: Path) -> None:
    choice = ProtocolChoice("5", tmp_path / MEMORY_FILE)
    assert choice.refused("5", Rc(0x84)) is False
    assert choice.closed_before_connack("5") is False
    assert choice.next() == "5" and choice.status()["protocol_why"] == "configured"


def test_auto_is_the_default_and_an_unreadable_memory_probes_again(tmp_path: Path) -> None:
    assert MqttConfig(host="h").protocol == "auto"
    memory = tmp_path / MEMORY_FILE
    memory.write_text("{not json")
    assert ProtocolChoice("auto", memory).next() == "5"


# -- the id rule -------------------------------------------------------------------------------


def test_a_dot_in_a_terminal_or_county_id_is_refused_at_config_load(tmp_path: Path) -> None:
    from agent.runtime.config import ConfigError, load_config

    path = write_config(tmp_path, terminal="t.001", county="c.01")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "terminal (line" in text and "county (line" in text
    assert "must not contain '.'" in text and "RabbitMQ" in text


def test_a_dot_in_an_id_is_refused_on_the_wire_and_in_a_roster(tmp_path: Path) -> None:
    msg = p.state(
        ts="2026-11-28T11:30:00.120Z", terminal="t.1", county=COUNTY, online=True, session=1,
        boot_id="b", agent_version="1", protocol="3.1.1", reason="connect", clock="synced",
    )  # fmt: skip
    assert any(x.startswith("state.terminal") for x in p.validate("state", msg))
    roster = tmp_path / "roster.txt"
    roster.write_text("t-001\nt.002  # dotted\n")
    with pytest.raises(ToolError, match=r"roster.txt line 2: 't.002' is not an id.*'\.'"):
        parse_roster(roster)


# -- against real brokers ------------------------------------------------------------------------


def make_link(
    host: str, port: int, terminal: str = TERMINAL, state_dir: Path | None = None, **kw
) -> tuple[MqttLink, MemoryBridge]:
    opts = dict(
        keepalive=4,
        heartbeat_seconds=1,
        backoff_min_seconds=0.2,
        backoff_max_seconds=1.0,
        stable_after_seconds=1,
        ack_timeout_seconds=2,
    )
    opts.update(kw)
    m = MqttConfig(host=host, port=port, **opts)
    bridge = MemoryBridge(terminal, COUNTY)
    cfg = SimpleNamespace(mqtt=m, terminal=terminal, county=COUNTY, state_dir=state_dir)
    link = MqttLink(cfg, bridge=bridge)
    link.start()
    return link, bridge


@needs_nats
def test_link_on_nats_falls_back_says_why_and_does_not_probe_after_a_restart(
    tmp_path: Path,
) -> None:
    with PrivateNats(tmp_path / "nats") as nats:
        link, _ = make_link(nats.host, nats.port, state_dir=tmp_path / "state")
        try:
            wait_until(lambda: link.state == "connected", 15, "connected over 3.1.1")
            wait_until(lambda: link.status_dict().get("protocol") == "3.1.1", 5, "status")
            status = link.status_dict()
            assert status["protocol_setting"] == "auto"
            assert "0x84" in status["protocol_why"], status
            assert link.connects == 2  # one MQTT 5 attempt, one 3.1.1: no back-off between
        finally:
            link.stop()
        assert json.loads((tmp_path / "state" / MEMORY_FILE).read_text())["protocol"] == "3.1.1"
        link, _ = make_link(nats.host, nats.port, state_dir=tmp_path / "state")
        try:
            wait_until(lambda: link.state == "connected", 15, "connected again")
            assert link.connects == 1  # remembered: straight to 3.1.1
            assert link.status_dict()["protocol_why"].startswith("remembered")
        finally:
            link.stop()


@needs_nats
def test_countyctl_on_nats_falls_back_instead_of_exiting_2(tmp_path: Path) -> None:
    with PrivateNats(tmp_path / "nats") as nats:
        cc = CountyClient(MqttConfig(host=nats.host, port=nats.port), "probe")
        cc.connect()
        cc.close()
        assert cc.protocol == "3.1.1" and "0x84" in cc.protocol_why
        res = countyctl(nats, "watch", "--county", COUNTY, "--once", "--wait", "1", "--json")
        assert res.returncode == 0, res.stderr
        res = countyctl(nats, "watch", "--once", "--wait", "1", "--protocol", "5")
        assert res.returncode == 2 and "MQTT 5" in res.stderr


def test_link_reconnects_after_the_broker_restarts(broker) -> None:
    link, bridge = make_link(broker.host, broker.port, backoff_min_seconds=0.5)
    try:
        wait_until(lambda: link.state == "connected", 15, "connected")
        first = link.session
        broker.stop()
        wait_until(lambda: link.state == "waiting", 20, "link lost")
        broker.start()
        wait_until(lambda: link.state == "connected", 30, "reconnected")
        assert link.session > first and link.reconnects == 1
        assert link.status_dict()["protocol"] == ("5" if broker.has_mqtt5 else "3.1.1")
    finally:
        link.stop()


def publish_state(broker, terminal: str, state: str) -> None:
    """A retained state as a terminal leaves it (``offline``: its will or a clean stop)."""
    cc = CountyClient(county_cfg(broker), f"fake-{terminal}")
    cc.connect()
    try:
        msg = p.state(
            ts="2026-11-28T11:30:00.120Z", terminal=terminal, county=COUNTY,
            online=state == "online", session=3, boot_id="b", agent_version="1",
            protocol="3.1.1", reason="shutdown", clock="synced",
        )  # fmt: skip
        cc.publish(t.topic(COUNTY, terminal, t.STATE), p.dumps(msg), retain=True)
    finally:
        cc.close()


def test_push_and_watch_with_a_roster_find_online_and_offline_terminals(tmp_path, broker) -> None:
    """The roster path works on every broker (RabbitMQ sends no retained state through a
    wildcard: without it, push finds nobody and watch lists no offline terminal there)."""
    publish_state(broker, "t-002", "offline")
    roster = tmp_path / "roster.txt"
    roster.write_text("# county c-01\nt-001\nt-002\nt-003\n")
    link, bridge = make_link(broker.host, broker.port)
    try:
        wait_until(lambda: link.state == "connected", 15, "connected")
        time.sleep(0.5)  # the retained online state is in place
        doc = json.dumps(schedule(3, [])).encode()
        result = push_schedule(
            county_cfg(broker), doc, county=COUNTY, wait=15, roster=parse_roster(roster)
        )
        assert result.answers[TERMINAL]["status"] == "applied", result.lines()
        text = "\n".join(result.lines())
        assert "t-002: offline" in text and "t-003: no state" in text
        assert result.ok()  # offline terminals take it when they connect
        res = countyctl(
            broker, "watch", "--county", COUNTY, "--once", "--wait", "3", "--json",
            "--roster", str(roster),
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        rows = {r["terminal"]: r for r in json.loads(res.stdout.strip().splitlines()[-1])}
        assert rows[TERMINAL]["online"] is True and rows["t-002"]["online"] is False
        assert rows["t-003"]["online"] is None
        assert rows[TERMINAL]["schedule_versions"] == {"county": 3}
    finally:
        link.stop()


def test_content_with_a_roster_names_a_terminal_without_status(tmp_path, broker) -> None:
    cc = CountyClient(county_cfg(broker), "fake-status")
    cc.connect()
    try:
        body = {"ts": "2026-11-28T11:30:00.120Z", "terminal": TERMINAL, "county": COUNTY}
        cc.publish(t.topic(COUNTY, TERMINAL, t.STATUS), json.dumps(body).encode(), retain=True)
    finally:
        cc.close()
    roster = tmp_path / "roster.yaml"
    roster.write_text(f"- {TERMINAL}\n- t-003\n")
    res = countyctl(broker, "content", "--county", COUNTY, "--wait", "1.5", "--roster", str(roster))
    assert res.returncode == 1, res.stdout + res.stderr  # nothing confirms t-003's files
    assert f"{TERMINAL}: status of 2026-11-28T11:30:00.120Z" in res.stdout
    assert "t-003: no status at the broker" in res.stdout
