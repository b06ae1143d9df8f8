"""The few config values stationctl needs, read without importing the agent's whole config model.

``agent.runtime.config`` pulls in every probe and adapter module to build its schema; in a fresh process
that is most of the time ``stationctl status`` takes. The status, logs, records and action
commands need a handful of values only (where the state and content are, the time zone, the
socket and admin group, the slot length, which display connectors to watch), so they read those
here with the same rules: relative paths resolve against the config file's folder, ``~`` expands,
scalars are taken as written, the same defaults apply. ``stationctl check`` loads and validates
the whole config with ``agent.runtime.config.load_config``; so does every command when anything here
looks unusual (then its error messages, with file, line and key, are the ones shown).
tests/stationctl/test_lightcfg.py keeps the two readers in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.runtime.layout import StationLayout

# The agent's defaults for the keys read here (agent/config.py is the authority).
DEFAULTS = {"timezone": "Asia/Shanghai", "admin_group": "stationadmin"}
DEFAULT_SLOT_MINUTES = 60.0


class NotLight(Exception):
    """Something here needs the full config loader (and its precise messages)."""


@dataclass
class Playback:
    default_slot_minutes: float = DEFAULT_SLOT_MINUTES


@dataclass
class Display:
    enabled: bool = True
    connectors: list[str] = field(default_factory=list)


@dataclass
class Probes:
    display: Display = field(default_factory=Display)


@dataclass
class LightConfig(StationLayout):
    source: Path
    terminal: str
    county: str
    content_dir: Path
    state_dir: Path
    timezone: str = DEFAULTS["timezone"]
    schedule_dir: Path | None = None
    control_socket: Path | None = None
    admin_group: str = DEFAULTS["admin_group"]
    playback: Playback = field(default_factory=Playback)
    probes: Probes = field(default_factory=Probes)


def _mapping(node: Any) -> dict[str, Any]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise NotLight("not a mapping")
    out: dict[str, Any] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.value in out:
            raise NotLight("odd key")
        out[key.value] = value
    return out


def _text(node: Any) -> str:
    import yaml

    if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null") or "\x00" in node.value:
        raise NotLight("not text")
    return node.value


def _path(node: Any, base: Path) -> Path:
    p = Path(_text(node)).expanduser()
    return p if p.is_absolute() else base / p


def load_light(path: str | Path) -> LightConfig:
    """The values stationctl needs; NotLight (or OSError) when the full loader must decide."""
    import yaml

    path = Path(path)
    data = path.read_bytes()
    if len(data) > 1_000_000:
        raise NotLight("large")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = _mapping(yaml.compose(data.decode("utf-8"), Loader=loader))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise NotLight(str(exc)) from None
    base = path.resolve().parent
    try:
        cfg = LightConfig(
            source=path,
            terminal=_text(root["terminal"]),
            county=_text(root["county"]),
            content_dir=_path(root["content_dir"], base),
            state_dir=_path(root["state_dir"], base),
        )
    except KeyError as exc:
        raise NotLight(f"missing {exc}") from None
    if "timezone" in root:
        cfg.timezone = _text(root["timezone"])
        try:
            ZoneInfo(cfg.timezone)
        except Exception:
            raise NotLight("timezone") from None
    if "admin_group" in root:
        cfg.admin_group = _text(root["admin_group"])
    for key in ("schedule_dir", "control_socket"):
        if key in root and not root[key].tag.endswith(":null"):
            setattr(cfg, key, _path(root[key], base))
    if "playback" in root:
        playback = _mapping(root["playback"])
        if "default_slot_minutes" in playback:
            try:
                minutes = float(_text(playback["default_slot_minutes"]))
            except ValueError:
                raise NotLight("default_slot_minutes") from None
            if not 1 <= minutes <= 1440:
                raise NotLight("default_slot_minutes")
            cfg.playback.default_slot_minutes = minutes
    if "probes" in root:
        probes = _mapping(root["probes"])
        if "display" in probes:
            display = _mapping(probes["display"])
            if "enabled" in display:
                node = display["enabled"]
                if not node.tag.endswith(":bool"):
                    raise NotLight("enabled")
                cfg.probes.display.enabled = node.value.lower() in ("true", "yes", "on", "y")
            if "connectors" in display:
                seq = display["connectors"]
                if not isinstance(seq, yaml.SequenceNode):
                    raise NotLight("connectors")
                cfg.probes.display.connectors = [_text(n) for n in seq.value]
    return cfg
