"""The ``probes:`` section of the agent config: one sub-section per probe, one per alarm.

Defaults are chosen for a village terminal on a slow, flaky link and an SD card: link checks once
a minute, slow things (CEC, DNS, wear) every few minutes or hourly, and alarms that need several
bad samples in a row so a flapping link gives one alarm, not a hundred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agent.domain.schema import between
from agent.monitoring.probes.cec import CecProbeConfig
from agent.monitoring.probes.clocksync import ClockSyncProbeConfig
from agent.monitoring.probes.datacast import DatacastProbeConfig
from agent.monitoring.probes.display import DisplayProbeConfig
from agent.monitoring.probes.dns import DnsProbeConfig
from agent.monitoring.probes.dvb import DvbProbeConfig
from agent.monitoring.probes.gateway import GatewayProbeConfig
from agent.monitoring.probes.icmp import IcmpProbeConfig
from agent.monitoring.probes.netif import NetifProbeConfig
from agent.monitoring.probes.power import PowerProbeConfig
from agent.monitoring.probes.storage_wear import StorageWearProbeConfig
from agent.monitoring.probes.system import SystemProbeConfig
from agent.monitoring.probes.tcp import TcpProbeConfig
from agent.monitoring.probes.thermal import ThermalProbeConfig

Severity = Literal["critical", "warning", "info"]


@dataclass
class CountHysteresis:
    """Raise after ``raise_after`` bad samples in a row, clear after ``clear_after`` good ones."""

    raise_after: int = field(default=3, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=2, metadata={"check": between(1, 1000)})


@dataclass
class LinkDownAlarm(CountHysteresis):
    severity: Severity = "critical"


@dataclass
class LinkDegradedAlarm(CountHysteresis):
    """Judged on the sliding window: p95 RTT or loss over the limit, with enough attempts."""

    rtt_p95_ms: float = field(default=1500.0, metadata={"check": between(1, 600000)})
    loss_pct: float = field(default=10.0, metadata={"check": between(0, 100)})
    jitter_ms: float = field(default=0.0, metadata={"check": between(0, 600000)})  # 0 = ignore
    min_attempts: int = field(default=5, metadata={"check": between(1, 100000)})
    raise_after: int = field(default=3, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=3, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"


@dataclass
class SatelliteUnlockedAlarm(CountHysteresis):
    severity: Severity = "critical"


@dataclass
class DatacastStaleAlarm:
    """No complete file in the receive folder for this long."""

    stale_hours: float = field(default=48.0, metadata={"check": between(0.1, 24 * 365)})
    severity: Severity = "warning"


@dataclass
class DiskLowAlarm:
    """Raise below ``low_pct`` or ``low_mb`` free; clear only above ``ok_pct`` and ``ok_mb``."""

    low_pct: float = field(default=10.0, metadata={"check": between(0, 100)})
    ok_pct: float = field(default=15.0, metadata={"check": between(0, 100)})
    low_mb: float = field(default=500.0, metadata={"check": between(0, 10_000_000)})
    ok_mb: float = field(default=750.0, metadata={"check": between(0, 10_000_000)})
    severity: Severity = "warning"

    def _validate(self) -> list[tuple[str, str]]:
        out = []
        if self.ok_pct < self.low_pct:
            out.append(("ok_pct", "must not be below low_pct"))
        if self.ok_mb < self.low_mb:
            out.append(("ok_mb", "must not be below low_mb"))
        return out


@dataclass
class DiskReadonlyAlarm(CountHysteresis):
    raise_after: int = field(default=1, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=1, metadata={"check": between(1, 1000)})
    severity: Severity = "critical"


@dataclass
class OverheatAlarm(CountHysteresis):
    """Hottest sensor at or above ``raise_c``; clears at or below ``clear_c``."""

    raise_c: float = field(default=80.0, metadata={"check": between(20, 150)})
    clear_c: float = field(default=72.0, metadata={"check": between(20, 150)})
    raise_after: int = field(default=2, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"

    def _validate(self) -> list[tuple[str, str]]:
        return [("clear_c", "must be below raise_c")] if self.clear_c >= self.raise_c else []


@dataclass
class DisplayDisconnectedAlarm(CountHysteresis):
    raise_after: int = field(default=2, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=1, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"


@dataclass
class TvOffAlarm(CountHysteresis):
    """Only an explicit "standby" from the TV counts; no answer keeps the current state."""

    raise_after: int = field(default=2, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=1, metadata={"check": between(1, 1000)})
    severity: Severity = "info"


@dataclass
class ClockUnsyncedAlarm:
    """Unsynced for this long (many terminals never sync; the alarm says so once)."""

    after_minutes: float = field(default=30.0, metadata={"check": between(0, 7 * 24 * 60)})
    clear_after: int = field(default=2, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"


@dataclass
class UndervoltageAlarm(CountHysteresis):
    raise_after: int = field(default=1, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=5, metadata={"check": between(1, 1000)})
    severity: Severity = "warning"


@dataclass
class AlarmsConfig:
    link_down: LinkDownAlarm = field(default_factory=LinkDownAlarm)
    link_degraded: LinkDegradedAlarm = field(default_factory=LinkDegradedAlarm)
    satellite_unlocked: SatelliteUnlockedAlarm = field(default_factory=SatelliteUnlockedAlarm)
    datacast_stale: DatacastStaleAlarm = field(default_factory=DatacastStaleAlarm)
    disk_low: DiskLowAlarm = field(default_factory=DiskLowAlarm)
    disk_readonly: DiskReadonlyAlarm = field(default_factory=DiskReadonlyAlarm)
    overheat: OverheatAlarm = field(default_factory=OverheatAlarm)
    display_disconnected: DisplayDisconnectedAlarm = field(default_factory=DisplayDisconnectedAlarm)
    tv_off: TvOffAlarm = field(default_factory=TvOffAlarm)
    clock_unsynced: ClockUnsyncedAlarm = field(default_factory=ClockUnsyncedAlarm)
    undervoltage: UndervoltageAlarm = field(default_factory=UndervoltageAlarm)


@dataclass
class ProbesConfig:
    """``mode`` picks the link probes: telecom (tcp/dns/icmp/gateway/netif) or satellite (dvb/datacast)."""

    enabled: bool = True
    mode: Literal["telecom", "satellite"] = "telecom"
    workers: int = field(default=3, metadata={"check": between(1, 16)})
    window_minutes: float = field(default=15.0, metadata={"check": between(1, 24 * 60)})
    summary_minutes: float = field(default=60.0, metadata={"check": between(1, 24 * 60)})
    emit_samples: bool = False
    tcp: TcpProbeConfig = field(default_factory=TcpProbeConfig)
    dns: DnsProbeConfig = field(default_factory=DnsProbeConfig)
    icmp: IcmpProbeConfig = field(default_factory=IcmpProbeConfig)
    gateway: GatewayProbeConfig = field(default_factory=GatewayProbeConfig)
    netif: NetifProbeConfig = field(default_factory=NetifProbeConfig)
    dvb: DvbProbeConfig = field(default_factory=DvbProbeConfig)
    datacast: DatacastProbeConfig = field(default_factory=DatacastProbeConfig)
    system: SystemProbeConfig = field(default_factory=SystemProbeConfig)
    thermal: ThermalProbeConfig = field(default_factory=ThermalProbeConfig)
    display: DisplayProbeConfig = field(default_factory=DisplayProbeConfig)
    cec: CecProbeConfig = field(default_factory=CecProbeConfig)
    clocksync: ClockSyncProbeConfig = field(default_factory=ClockSyncProbeConfig)
    storage_wear: StorageWearProbeConfig = field(default_factory=StorageWearProbeConfig)
    power: PowerProbeConfig = field(default_factory=PowerProbeConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)
