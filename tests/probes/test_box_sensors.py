"""Thermal, display, storage wear and power probes against fake sysfs trees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.monitoring.probes.base import CommandResult
from agent.monitoring.probes.display import DisplayProbe, DisplayProbeConfig
from agent.monitoring.probes.power import PowerProbe, PowerProbeConfig, parse_vcgencmd
from agent.monitoring.probes.storage_wear import StorageWearProbe, StorageWearProbeConfig, life_band
from agent.monitoring.probes.thermal import ThermalProbe, ThermalProbeConfig
from tests.probes.probe_helpers import RecordedRunner, write_tree

# -- thermal ---------------------------------------------------------------------------------


def test_thermal_zones_and_hwmon(tmp_path: Path) -> None:
    sysfs = write_tree(
        tmp_path,
        {
            "class/thermal/thermal_zone0/temp": "61234\n",
            "class/thermal/thermal_zone0/type": "cpu-thermal\n",
            "class/thermal/thermal_zone1/temp": "-273000\n",  # broken sensor: ignored
            "class/hwmon/hwmon0/name": "coretemp\n",
            "class/hwmon/hwmon0/temp1_input": "83500\n",
            "class/hwmon/hwmon0/temp1_label": "Package id 0\n",
            "class/hwmon/hwmon0/temp2_input": "40000\n",
        },
    )
    s = ThermalProbe(ThermalProbeConfig(), sysfs=sysfs).collect(time.monotonic() + 1)
    assert s.sensors == {
        "thermal_zone0:cpu-thermal": 61.234,
        "hwmon0:coretemp:Package id 0": 83.5,
        "hwmon0:coretemp:temp2": 40.0,
    }
    assert s.max_c == 83.5


def test_thermal_nothing_exposed(tmp_path: Path) -> None:
    s = ThermalProbe(ThermalProbeConfig(), sysfs=tmp_path).collect(time.monotonic() + 1)
    assert s.skipped and s.max_c is None


# -- display ---------------------------------------------------------------------------------


def drm(status_hdmi: str, status_dp: str = "disconnected") -> dict[str, str]:
    return {
        "class/drm/card0/dev": "226:0\n",
        "class/drm/card0-HDMI-A-1/status": status_hdmi + "\n",
        "class/drm/card0-HDMI-A-1/enabled": "enabled\n",
        "class/drm/card0-HDMI-A-1/dpms": "On\n",
        "class/drm/card0-HDMI-A-1/modes": "1920x1080\n1280x720\n",
        "class/drm/card0-DP-1/status": status_dp + "\n",
        "class/drm/card0-DP-1/modes": "",
    }


def test_display_connected(tmp_path: Path) -> None:
    s = DisplayProbe(DisplayProbeConfig(), sysfs=write_tree(tmp_path, drm("connected"))).collect(
        time.monotonic() + 1
    )
    names = [c.name for c in s.connectors]
    assert names == ["card0-DP-1", "card0-HDMI-A-1"]
    hdmi = s.connectors[1]
    assert (hdmi.status, hdmi.mode, hdmi.dpms) == ("connected", "1920x1080", "On")
    assert s.any_connected is True


def test_display_all_disconnected_and_filter(tmp_path: Path) -> None:
    sysfs = write_tree(tmp_path, drm("disconnected", "connected"))
    only_hdmi = DisplayProbe(DisplayProbeConfig(connectors=["card0-HDMI-A-1"]), sysfs=sysfs)
    assert only_hdmi.collect(time.monotonic() + 1).any_connected is False
    assert (
        DisplayProbe(DisplayProbeConfig(), sysfs=sysfs).collect(time.monotonic() + 1).any_connected
        is True
    )


def test_display_unknown_is_not_disconnected(tmp_path: Path) -> None:
    s = DisplayProbe(
        DisplayProbeConfig(), sysfs=write_tree(tmp_path, drm("unknown", "unknown"))
    ).collect(time.monotonic() + 1)
    assert s.any_connected is None
    none = DisplayProbe(DisplayProbeConfig(), sysfs=tmp_path / "empty").collect(
        time.monotonic() + 1
    )
    assert none.skipped and none.any_connected is None


# -- storage wear ----------------------------------------------------------------------------


def test_emmc_wear_and_sd_card(tmp_path: Path) -> None:
    sysfs = write_tree(
        tmp_path,
        {
            "bus/mmc/devices/mmc0:0001/type": "MMC\n",
            "bus/mmc/devices/mmc0:0001/name": "8GTF4R\n",
            "bus/mmc/devices/mmc0:0001/life_time": "0x02 0x04\n",
            "bus/mmc/devices/mmc0:0001/pre_eol_info": "0x02\n",
            "bus/mmc/devices/mmc0:0001/block/mmcblk0/stat": "100 0 800 0 2000 0 409600 0 0 0 0\n",
            "bus/mmc/devices/mmc1:aaaa/type": "SD\n",
            "bus/mmc/devices/mmc1:aaaa/name": "SC32G\n",
        },
    )
    s = StorageWearProbe(StorageWearProbeConfig(), sysfs=sysfs).collect(time.monotonic() + 1)
    emmc, sd = s.devices
    assert (emmc.type, emmc.life_time_a_pct, emmc.life_time_b_pct, emmc.pre_eol) == (
        "MMC",
        20,
        40,
        "warning",
    )
    assert emmc.written_bytes_since_boot == 409600 * 512
    assert (sd.type, sd.life_time_a_pct, sd.pre_eol) == ("SD", None, None)
    assert s.worst_life_pct == 40


def test_life_band_codes() -> None:
    assert [life_band(c) for c in (0, 1, 10, 11, 12)] == [None, 10, 100, 110, None]


def test_no_mmc(tmp_path: Path) -> None:
    assert (
        StorageWearProbe(StorageWearProbeConfig(), sysfs=tmp_path)
        .collect(time.monotonic() + 1)
        .skipped
    )


# -- power -----------------------------------------------------------------------------------


def no_tool(_name: str) -> str | None:
    return None


def test_rpi_hwmon_sensor(tmp_path: Path) -> None:
    sysfs = write_tree(
        tmp_path,
        {"class/hwmon/hwmon1/name": "rpi_volt\n", "class/hwmon/hwmon1/in0_lcrit_alarm": "1\n"},
    )
    s = PowerProbe(PowerProbeConfig(), sysfs=sysfs, which=no_tool).collect(time.monotonic() + 1)
    assert (
        s.source == "hwmon rpi_volt"
        and s.undervoltage_now is True
        and s.undervoltage_since_boot is None
    )


def test_firmware_get_throttled_bits(tmp_path: Path) -> None:
    sysfs = write_tree(tmp_path, {"devices/platform/soc/soc:firmware/get_throttled": "50000\n"})
    s = PowerProbe(PowerProbeConfig(), sysfs=sysfs, which=no_tool).collect(time.monotonic() + 1)
    assert s.source == "sysfs get_throttled"
    assert (
        s.undervoltage_now is False
        and s.undervoltage_since_boot is True
        and s.throttled_now is False
    )


@pytest.mark.parametrize(
    ("output", "now", "since_boot"),
    [
        ("throttled=0x0\n", False, False),
        ("throttled=0x50005\n", True, True),
        ("throttled=0x50000\n", False, True),
    ],
)
def test_vcgencmd_output(tmp_path: Path, output: str, now: bool, since_boot: bool) -> None:
    runner = RecordedRunner(CommandResult(0, output))
    s = PowerProbe(PowerProbeConfig(), sysfs=tmp_path, runner=runner, which=lambda n: n).collect(
        time.monotonic() + 1
    )
    assert (s.source, s.undervoltage_now, s.undervoltage_since_boot) == (
        "vcgencmd",
        now,
        since_boot,
    )
    assert runner.calls[0][0] == ["vcgencmd", "get_throttled"]


def test_vcgencmd_garbage_and_not_a_pi(tmp_path: Path) -> None:
    bad = PowerProbe(
        PowerProbeConfig(),
        sysfs=tmp_path,
        runner=RecordedRunner(CommandResult(255, "VCHI init failed\n")),
        which=lambda n: n,
    )
    s = bad.collect(time.monotonic() + 1)
    assert not s.ok and s.undervoltage_now is None
    assert parse_vcgencmd("throttled=0x1") == 1
    plain = PowerProbe(PowerProbeConfig(), sysfs=tmp_path, which=no_tool).collect(
        time.monotonic() + 1
    )
    assert plain.skipped and plain.undervoltage_now is None
