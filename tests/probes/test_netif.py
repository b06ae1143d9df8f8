from __future__ import annotations

import time
from pathlib import Path

from agent.monitoring.probes.netif import NetifProbe, NetifProbeConfig
from tests.probes.probe_helpers import write_tree


def iface(
    name: str,
    *,
    carrier: str | None = "1",
    rx: int = 1000,
    tx: int = 500,
    errors: int = 0,
    device: bool = True,
) -> dict[str, str]:
    base = f"class/net/{name}"
    files = {
        f"{base}/operstate": "up\n" if carrier == "1" else "down\n",
        f"{base}/carrier_changes": "4\n",
        f"{base}/speed": "100\n",
        f"{base}/statistics/rx_bytes": f"{rx}\n",
        f"{base}/statistics/tx_bytes": f"{tx}\n",
        f"{base}/statistics/rx_errors": f"{errors}\n",
        f"{base}/statistics/tx_errors": "0\n",
    }
    if carrier is not None:
        files[f"{base}/carrier"] = carrier + "\n"
    if device:
        files[f"{base}/device/uevent"] = "DRIVER=r8169\n"
    return files


def test_reads_carrier_counters_and_skips_virtual(tmp_path: Path) -> None:
    write_tree(tmp_path, {**iface("eth0"), **iface("lo"), **iface("ifb0", device=False)})
    s = NetifProbe(NetifProbeConfig(), sysfs=tmp_path).collect(time.monotonic() + 1)
    assert [i.name for i in s.interfaces] == ["eth0"]
    (eth,) = s.interfaces
    assert (
        eth.carrier is True
        and eth.operstate == "up"
        and eth.carrier_changes == 4
        and eth.speed_mbps == 100
    )
    assert eth.counters["rx_bytes"] == 1000 and eth.rates == {}


def test_rates_from_deltas_and_counter_reset(tmp_path: Path) -> None:
    write_tree(tmp_path, iface("eth0", rx=1000))
    p = NetifProbe(NetifProbeConfig(interfaces=["eth0"]), sysfs=tmp_path)
    p.collect(time.monotonic() + 1)
    time.sleep(0.05)
    write_tree(tmp_path, iface("eth0", rx=6000, errors=3))
    (eth,) = p.collect(time.monotonic() + 1).interfaces
    assert eth.rates["rx_bytes"] > 0
    assert eth.rates["rx_errors"] > 0
    # driver reload: counters start again from zero -> no negative rate, new baseline
    write_tree(tmp_path, iface("eth0", rx=10))
    (eth,) = p.collect(time.monotonic() + 1).interfaces
    assert "rx_bytes" not in eth.rates


def test_carrier_unreadable_while_down_and_missing_interface(tmp_path: Path) -> None:
    write_tree(tmp_path, iface("eth0", carrier=None))
    s = NetifProbe(NetifProbeConfig(interfaces=["eth0", "wwan0"]), sysfs=tmp_path).collect(
        time.monotonic() + 1
    )
    eth, wwan = s.interfaces
    assert eth.carrier is None and eth.operstate == "down"
    assert wwan.operstate == "absent"


def test_real_sysfs_does_not_crash() -> None:
    s = NetifProbe(NetifProbeConfig()).collect(time.monotonic() + 1)
    assert s.ok
