"""Health state machines: samples in, alarm changes out. Pure: no threads, no I/O, no clock.

One machine per concern. Each takes a tri-state verdict per sample: bad, good, or ``None``
(unknown: the probe could not tell, or the value sits inside the hysteresis band), and raises
after N bad verdicts in a row (and, optionally, after being bad for T seconds), clears after M good
ones. Unknown verdicts change nothing, so a TV that stops answering CEC keeps its last known state
and a flapping link gives one alarm, not a hundred.

Times are passed in: ``now`` (wall clock, epoch seconds) stamps the changes, ``mono`` (monotonic)
measures durations, so an NTP step cannot make an alarm fire or clear early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agent.domain.linkstats import WindowStats
from agent.monitoring.probes.cec import CecSample
from agent.monitoring.probes.clocksync import ClockSyncSample
from agent.monitoring.probes.config import AlarmsConfig
from agent.monitoring.probes.datacast import DatacastSample
from agent.monitoring.probes.display import DisplaySample
from agent.monitoring.probes.dvb import DvbSample
from agent.monitoring.probes.icmp import IcmpSample
from agent.monitoring.probes.power import PowerSample
from agent.monitoring.probes.system import SystemSample
from agent.monitoring.probes.tcp import TcpSample
from agent.monitoring.probes.thermal import ThermalSample

ALARM_NAMES = (
    "link_down",
    "link_degraded",
    "satellite_unlocked",
    "datacast_stale",
    "disk_low",
    "disk_readonly",
    "overheat",
    "display_disconnected",
    "tv_off",
    "clock_unsynced",
    "undervoltage",
)


@dataclass(frozen=True)
class AlarmChange:
    """One alarm raised or cleared. ``raised_at`` on a clear tells when the trouble began."""

    name: str
    action: Literal["raised", "cleared"]
    at: float
    severity: str
    detail: dict[str, Any] = field(default_factory=dict)
    raised_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Hysteresis:
    """One concern's state machine (see the module docstring)."""

    def __init__(
        self,
        name: str,
        severity: str,
        raise_after: int = 1,
        clear_after: int = 1,
        raise_after_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self.severity = severity
        self.raise_after = raise_after
        self.clear_after = clear_after
        self.raise_after_seconds = raise_after_seconds
        self.active = False
        self.raised_at: float | None = None
        self.bad_count = 0
        self.good_count = 0
        self.bad_since: float | None = None

    def restore(self, raised_at: float) -> None:
        """Start as raised (the alarm was open in the store when the agent restarted)."""
        self.active, self.raised_at = True, raised_at

    def update(
        self, bad: bool | None, now: float, mono: float, detail: dict[str, Any]
    ) -> AlarmChange | None:
        if bad is None:
            return None
        if bad:
            self.good_count = 0
            self.bad_count += 1
            if self.bad_since is None:
                self.bad_since = mono
            if (
                not self.active
                and self.bad_count >= self.raise_after
                and mono - self.bad_since >= self.raise_after_seconds
            ):
                self.active, self.raised_at = True, now
                return AlarmChange(self.name, "raised", now, self.severity, detail)
            return None
        self.bad_count = 0
        self.bad_since = None
        self.good_count += 1
        if self.active and self.good_count >= self.clear_after:
            raised_at, self.active, self.raised_at = self.raised_at, False, None
            return AlarmChange(self.name, "cleared", now, self.severity, detail, raised_at)
        return None


class HealthEngine:
    """All concerns together; feed it samples and window stats, collect the changes."""

    def __init__(self, cfg: AlarmsConfig, mode: str = "telecom") -> None:
        self.cfg = cfg
        self.mode = mode
        a = cfg
        self.machines: dict[str, Hysteresis] = {
            "link_down": Hysteresis(
                "link_down", a.link_down.severity, a.link_down.raise_after, a.link_down.clear_after
            ),
            "link_degraded": Hysteresis(
                "link_degraded",
                a.link_degraded.severity,
                a.link_degraded.raise_after,
                a.link_degraded.clear_after,
            ),
            "satellite_unlocked": Hysteresis(
                "satellite_unlocked",
                a.satellite_unlocked.severity,
                a.satellite_unlocked.raise_after,
                a.satellite_unlocked.clear_after,
            ),
            "datacast_stale": Hysteresis("datacast_stale", a.datacast_stale.severity),
            "disk_low": Hysteresis("disk_low", a.disk_low.severity),
            "disk_readonly": Hysteresis(
                "disk_readonly",
                a.disk_readonly.severity,
                a.disk_readonly.raise_after,
                a.disk_readonly.clear_after,
            ),
            "overheat": Hysteresis(
                "overheat", a.overheat.severity, a.overheat.raise_after, a.overheat.clear_after
            ),
            "display_disconnected": Hysteresis(
                "display_disconnected",
                a.display_disconnected.severity,
                a.display_disconnected.raise_after,
                a.display_disconnected.clear_after,
            ),
            "tv_off": Hysteresis(
                "tv_off", a.tv_off.severity, a.tv_off.raise_after, a.tv_off.clear_after
            ),
            "clock_unsynced": Hysteresis(
                "clock_unsynced",
                a.clock_unsynced.severity,
                1,
                a.clock_unsynced.clear_after,
                a.clock_unsynced.after_minutes * 60.0,
            ),
            "undervoltage": Hysteresis(
                "undervoltage",
                a.undervoltage.severity,
                a.undervoltage.raise_after,
                a.undervoltage.clear_after,
            ),
        }
        self._tcp_has_targets = False
        self._datacast_first_mono: float | None = None

    # -- bookkeeping -----------------------------------------------------------------------

    def restore(self, name: str, raised_at: float) -> None:
        if name in self.machines:
            self.machines[name].restore(raised_at)

    def active(self) -> dict[str, float]:
        return {n: m.raised_at or 0.0 for n, m in self.machines.items() if m.active}

    def _step(
        self, name: str, bad: bool | None, now: float, mono: float, detail: dict[str, Any]
    ) -> list[AlarmChange]:
        change = self.machines[name].update(bad, now, mono, detail)
        return [change] if change else []

    # -- inputs ----------------------------------------------------------------------------

    def link_verdict(
        self, up: bool | None, now: float, mono: float, detail: dict[str, Any]
    ) -> list[AlarmChange]:
        """One probe cycle's verdict on the return link (telecom mode only)."""
        if self.mode != "telecom":
            return []
        return self._step("link_down", None if up is None else not up, now, mono, detail)

    def window(self, stats: WindowStats, now: float, mono: float) -> list[AlarmChange]:
        """The sliding window, re-judged after each link cycle."""
        if self.mode != "telecom":
            return []
        c = self.cfg.link_degraded
        bad: bool | None
        if self.machines["link_down"].active or stats.attempts < c.min_attempts:
            bad = None  # a dead link is link_down's business; too few attempts say nothing
        else:
            reasons = []
            if stats.rtt_p95_ms is not None and stats.rtt_p95_ms > c.rtt_p95_ms:
                reasons.append("rtt")
            if stats.loss is not None and stats.loss * 100.0 > c.loss_pct:
                reasons.append("loss")
            if c.jitter_ms > 0 and stats.jitter_ms is not None and stats.jitter_ms > c.jitter_ms:
                reasons.append("jitter")
            bad = bool(reasons)
        detail = {
            "rtt_p95_ms": stats.rtt_p95_ms,
            "loss": stats.loss,
            "jitter_ms": stats.jitter_ms,
            "attempts": stats.attempts,
        }
        return self._step("link_degraded", bad, now, mono, detail)

    def sample(self, sample: object, now: float, mono: float) -> list[AlarmChange]:
        """Dispatch one probe sample to the concerns it informs."""
        if isinstance(sample, TcpSample):
            if sample.results:
                self._tcp_has_targets = True
                detail = {"targets": {r.target: r.status for r in sample.results}}
                return self.link_verdict(sample.any_reachable, now, mono, detail)
            return []
        if isinstance(sample, IcmpSample):
            if self._tcp_has_targets or not sample.results:
                return []
            up = any(r.received > 0 for r in sample.results)
            detail = {"hosts": {r.host: f"{r.received}/{r.sent}" for r in sample.results}}
            return self.link_verdict(up, now, mono, detail)
        if isinstance(sample, DvbSample):
            return self._dvb(sample, now, mono)
        if isinstance(sample, DatacastSample):
            return self._datacast(sample, now, mono)
        if isinstance(sample, SystemSample):
            return self._disks(sample, now, mono)
        if isinstance(sample, ThermalSample):
            return self._thermal(sample, now, mono)
        if isinstance(sample, DisplaySample):
            detail = {"connectors": {c.name: c.status for c in sample.connectors}}
            connected = sample.any_connected
            return self._step(
                "display_disconnected",
                None if connected is None else not connected,
                now,
                mono,
                detail,
            )
        if isinstance(sample, CecSample):
            bad = {"standby": True, "to_standby": True, "on": False, "to_on": False}.get(
                sample.power
            )
            return self._step("tv_off", bad, now, mono, {"power": sample.power})
        if isinstance(sample, ClockSyncSample):
            bad = None if sample.synced is None else not sample.synced
            detail = {"reason": sample.reason, "maxerror_us": sample.maxerror_us}
            return self._step("clock_unsynced", bad, now, mono, detail)
        if isinstance(sample, PowerSample):
            detail = {"source": sample.source, "since_boot": sample.undervoltage_since_boot}
            return self._step("undervoltage", sample.undervoltage_now, now, mono, detail)
        return []

    def _dvb(self, s: DvbSample, now: float, mono: float) -> list[AlarmChange]:
        if self.mode != "satellite" or s.skipped or not s.ok:
            # A frontend we cannot read is not evidence of lost lock.
            return []
        detail = {"status": s.status, "signal_dbm": s.signal_dbm, "cnr_db": s.cnr_db}
        return self._step(
            "satellite_unlocked", None if s.has_lock is None else not s.has_lock, now, mono, detail
        )

    def _datacast(self, s: DatacastSample, now: float, mono: float) -> list[AlarmChange]:
        limit = self.cfg.datacast_stale.stale_hours * 3600.0
        if self._datacast_first_mono is None:
            self._datacast_first_mono = mono
        bad: bool | None
        if s.seconds_since_file is not None:
            bad = s.seconds_since_file > limit
        elif (
            s.ok
            and s.files_seen == 0
            and not s.skipped
            and s.newest_mtime is None
            and s.error is None
        ):
            # An empty folder: stale once we have watched it for longer than the limit.
            bad = True if mono - self._datacast_first_mono > limit else None
        else:
            bad = None
        detail = {"seconds_since_file": s.seconds_since_file, "newest_file": s.newest_file}
        return self._step("datacast_stale", bad, now, mono, detail)

    def _disks(self, s: SystemSample, now: float, mono: float) -> list[AlarmChange]:
        c = self.cfg.disk_low
        disks = [d for d in s.disks if d.free_pct is not None and d.free_bytes is not None]
        changes: list[AlarmChange] = []
        if disks:
            low = [d for d in disks if d.free_pct < c.low_pct or d.free_bytes < c.low_mb * 1e6]  # type: ignore[operator]
            fine = [d for d in disks if d.free_pct >= c.ok_pct and d.free_bytes >= c.ok_mb * 1e6]  # type: ignore[operator]
            bad = True if low else (False if len(fine) == len(disks) else None)
            detail = {"free_pct": {d.path: round(d.free_pct or 0.0, 1) for d in disks}}
            changes += self._step("disk_low", bad, now, mono, detail)
        known = [d for d in s.disks if d.readonly is not None]
        if known:
            ro = [d.path for d in known if d.readonly]
            changes += self._step("disk_readonly", bool(ro), now, mono, {"readonly": ro})
        return changes

    def _thermal(self, s: ThermalSample, now: float, mono: float) -> list[AlarmChange]:
        hottest = s.max_c
        if hottest is None:
            return []
        c = self.cfg.overheat
        bad = True if hottest >= c.raise_c else (False if hottest <= c.clear_c else None)
        return self._step("overheat", bad, now, mono, {"max_c": hottest})
