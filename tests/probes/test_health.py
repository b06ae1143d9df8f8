"""Hysteresis: scripted sample sequences give exactly the expected alarm changes, through the
alarm judge (each probe's verdicts, the link's) and the domain's state machines."""

from __future__ import annotations

from typing import Any

import pytest

from agent.domain.health import HealthEngine, Hysteresis, HysteresisSettings, Verdict
from agent.domain.linkstats import WindowStats
from agent.monitoring.judge import AlarmJudge
from agent.monitoring.probes.cec import CecSample
from agent.monitoring.probes.clocksync import ClockSyncSample
from agent.monitoring.probes.config import AlarmsConfig
from agent.monitoring.probes.datacast import DatacastSample
from agent.monitoring.probes.display import Connector, DisplaySample
from agent.monitoring.probes.dvb import DvbSample
from agent.monitoring.probes.icmp import IcmpResult, IcmpSample
from agent.monitoring.probes.power import PowerSample
from agent.monitoring.probes.system import DiskState, SystemSample
from agent.monitoring.probes.tcp import TcpResult, TcpSample
from agent.monitoring.probes.thermal import ThermalSample

T0 = 1_800_000_000.0
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


def run(engine: AlarmJudge, samples: list[Any], step: float = 60.0) -> list[tuple[int, str, str]]:
    """Feed samples one per ``step`` seconds; return (index, name, action) of every change."""
    out = []
    for i, sample in enumerate(samples):
        for change in engine.sample(sample, T0 + i * step, i * step):
            out.append((i, change.name, change.action))
    return out


def tcp(up: bool) -> TcpSample:
    return TcpSample(
        results=[TcpResult("broker:8883", "open" if up else "timeout", 40.0 if up else None)]
    )


def test_link_down_raises_after_three_and_clears_after_two() -> None:
    e = AlarmJudge(AlarmsConfig())
    seq = [True, False, False, True, False, False, False, False, True, False, True, True, True]
    assert run(e, [tcp(x) for x in seq]) == [
        (6, "link_down", "raised"),
        (11, "link_down", "cleared"),
    ]


def test_a_flapping_link_gives_no_alarm_storm() -> None:
    e = AlarmJudge(AlarmsConfig())
    assert run(e, [tcp(i % 2 == 0) for i in range(200)]) == []
    e2 = AlarmJudge(AlarmsConfig())
    # down-down-up forever: never three in a row
    assert run(e2, [tcp(i % 3 == 2) for i in range(300)]) == []


def test_cleared_change_carries_start_time_and_detail() -> None:
    e = AlarmJudge(AlarmsConfig())
    changes = []
    for i, up in enumerate([False, False, False, True, True]):
        changes += e.sample(tcp(up), T0 + i, float(i))
    raised, cleared = changes
    assert raised.at == T0 + 2 and raised.severity == "critical"
    assert raised.detail == {"targets": {"broker:8883": "timeout"}}
    assert cleared.at == T0 + 4 and cleared.raised_at == T0 + 2


def test_icmp_speaks_for_the_link_only_without_tcp_targets() -> None:
    e = AlarmJudge(AlarmsConfig())
    dead = IcmpSample(results=[IcmpResult("gw", sent=3, received=0)])
    assert run(e, [dead] * 3) == [(2, "link_down", "raised")]
    e2 = AlarmJudge(AlarmsConfig())
    assert run(e2, [tcp(True), dead, dead, dead, tcp(True)]) == []


def test_link_alarms_only_in_telecom_mode() -> None:
    e = AlarmJudge(AlarmsConfig(), mode="satellite")
    assert run(e, [tcp(False)] * 10) == []


def test_link_degraded_from_the_window_and_quiet_while_down() -> None:
    e = AlarmJudge(AlarmsConfig())
    slow = WindowStats(attempts=20, failures=0, loss=0.0, rtt_p95_ms=2500.0)
    good = WindowStats(attempts=20, failures=0, loss=0.0, rtt_p95_ms=300.0)
    lossy = WindowStats(attempts=20, failures=4, loss=0.2, rtt_p95_ms=300.0)
    few = WindowStats(attempts=2, failures=2, loss=1.0)
    got = []
    for i, w in enumerate([slow, slow, few, slow, good, good, good, lossy, lossy, lossy]):
        got += [(i, c.action) for c in e.window(w, T0 + i, float(i))]
    assert got == [(3, "raised"), (6, "cleared"), (9, "raised")]
    e2 = AlarmJudge(AlarmsConfig())
    run(e2, [tcp(False)] * 3)  # link_down raised
    assert [e2.window(lossy, T0, 0.0) for _ in range(5)] == [[]] * 5


def test_satellite_unlocked() -> None:
    e = AlarmJudge(AlarmsConfig(), mode="satellite")
    locked = DvbSample(present=True, has_lock=True)
    unlocked = DvbSample(present=True, has_lock=False)
    no_tuner = DvbSample(skipped="no DVB frontend")
    broken = DvbSample(present=True, ok=False, error="EIO")
    seq = [locked, unlocked, unlocked, no_tuner, broken, unlocked, unlocked, locked, locked]
    assert run(e, seq) == [
        (5, "satellite_unlocked", "raised"),
        (8, "satellite_unlocked", "cleared"),
    ]
    assert run(AlarmJudge(AlarmsConfig(), mode="telecom"), [unlocked] * 5) == []


def test_datacast_stale_by_age_and_by_an_empty_folder() -> None:
    e = AlarmJudge(AlarmsConfig())
    fresh = DatacastSample(seconds_since_file=3600, files_seen=5)
    old = DatacastSample(seconds_since_file=49 * 3600, files_seen=5)
    assert run(e, [fresh, old, old, fresh]) == [
        (1, "datacast_stale", "raised"),
        (3, "datacast_stale", "cleared"),
    ]
    e2 = AlarmJudge(AlarmsConfig())
    empty = DatacastSample(files_seen=0)
    assert run(e2, [empty] * 5, step=13 * 3600) == [(4, "datacast_stale", "raised")]  # 52 h > 48 h


def disks(*pcts: float, readonly: bool = False) -> SystemSample:
    return SystemSample(
        disks=[
            DiskState(f"/d{i}", 10**12, int(p * 10**10), p, readonly) for i, p in enumerate(pcts)
        ]
    )


def test_disk_low_has_a_band_not_a_flap() -> None:
    e = AlarmJudge(AlarmsConfig())
    seq = [
        disks(30, 50),
        disks(9, 50),
        disks(12, 50),
        disks(14.9, 50),
        disks(16, 50),
        disks(12, 50),
        disks(9.5, 50),
    ]
    assert run(e, seq) == [
        (1, "disk_low", "raised"),
        (4, "disk_low", "cleared"),
        (6, "disk_low", "raised"),
    ]


def test_disk_low_by_absolute_space() -> None:
    e = AlarmJudge(AlarmsConfig())
    tiny = SystemSample(
        disks=[DiskState("/small", 2 * 10**9, 300 * 10**6, 15.0, False)]
    )  # 15 % but 300 MB
    assert run(e, [tiny]) == [(0, "disk_low", "raised")]


def test_disk_readonly() -> None:
    e = AlarmJudge(AlarmsConfig())
    assert run(e, [disks(50), disks(50, readonly=True), disks(50, readonly=True), disks(50)]) == [
        (1, "disk_readonly", "raised"),
        (3, "disk_readonly", "cleared"),
    ]


def test_overheat_with_band() -> None:
    e = AlarmJudge(AlarmsConfig())
    temps = [79, 81, 81, 75, 71, 76, 71, 71]
    seq = [ThermalSample(sensors={"cpu": float(t)}) for t in temps]
    # 75 and 76 sit inside the band: they neither count nor break a run, so 71, 76, 71 clears.
    assert run(e, seq) == [(2, "overheat", "raised"), (6, "overheat", "cleared")]


def test_display_unknown_keeps_state() -> None:
    e = AlarmJudge(AlarmsConfig())

    def disp(status: str) -> DisplaySample:
        return DisplaySample(connectors=[Connector("card0-HDMI-A-1", status)])

    seq = [
        disp("connected"),
        disp("disconnected"),
        disp("unknown"),
        disp("disconnected"),
        disp("unknown"),
        disp("connected"),
    ]
    assert run(e, seq) == [
        (3, "display_disconnected", "raised"),
        (5, "display_disconnected", "cleared"),
    ]


def test_tv_no_answer_is_never_off() -> None:
    e = AlarmJudge(AlarmsConfig())
    seq = [
        CecSample(power=p) for p in ["on", "standby", "unknown", "standby", *["unknown"] * 10, "on"]
    ]
    assert run(e, seq) == [(3, "tv_off", "raised"), (14, "tv_off", "cleared")]
    assert run(AlarmJudge(AlarmsConfig()), [CecSample(power="unknown")] * 50) == []


def test_clock_unsynced_is_time_based() -> None:
    e = AlarmJudge(AlarmsConfig())
    seq = [ClockSyncSample(synced=False)] * 40 + [ClockSyncSample(synced=True)] * 2
    got = run(e, seq, step=60.0)
    assert got == [
        (30, "clock_unsynced", "raised"),
        (41, "clock_unsynced", "cleared"),
    ]  # 30 min, then 2 good


def test_undervoltage_clears_slowly() -> None:
    e = AlarmJudge(AlarmsConfig())
    seq = [
        PowerSample(undervoltage_now=v)
        for v in [False, True, False, False, False, False, True, False, False, False, False, False]
    ]
    assert run(e, seq) == [(1, "undervoltage", "raised"), (11, "undervoltage", "cleared")]
    assert run(AlarmJudge(AlarmsConfig()), [PowerSample(skipped="not a Pi")] * 5) == []


def test_restore_after_restart_clears_instead_of_raising_twice() -> None:
    e = AlarmJudge(AlarmsConfig())
    e.restore("link_down", T0 - 3600)
    assert e.active() == {"link_down": T0 - 3600}
    assert run(e, [tcp(False)] * 5) == []  # already raised: no duplicate
    changes = [c for i in range(2) for c in e.sample(tcp(True), T0 + 600 + i, 600.0 + i)]
    assert [(c.action, c.raised_at) for c in changes] == [("cleared", T0 - 3600)]


def test_thresholds_come_from_config() -> None:
    cfg = AlarmsConfig()
    cfg.link_down.raise_after = 1
    cfg.link_down.clear_after = 1
    cfg.overheat.raise_c, cfg.overheat.clear_c, cfg.overheat.raise_after = 60.0, 50.0, 1
    e = AlarmJudge(cfg)
    assert run(e, [tcp(False), tcp(True)]) == [
        (0, "link_down", "raised"),
        (1, "link_down", "cleared"),
    ]
    assert run(e, [ThermalSample(sensors={"a": 61.0})]) == [(0, "overheat", "raised")]


def test_every_alarm_name_has_a_machine() -> None:
    assert sorted(AlarmJudge(AlarmsConfig()).machines) == sorted(ALARM_NAMES)


def test_hysteresis_time_and_count_together() -> None:
    h = Hysteresis("x", "warning", raise_after=3, raise_after_seconds=100)
    assert [h.update(True, T0 + t, t, {}) for t in (0, 10, 20)] == [
        None,
        None,
        None,
    ]  # 3 bad, too soon
    change = h.update(True, T0 + 100, 100, {})
    assert change is not None and change.action == "raised"
    with pytest.raises(TypeError):
        Hysteresis("x")  # type: ignore[call-arg]


def test_the_engine_counts_named_verdicts_and_knows_no_probe() -> None:
    engine = HealthEngine({"fan_stopped": HysteresisSettings("warning", raise_after=2)})
    seq = [True, None, True, False]  # unknown neither counts nor breaks the run
    got = [
        engine.judge({"fan_stopped": Verdict(v, {"i": i})}, T0 + i, i) for i, v in enumerate(seq)
    ]
    assert [[(c.name, c.action, c.detail) for c in changes] for changes in got] == [
        [],
        [],
        [("fan_stopped", "raised", {"i": 2})],
        [("fan_stopped", "cleared", {"i": 3})],
    ]
    with pytest.raises(KeyError, match="no alarm named 'overheat'"):
        engine.judge({"overheat": Verdict(True)}, T0, 0.0)
