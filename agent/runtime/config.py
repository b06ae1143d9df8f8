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


def _check_windows(windows: list[str]) -> str | None:
    from agent.domain.content_plan import check_window

    for text in windows:
        problem = check_window(text)
        if problem:
            return f"{text!r}: {problem}"
    return None


@dataclass
class ContentConfig:
    """How course files reach the terminal (manifests, HTTP mirrors, the satellite folder) and
    how much of the disk they may take."""

    # Files needed by slots this far ahead are fetched (soonest first), plus the library's.
    horizon_days: float = field(default=7.0, metadata={"check": between(0.1, 60)})
    # Average download rate cap in kilobits per second (rural lines are shared); None: no cap.
    max_kbps: float | None = field(default=None, metadata={"check": between(8, 10_000_000)})
    # Local times when downloading is allowed, e.g. ["00:30-06:00"]; empty: any time.
    windows: list[str] = field(default_factory=list, metadata={"check": _check_windows})
    # A file whose slot is nearer than this is fetched outside the windows too.
    urgent_hours: float = field(default=12.0, metadata={"check": between(0, 24 * 60)})
    # The content folder's own limit; None: only min_free_mb applies.
    max_gb: float | None = field(default=None, metadata={"check": between(0.01, 100_000)})
    # Space always left free on the content folder's filesystem (the store and logs need it).
    min_free_mb: float = field(default=200.0, metadata={"check": between(0, 1_000_000)})
    # ``content_missing`` is raised when a slot this near has no verified file.
    alarm_hours: float = field(default=24.0, metadata={"check": between(0, 24 * 60)})
    # A download that receives nothing for this long is given up (and retried later).
    stall_seconds: float = field(default=60.0, metadata={"check": between(2, 3600)})
    connect_timeout_seconds: float = field(default=20.0, metadata={"check": between(1, 600)})
    # The county's CA certificate for https mirrors; None: the system's CAs.
    ca_file: Path | None = None
    # ``content_fetch_failed`` is raised for a file after this many failed attempts in a row.
    alarm_after_tries: int = field(default=3, metadata={"check": between(1, 1000)})
    # Back-off between attempts at one file: doubles from the first to the longest.
    retry_seconds: float = field(default=60.0, metadata={"check": between(0.1, 86400)})
    max_retry_seconds: float = field(default=3600.0, metadata={"check": between(1, 7 * 86400)})
    # Where a satellite datacast receiver writes files; None: no satellite intake.
    intake_dir: Path | None = None
    # How often the intake folder is looked at (a file is taken once complete and matching).
    intake_poll_seconds: float = field(default=30.0, metadata={"check": between(0.1, 86400)})
    # What is needed is worked out again at least this often (the horizon moves on by itself).
    replan_seconds: float = field(default=3600.0, metadata={"check": between(0.1, 86400)})


def _check_signatures(value: str) -> str | None:
    return None if value in ("required", "optional", "off") else "must be required, optional or off"


@dataclass
class TrustConfig:
    """Which signed documents the terminal accepts (``docs/trust.md``)."""

    # required: unsigned documents are refused; optional: signed ones must hold, unsigned ones
    # are taken (and logged); off: nothing is checked. The installed config says required.
    signatures: str = field(default="optional", metadata={"check": _check_signatures})
    # The province root public keys installed with the agent (one ``<key id>.pub`` each).
    roots_dir: Path = Path("/etc/station-agent/trust")
    # Tolerance on certificate dates for a clock that is a little off.
    clock_slack_hours: float = field(default=12.0, metadata={"check": between(0, 24 * 31)})


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
    content: ContentConfig = field(default_factory=ContentConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
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
