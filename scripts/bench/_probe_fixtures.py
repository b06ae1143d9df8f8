"""Shared set-up for the probe benchmarks: every probe, pointed only at this machine.

Network probes touch loopback only: a TCP listener on 127.0.0.1, "localhost" for DNS, and a fake
/proc/net/route whose default gateway is 127.0.0.1 (so the gateway probe never connects to this
machine's real gateway). The DVB probe reads a fake frontend through an injected ioctl that fills
the structs as the kernel does (there is no tuner here); the datacast probe scans a temp folder of
200 files. Everything else reads the real /sys and /proc of this machine.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any

from agent.monitoring.probes import Probe, ProbesConfig, Roots, build_probes
from agent.monitoring.probes import dvb as dvbmod
from agent.monitoring.probes.datacast import DatacastProbe
from agent.monitoring.probes.dvb import DvbProbe

ROUTE = (
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
    "lo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
)


def fake_frontend_ioctl(fd: int, request: int, arg: Any) -> int:
    """A locked DVB-S frontend with DVBv5 stats (see tests/probes/test_dvb.py for the layout)."""
    base = ctypes.addressof(arg)
    if request == dvbmod.FE_READ_STATUS:
        ctypes.memmove(base, struct.pack("<I", 0x1F), 4)
        return 0
    if request == dvbmod.FE_GET_PROPERTY:
        num = struct.unpack("<I", ctypes.string_at(base, 4))[0]
        props = ctypes.cast(arg.props, ctypes.c_void_p).value or 0
        size = ctypes.sizeof(dvbmod.DtvProperty)
        for i in range(num):
            p = props + i * size
            cmd = struct.unpack("<I", ctypes.string_at(p, 4))[0]
            scale, value = (1, -40000) if cmd in (62, 63) else (3, 1000 * cmd)
            ctypes.memmove(p + 16, bytes([1]) + struct.pack("<Bq", scale, value), 10)
        return 0
    raise OSError(25, "Inappropriate ioctl for device")


CEC_ON = """Transmit from Playback Device 1 to TV (4 to 0):
CEC_MSG_GIVE_DEVICE_POWER_STATUS (0x8f)
    Received from TV (0 to 4): REPORT_POWER_STATUS (0x90):
        pwr-state: on (0x00)
"""


def box_tree(root: Path) -> dict[str, str]:
    """A set-top box's sysfs: sensors, HDMI connector, eMMC, Pi power, one NIC (all present)."""
    files = {
        "class/thermal/thermal_zone0/temp": "61234\n",
        "class/thermal/thermal_zone0/type": "cpu-thermal\n",
        "class/thermal/thermal_zone1/temp": "48000\n",
        "class/thermal/thermal_zone1/type": "gpu-thermal\n",
        "class/hwmon/hwmon0/name": "rpi_volt\n",
        "class/hwmon/hwmon0/in0_lcrit_alarm": "0\n",
        "devices/platform/soc/soc:firmware/get_throttled": "0\n",
        "class/drm/card0-HDMI-A-1/status": "connected\n",
        "class/drm/card0-HDMI-A-1/enabled": "enabled\n",
        "class/drm/card0-HDMI-A-1/dpms": "On\n",
        "class/drm/card0-HDMI-A-1/modes": "1920x1080\n1280x720\n",
        "class/drm/card0-HDMI-A-2/status": "disconnected\n",
        "bus/mmc/devices/mmc0:0001/type": "MMC\n",
        "bus/mmc/devices/mmc0:0001/name": "8GTF4R\n",
        "bus/mmc/devices/mmc0:0001/life_time": "0x02 0x01\n",
        "bus/mmc/devices/mmc0:0001/pre_eol_info": "0x01\n",
        "bus/mmc/devices/mmc0:0001/block/mmcblk0/stat": "1 0 8 0 2 0 409600 0 0 0 0\n",
        "class/net/eth0/device/uevent": "DRIVER=bcmgenet\n",
        "class/net/eth0/operstate": "up\n",
        "class/net/eth0/carrier": "1\n",
        "class/net/eth0/carrier_changes": "2\n",
        "class/net/eth0/speed": "100\n",
    }
    for c in (
        "rx_bytes",
        "tx_bytes",
        "rx_packets",
        "tx_packets",
        "rx_errors",
        "tx_errors",
        "rx_dropped",
        "tx_dropped",
    ):
        files[f"class/net/eth0/statistics/{c}"] = "12345\n"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    tool = root.parent / "bin/cec-ctl"
    tool.parent.mkdir(parents=True, exist_ok=True)
    tool.write_text("#!/bin/sh\ncat <<'EOF'\n" + CEC_ON + "EOF\n")
    tool.chmod(0o755)
    return files


class Fixture:
    def __init__(self, mode: str = "telecom", fake_box: bool = False) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="probes-bench-")
        root = Path(self.tmp.name)
        (root / "proc/net").mkdir(parents=True)
        (root / "proc/net/route").write_text(ROUTE)
        (root / "proc/net/arp").write_text("IP address HW type Flags HW address Mask Device\n")
        (root / "proc/sys/net/ipv4").mkdir(parents=True)
        real_range = Path("/proc/sys/net/ipv4/ping_group_range")
        (root / "proc/sys/net/ipv4/ping_group_range").write_text(
            real_range.read_text() if real_range.exists() else ""
        )
        (root / "dev/dvb/adapter0").mkdir(parents=True)
        (root / "dev/dvb/adapter0/frontend0").write_bytes(b"")
        rx = root / "rx"
        for i in range(200):
            (rx / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
            (rx / f"d{i % 10}/file{i}.bin").write_bytes(b"x")
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.port = self.listener.getsockname()[1]
        self.root = root
        self.cfg = ProbesConfig(mode=mode)  # type: ignore[arg-type]
        self.cfg.gateway.tcp_port = self.port  # the fake gateway is 127.0.0.1
        self.cfg.icmp.hosts = ["127.0.0.1"]
        self.cfg.datacast.receive_dir = rx
        self.fake_box = fake_box
        if fake_box:
            box_tree(root / "sys")
            self.cfg.cec.command = [
                str(root / "bin/cec-ctl"),
                "-d",
                "{device}",
                "--give-device-power-status",
            ]

    def probes(self, *, both_modes: bool = True) -> list[Probe]:
        roots = Roots(procfs=self.root / "proc", dev=self.root / "dev", ioctl=fake_frontend_ioctl)
        if self.fake_box:
            roots.sysfs = self.root / "sys"
        probes = build_probes(
            self.cfg,
            roots,
            tcp_targets=[f"127.0.0.1:{self.port}"],
            dns_names=["localhost"],
            disk_paths=[self.root],
        )
        for p in probes:
            if p.name == "system":
                p.procfs = Path("/proc")  # type: ignore[attr-defined]  # real uptime/boot id/mounts
        if both_modes and self.cfg.mode == "telecom":
            probes.append(
                DvbProbe(self.cfg.dvb, dev_root=self.root / "dev", ioctl=fake_frontend_ioctl)
            )
            probes.append(DatacastProbe(self.cfg.datacast))
        return probes

    def drain(self) -> None:
        """Accept and close pending connections so the listener's backlog never fills."""
        self.listener.setblocking(False)
        try:
            while True:
                conn, _ = self.listener.accept()
                conn.close()
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.listener.close()
        self.tmp.cleanup()
