"""stationctl's quick config reader agrees with the agent's loader on every value it reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.cli.stationctl.lightcfg import NotLight, load_light
from agent.runtime.config import load_config
from tests.helpers import ROOT, write_config

FIELDS = (
    "terminal",
    "county",
    "timezone",
    "content_dir",
    "state_dir",
    "schedule_dir",
    "control_socket",
    "admin_group",
    "db_path",
    "socket_path",
)


def assert_same(path: Path) -> None:
    light, full = load_light(path), load_config(path)
    for name in FIELDS:
        assert getattr(light, name) == getattr(full, name), name
    assert light.tz.key == full.tz.key
    assert light.playback.default_slot_minutes == full.playback.default_slot_minutes
    assert light.probes.display.enabled == full.probes.display.enabled
    assert light.probes.display.connectors == full.probes.display.connectors


def test_defaults_and_the_repo_configs(tmp_path: Path) -> None:
    assert_same(write_config(tmp_path))
    assert_same(ROOT / "config" / "demo.yaml")
    for example in (ROOT / "config").glob("agent*.yaml"):
        assert_same(example)


def test_every_key_it_reads(tmp_path: Path) -> None:
    text = """
terminal: 0012
county: c-01
timezone: Asia/Urumqi
content_dir: ~/content
state_dir: /var/tmp/stationctl-test-state
schedule_dir: inbox
control_socket: run/ctl.sock
admin_group: 0100
playback:
  default_slot_minutes: 45
probes:
  display:
    enabled: no
    connectors: [card0-HDMI-A-1, card0-HDMI-A-2]
"""
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    assert_same(path)
    light = load_light(path)
    assert light.terminal == "0012" and light.admin_group == "0100"
    assert light.socket_path == tmp_path / "run" / "ctl.sock"


@pytest.mark.parametrize(
    "change",
    [
        {"terminal": None},
        {"timezone": "Mars/Olympus"},
        {"playback": {"default_slot_minutes": "lots"}},
        {"probes": {"display": {"enabled": "maybe"}}},
    ],
)
def test_anything_unusual_goes_to_the_full_loader(tmp_path: Path, change, ctl) -> None:
    path = write_config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc.update(change)
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(NotLight):
        load_light(path)
    r = ctl(path, "status")
    assert r.code == 2 and str(path) in r.err  # the agent's own message, with file and key
