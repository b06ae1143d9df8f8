"""The core's settings: plain numbers the runtime derives from the agent's config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CoreSettings:
    """Timings and limits of playback, escalation and clock trust.

    Mutable on purpose: the runtime sets ``process_restarts_left`` from its on-disk count after
    building the core, and the escalation spends it.
    """

    terminal: str
    boot_id: str
    grace_s: float = 600.0
    default_slot_s: float = 3600.0
    checkpoint_s: float = 60.0
    preroll_s: float = 5.0
    start_timeout_s: float = 20.0
    stall_s: float = 15.0
    retries: int = 2
    retry_delay_s: float = 10.0
    require_synced_clock: bool = False
    lookback_s: float = 48 * 3600.0
    on_demand_priority: int = 50
    horizon_s: float = 36 * 3600.0
    idle_unload_s: float = 120.0  # release libvlc after this long with nothing to play
    # Escalation when playback keeps failing (each step logged and raised as an alarm):
    quarantine_after: int = 2  # errors of the same media in a row -> quarantine it
    quarantine_s: float = 1800.0
    restart_player_after: int = 3  # errors in a row, any media -> restart libvlc
    restart_process_after: int = 6  # errors in a row -> exit so systemd restarts us
    max_player_restarts: int = 5  # per boot
    process_restarts_left: int = 2  # per boot (the runtime counts them on disk)
    # How far an unsynchronised clock may push the last-known-good time beyond what has really
    # elapsed (monotonic) since it was last set: a wrong future clock cannot run away with it.
    max_lkg_step_s: float = 3600.0
