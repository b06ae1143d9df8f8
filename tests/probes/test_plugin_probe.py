"""Adding a probe is one file: tests/probes/fan_probe.py, imported here, is all the agent needs.

The plugin is loaded the way the agent loads its own probes (importing the module registers it);
then the real config loader takes its section and its alarm's section, the real monitor runs it
on its threads against a fake hwmon tree, raises and clears its alarm and shows its summary field.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from agent.monitoring.monitor import Monitor
from agent.monitoring.probes import Roots, build_probes
from agent.monitoring.probes.registry import REGISTRY
from agent.runtime.config import ConfigError, load_config

PLUGIN = "tests.probes.fan_probe"


@pytest.fixture
def fan_plugin() -> Iterator[ModuleType]:
    """Import the plugin (it registers itself); afterwards the registry forgets it again."""
    with REGISTRY.scoped():
        sys.modules.pop(PLUGIN, None)
        try:
            yield importlib.import_module(PLUGIN)
        finally:
            sys.modules.pop(PLUGIN, None)


def agent_yaml(tmp_path: Path, probes: dict[str, Any]) -> Path:
    path = tmp_path / "agent.yaml"
    doc = {"terminal": "t-1", "county": "c-1", "content_dir": "c", "state_dir": "s"}
    path.write_text(yaml.safe_dump({**doc, "probes": probes}))
    return path


def only_the_fan(**fan: Any) -> dict[str, Any]:
    """A ``probes:`` section with every other probe off (they would read this machine)."""
    section: dict[str, Any] = {n: {"enabled": False} for n in REGISTRY.names() if n != "fan"}
    section["fan"] = {"enabled": True, **fan}
    section["alarms"] = {"fan_stopped": {"raise_after": 2, "clear_after": 1, "below_rpm": 100}}
    return section


def set_rpm(sysfs: Path, rpm: int) -> None:
    fan = sysfs / "class/hwmon/hwmon0/fan1_input"
    fan.parent.mkdir(parents=True, exist_ok=True)
    fan.write_text(f"{rpm}\n")


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_a_probe_file_is_all_the_agent_needs(tmp_path: Path, fan_plugin: ModuleType) -> None:
    sysfs = tmp_path / "sys"
    set_rpm(sysfs, 1200)
    cfg = load_config(agent_yaml(tmp_path, only_the_fan(interval_seconds=0.05, fans=[])))
    alarms: list[dict[str, Any]] = []
    monitor = Monitor(
        cfg.probes,
        None,
        lambda kind, p: alarms.append(p) if kind == "alarm" else None,
        roots=Roots(sysfs=sysfs),
    )
    assert [p.name for p in monitor.probes] == ["fan"]
    assert (monitor.probes[0].interval, monitor.probes[0].timeout) == (0.05, 2)
    monitor.start()
    try:
        assert wait_for(lambda: monitor.summary().get("fan_rpm") == 1200)
        set_rpm(sysfs, 0)
        assert wait_for(lambda: len(alarms) == 1)
        assert monitor.summary()["fan_rpm"] == 0
        assert wait_for(lambda: monitor.summary()["alarms"] == ["fan_stopped"])
        set_rpm(sysfs, 1250)
        assert wait_for(lambda: len(alarms) == 2)
        assert wait_for(lambda: monitor.summary()["fan_rpm"] == 1250)
        assert monitor.snapshot()["probes"]["fan"]["rpm"] == {"hwmon0:fan1": 1250}
    finally:
        monitor.stop()
    raised, cleared = alarms
    assert (raised["name"], raised["action"], raised["severity"]) == (
        "fan_stopped",
        "raised",
        "warning",
    )
    assert raised["detail"] == {"rpm": {"hwmon0:fan1": 0}}
    assert (cleared["action"], cleared["raised_at"]) == ("cleared", raised["at"])
    assert monitor.summary()["alarms"] == []


def test_the_plugin_is_off_until_the_config_turns_it_on(
    tmp_path: Path, fan_plugin: ModuleType
) -> None:
    cfg = load_config(agent_yaml(tmp_path, {"gateway": {"enabled": False}}))
    assert cfg.probes.fan.enabled is False and cfg.probes.alarms.fan_stopped.below_rpm == 200
    assert "fan" not in [p.name for p in build_probes(cfg.probes)]


@pytest.mark.parametrize(
    ("fan", "key"),
    [
        ({"interval_seconds": 0}, "probes.fan.interval_seconds"),
        ({"fans": "hwmon0:fan1"}, "probes.fan.fans"),
        ({"speed": 3}, "probes.fan.speed"),
    ],
)
def test_its_keys_are_checked_like_the_agents_own(
    tmp_path: Path, fan_plugin: ModuleType, fan: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(agent_yaml(tmp_path, only_the_fan(**fan)))
    assert key in str(err.value)


def test_the_registry_forgets_a_scoped_plugin(tmp_path: Path) -> None:
    with REGISTRY.scoped():
        importlib.import_module(PLUGIN)
        assert "fan" in REGISTRY.names()
    sys.modules.pop(PLUGIN, None)
    assert "fan" not in REGISTRY.names()
    with pytest.raises(ConfigError) as err:
        load_config(agent_yaml(tmp_path, {"fan": {"enabled": True}}))
    assert "probes.fan" in str(err.value) and "unknown key" in str(err.value)
