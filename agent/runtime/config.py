"""The agent's configuration: one YAML file, checked against the declared schema below.

An unknown key, a wrong type or a bad value stops the agent with the file, the line and the key,
because a terminal that guesses at its config plays the wrong thing silently.
Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.adapters.mqtt.config import MqttConfig
from agent.domain.document import DocumentError
from agent.domain.schema import (  # noqa: F401 - check_id/check_timezone re-exported
    ID_PATTERN,
    SchemaError,
    between,
    build,
    check_id,
    check_timezone,
    positive,
)
from agent.monitoring.probes.config import ProbesConfig
from agent.runtime.documents import parse_yaml
from agent.runtime.layout import StationLayout

DEFAULT_CONFIG_PATH = Path("/etc/station-agent/agent.yaml")


@dataclass
class VlcConfig:
    """How libvlc is started and watched."""

    options: list[str] = field(default_factory=lambda: ["--no-video-title-show", "--fullscreen"])
    volume: int = field(default=100, metadata={"check": between(0, 200)})
    preroll_seconds: float = field(default=5.0, metadata={"check": between(0.5, 120)})
    start_timeout_seconds: float = field(default=20.0, metadata={"check": between(1, 600)})
    stall_seconds: float = field(default=15.0, metadata={"check": between(2, 600)})
    idle_unload_seconds: float = field(default=120.0, metadata={"check": between(0, 86400)})
    # One libvlc call taking longer than this means libvlc hung: the player is restarted.
    hang_seconds: float = field(default=15.0, metadata={"check": between(2, 600)})


@dataclass
class PlaybackConfig:
    """Scheduling and record policy."""

    late_start_grace_minutes: float = field(default=10.0, metadata={"check": between(0, 1440)})
    default_slot_minutes: float = field(default=60.0, metadata={"check": between(1, 1440)})
    checkpoint_seconds: float = field(default=60.0, metadata={"check": between(5, 3600)})
    retries: int = field(default=2, metadata={"check": between(0, 10)})
    retry_delay_seconds: float = field(default=10.0, metadata={"check": between(0, 3600)})
    require_synced_clock: bool = False
    missed_lookback_hours: float = field(default=48.0, metadata={"check": between(0, 24 * 31)})
    on_demand_priority: int = field(default=50, metadata={"check": between(0, 1000)})
    quarantine_after_errors: int = field(default=2, metadata={"check": between(1, 100)})
    quarantine_minutes: float = field(default=30.0, metadata={"check": between(0, 7 * 1440)})
    restart_player_after_errors: int = field(default=3, metadata={"check": between(1, 100)})
    restart_process_after_errors: int = field(default=6, metadata={"check": between(1, 100)})
    max_process_restarts_per_boot: int = field(default=2, metadata={"check": between(0, 100)})


@dataclass
class ClockConfig:
    """How far an unsynchronised clock is trusted."""

    # An unsynchronised clock may push the last-known-good time at most this far beyond the
    # time really elapsed; a synchronised clock is always believed.
    max_lkg_step_hours: float = field(default=1.0, metadata={"check": between(0.05, 24 * 31)})


@dataclass
class AgentConfig(StationLayout):
    terminal: str = field(metadata={"check": check_id})
    county: str = field(metadata={"check": check_id})
    content_dir: Path
    state_dir: Path
    timezone: str = field(default="Asia/Shanghai", metadata={"check": check_timezone})
    schedule_dir: Path | None = None
    schedule_poll_seconds: float = field(default=30.0, metadata={"check": positive})
    control_socket: Path | None = None
    admin_group: str = "stationadmin"
    log_level: str = field(
        default="info",
        metadata={
            "check": lambda v: (
                None
                if v in ("debug", "info", "warning", "error")
                else "must be debug, info, warning or error"
            )
        },
    )
    vlc: VlcConfig = field(default_factory=VlcConfig)
    playback: PlaybackConfig = field(default_factory=PlaybackConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    probes: ProbesConfig = field(default_factory=ProbesConfig)
    mqtt: MqttConfig | None = None
    source: Path = field(default=Path("<config>"), init=False)


class ConfigError(Exception):
    """The config cannot be used; the message names the file, line and key."""


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        node = parse_yaml(data, str(path))
        cfg = build(AgentConfig, node, str(path), base_dir=path.resolve().parent)
    except DocumentError as exc:
        raise ConfigError(str(exc)) from None
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
    cfg.source = path
    return cfg
