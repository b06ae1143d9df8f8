"""The documented example config is a real, loadable config whose values are the defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.adapters.mqtt.config import MqttConfig
from agent.monitoring.probes.config import ProbesConfig
from agent.runtime.config import PlaybackConfig, VlcConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "agent.example.yaml"


def test_example_config_loads_and_shows_the_defaults() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.vlc == VlcConfig()
    assert cfg.playback == PlaybackConfig()
    assert cfg.probes == ProbesConfig()
    assert cfg.mqtt is not None
    defaults = MqttConfig(host=cfg.mqtt.host)
    assert dataclasses.replace(cfg.mqtt) == defaults
    assert cfg.timezone == "Asia/Shanghai" and cfg.schedule_poll_seconds == 30


def test_every_core_key_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    for cls in (VlcConfig, PlaybackConfig):
        for f in dataclasses.fields(cls):
            assert f"  {f.name}:" in text, f"{cls.__name__}.{f.name} is not in the example config"
