"""DVB frontend: an injected ioctl that writes the bytes where the kernel would, and recorded
``dvb-fe-tool -m`` output of every status form."""

from __future__ import annotations

import ctypes
import errno
import struct
import time
from pathlib import Path

import pytest

from agent.monitoring.probes import dvb, dvb_uapi
from agent.monitoring.probes.base import CommandResult
from agent.monitoring.probes.dvb import DvbProbe, DvbProbeConfig, parse_fe_tool
from agent.monitoring.probes.dvb_uapi import make_structs
from tests.probes.probe_helpers import RecordedRunner

# Layout facts from include/uapi/linux/dvb/frontend.h, written down independently of ctypes:
PTR_SIZE = struct.calcsize("P")  # this machine's pointer: 8 on arm64/amd64, 4 on armhf
# sizeof(struct dtv_property): its u.buffer ends in a pointer (void *reserved2), so 76 on 64-bit
# and 72 on 32-bit.
PROP_SIZE = 76 if PTR_SIZE == 8 else 72
# struct dtv_properties { __u32 num; struct dtv_property *props; }: the pointer is aligned to
# its own size, so it sits at offset 8 on 64-bit and 4 on 32-bit.
PROPS_AT, PTR_FMT = (8, "<Q") if PTR_SIZE == 8 else (4, "<I")
U_OFFSET = 16  # cmd + reserved[3]
STAT_SIZE = 9  # packed { __u8 scale; __u64 value; }


class FakeKernel:
    """Answers frontend ioctls by writing raw bytes into the caller's memory, as the kernel does."""

    def __init__(
        self,
        status: int,
        stats: dict[int, list[tuple[int, int]]] | None,
        v3: dict[int, int] | None = None,
    ) -> None:
        self.status = status
        self.stats = stats  # cmd -> [(scale, value) per layer]; None = driver without DVBv5 stats
        self.v3 = v3 or {}
        self.requests: list[int] = []

    def __call__(self, fd: int, request: int, arg: object) -> int:
        assert fd >= 0
        self.requests.append(request)
        size = (request >> 16) & 0x3FFF
        assert size == ctypes.sizeof(arg), "ioctl number must encode the size of the argument"  # type: ignore[arg-type]
        base = ctypes.addressof(arg)  # type: ignore[arg-type]
        if request == dvb_uapi.FE_READ_STATUS:
            ctypes.memmove(base, struct.pack("<I", self.status), 4)
            return 0
        if request == dvb_uapi.FE_GET_PROPERTY:
            if self.stats is None:
                raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
            num = struct.unpack("<I", ctypes.string_at(base, 4))[0]
            props = struct.unpack(PTR_FMT, ctypes.string_at(base + PROPS_AT, PTR_SIZE))[0]
            for i in range(num):
                prop = props + i * PROP_SIZE
                cmd = struct.unpack("<I", ctypes.string_at(prop, 4))[0]
                layers = self.stats.get(cmd, [])
                ctypes.memmove(prop + U_OFFSET, bytes([len(layers)]), 1)
                for j, (scale, value) in enumerate(layers):
                    raw = (
                        struct.pack("<Bq", scale, value)
                        if value < 0
                        else struct.pack("<BQ", scale, value)
                    )
                    ctypes.memmove(prop + U_OFFSET + 1 + j * STAT_SIZE, raw, STAT_SIZE)
            return 0
        if request in self.v3:
            fmt = "<H" if size == 2 else "<I"
            ctypes.memmove(base, struct.pack(fmt, self.v3[request]), size)
            return 0
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")


def frontend(tmp_path: Path) -> Path:
    dev = tmp_path / "dev"
    (dev / "dvb/adapter0").mkdir(parents=True)
    (dev / "dvb/adapter0/frontend0").write_bytes(b"")
    return dev


LOCKED = 0x1F  # signal, carrier, viterbi, sync, lock


def v5_stats(
    pre_err: int, pre_total: int, post_err: int, post_total: int, blk_err: int, blk_total: int
) -> dict[int, list[tuple[int, int]]]:
    return {
        dvb_uapi.DTV_STAT_SIGNAL_STRENGTH: [(dvb_uapi.FE_SCALE_DECIBEL, -41250)],
        dvb_uapi.DTV_STAT_CNR: [(dvb_uapi.FE_SCALE_DECIBEL, 9800)],
        dvb_uapi.DTV_STAT_PRE_ERROR_BIT_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, pre_err)],
        dvb_uapi.DTV_STAT_PRE_TOTAL_BIT_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, pre_total)],
        dvb_uapi.DTV_STAT_POST_ERROR_BIT_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, post_err)],
        dvb_uapi.DTV_STAT_POST_TOTAL_BIT_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, post_total)],
        dvb_uapi.DTV_STAT_ERROR_BLOCK_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, blk_err)],
        dvb_uapi.DTV_STAT_TOTAL_BLOCK_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, blk_total)],
    }


def test_struct_layouts_and_ioctl_numbers_for_64_and_32_bit() -> None:
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(dvb_uapi.DtvProperty) == 76
        assert ctypes.sizeof(dvb_uapi.DtvProperties) == 16
        assert dvb_uapi.FE_GET_PROPERTY == 0x80106F53
    arm32 = make_structs(ctypes.c_uint32)
    assert ctypes.sizeof(arm32.DtvProperty) == 72
    assert ctypes.sizeof(arm32.DtvProperties) == 8
    assert arm32.FE_GET_PROPERTY == 0x80086F53
    assert (
        ctypes.sizeof(dvb_uapi.NATIVE.DtvStats) == 9
        and ctypes.sizeof(dvb_uapi.NATIVE.DtvFeStats) == 37
    )
    assert dvb_uapi.DtvProperty.u.offset == 16
    assert dvb_uapi.FE_READ_STATUS == 0x80046F45
    assert dvb_uapi.FE_READ_SIGNAL_STRENGTH == 0x80026F47


def test_locked_frontend_with_dvbv5_stats_and_ber_from_deltas(tmp_path: Path) -> None:
    kernel = FakeKernel(LOCKED, v5_stats(10, 1_000_000, 0, 900_000, 2, 5000))
    p = DvbProbe(DvbProbeConfig(), dev_root=frontend(tmp_path), ioctl=kernel)
    first = p.collect(time.monotonic() + 1)
    assert first.present and first.source == "ioctl-v5" and first.ok
    assert first.has_lock and first.has_signal and first.has_carrier and first.status == LOCKED
    assert first.signal_dbm == pytest.approx(-41.25) and first.cnr_db == pytest.approx(9.8)
    assert first.pre_ber is None and first.post_ber is None  # a ratio needs two reads
    assert first.error_blocks == 2
    kernel.stats = v5_stats(
        10 + 30, 1_000_000 + 3_000_000, 3, 900_000 + 2_000_000, 2 + 5, 5000 + 1000
    )
    second = p.collect(time.monotonic() + 1)
    assert second.pre_ber == pytest.approx(30 / 3_000_000)
    assert second.post_ber == pytest.approx(3 / 2_000_000)
    assert second.block_error_rate == pytest.approx(5 / 1000)
    assert kernel.requests[:2] == [dvb_uapi.FE_READ_STATUS, dvb_uapi.FE_GET_PROPERTY]


def test_relative_scales_unlocked_and_counter_reset(tmp_path: Path) -> None:
    stats = {
        dvb_uapi.DTV_STAT_SIGNAL_STRENGTH: [(dvb_uapi.FE_SCALE_RELATIVE, 32768)],
        dvb_uapi.DTV_STAT_CNR: [(dvb_uapi.FE_SCALE_RELATIVE, 65535)],
        dvb_uapi.DTV_STAT_POST_ERROR_BIT_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, 500)],
        dvb_uapi.DTV_STAT_POST_TOTAL_BIT_COUNT: [(dvb_uapi.FE_SCALE_COUNTER, 10_000)],
    }
    kernel = FakeKernel(0x01, stats)
    p = DvbProbe(DvbProbeConfig(), dev_root=frontend(tmp_path), ioctl=kernel)
    s = p.collect(time.monotonic() + 1)
    assert s.has_signal and not s.has_lock
    assert s.signal_pct == pytest.approx(50.0, abs=0.01) and s.cnr_pct == pytest.approx(100.0)
    assert s.signal_dbm is None and s.cnr_db is None
    stats[dvb_uapi.DTV_STAT_POST_ERROR_BIT_COUNT] = [
        (dvb_uapi.FE_SCALE_COUNTER, 1)
    ]  # driver reset its counters
    stats[dvb_uapi.DTV_STAT_POST_TOTAL_BIT_COUNT] = [(dvb_uapi.FE_SCALE_COUNTER, 100)]
    assert p.collect(time.monotonic() + 1).post_ber is None


def test_dvbv3_fallback_is_marked_driver_specific(tmp_path: Path) -> None:
    kernel = FakeKernel(
        LOCKED,
        None,
        {
            dvb_uapi.FE_READ_SIGNAL_STRENGTH: 0xB000,
            dvb_uapi.FE_READ_SNR: 0x00F5,
            dvb_uapi.FE_READ_BER: 12,
            dvb_uapi.FE_READ_UNCORRECTED_BLOCKS: 7,
        },
    )
    s = DvbProbe(DvbProbeConfig(), dev_root=frontend(tmp_path), ioctl=kernel).collect(
        time.monotonic() + 1
    )
    assert s.source == "ioctl-v3" and s.units == "driver-specific"
    assert s.v3_raw == {"signal": 0xB000, "snr": 0xF5, "ber": 12, "ucb": 7}
    assert s.has_lock and s.signal_dbm is None


def test_all_stats_unavailable_falls_back_too(tmp_path: Path) -> None:
    stats = {cmd: [(dvb_uapi.FE_SCALE_NOT_AVAILABLE, 0)] for cmd in dvb_uapi.STAT_COMMANDS}
    kernel = FakeKernel(LOCKED, stats, {dvb_uapi.FE_READ_SNR: 3})
    s = DvbProbe(DvbProbeConfig(), dev_root=frontend(tmp_path), ioctl=kernel).collect(
        time.monotonic() + 1
    )
    assert s.source == "ioctl-v3" and s.v3_raw == {"snr": 3}


def test_no_tuner_is_skipped(tmp_path: Path) -> None:
    s = DvbProbe(DvbProbeConfig(), dev_root=tmp_path).collect(time.monotonic() + 1)
    assert s.skipped and "no DVB frontend" in s.skipped and not s.present


def test_status_ioctl_failure_is_an_error(tmp_path: Path) -> None:
    def broken(fd: int, request: int, arg: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    s = DvbProbe(DvbProbeConfig(), dev_root=frontend(tmp_path), ioctl=broken).collect(
        time.monotonic() + 1
    )
    assert not s.ok and "FE_READ_STATUS" in (s.error or "") and s.has_lock is None


def test_real_kernel_path_without_tuner() -> None:
    s = DvbProbe(DvbProbeConfig(adapter=63, frontend=63)).collect(time.monotonic() + 1)
    assert s.skipped and not s.present


# -- dvb-fe-tool -m --------------------------------------------------------------------------

TOOL_LOCKED_DBM = """Lock   (0x1f) Quality= Good Signal= -33.00dBm C/N= 10.50dB UCB= 12 postBER= 2.10x10^-6
Lock   (0x1f) Quality= Good Signal= -33.25dBm C/N= 10.75dB UCB= 14 postBER= 1.50x10^-6 preBER= 3.20x10^-3
"""
TOOL_RELATIVE = "Lock   (0x1f) Signal= 67.84% C/N= 45.10% UCB= 0 postBER= 0\n"
TOOL_NO_SIGNAL = "       (0x00) Signal= 0.00% C/N= 0.00% UCB= 0 postBER= 0\n"
TOOL_CARRIER_ONLY = "Carrier(0x03) Signal= -68.00dBm\n"
TOOL_LAYERS = (
    "Lock   (0x1f) Signal= -52.00dBm C/N= 22.10dB\n"
    "\t  Layer A: Signal= -52.00dBm C/N= 21.00dB UCB= 3 postBER= 0\n"
    "\t  Layer B: Signal= -52.00dBm C/N= 22.30dB UCB= 0 postBER= 0\n"
)
TOOL_ANSI = "\x1b[1;32mLock   (0x1f) Signal= -40.00dBm C/N= 12.00dB\x1b[37m\n"
TOOL_BUSY = "ERROR    open /dev/dvb/adapter0/frontend0: Device or resource busy\n"


def test_tool_parser_every_form() -> None:
    s = parse_fe_tool(TOOL_LOCKED_DBM)  # last read wins
    assert s.has_lock and s.status == 0x1F and s.quality == "Good"
    assert (s.signal_dbm, s.cnr_db, s.error_blocks) == (-33.25, 10.75, 14)
    assert s.post_ber == pytest.approx(1.5e-6) and s.pre_ber == pytest.approx(3.2e-3)
    r = parse_fe_tool(TOOL_RELATIVE)
    assert (
        r.signal_pct == pytest.approx(67.84)
        and r.cnr_pct == pytest.approx(45.10)
        and r.signal_dbm is None
    )
    assert r.post_ber == 0
    n = parse_fe_tool(TOOL_NO_SIGNAL)
    assert n.status == 0 and n.has_lock is False and n.has_signal is False and n.present
    c = parse_fe_tool(TOOL_CARRIER_ONLY)
    assert c.has_carrier and not c.has_lock and c.signal_dbm == -68.0
    layered = parse_fe_tool(TOOL_LAYERS)
    assert layered.cnr_db == 22.10 and layered.error_blocks is None  # global line only
    assert parse_fe_tool(TOOL_ANSI).signal_dbm == -40.0
    assert parse_fe_tool(TOOL_BUSY).status is None


def test_tool_source_runs_the_tool_and_kills_it_in_time() -> None:
    runner = RecordedRunner(CommandResult(None, TOOL_LOCKED_DBM, timed_out=True))
    p = DvbProbe(
        DvbProbeConfig(source="tool", adapter=1, frontend=2, tool_seconds=1.5), runner=runner
    )
    s = p.collect(time.monotonic() + 5)
    assert s.ok and s.source == "tool" and s.has_lock and s.signal_dbm == -33.25
    argv, timeout = runner.calls[0]
    assert argv == ["dvb-fe-tool", "-a", "1", "-f", "2", "-m"] and timeout == pytest.approx(
        1.5, abs=0.01
    )


def test_tool_errors_and_missing_tool() -> None:
    busy = DvbProbe(
        DvbProbeConfig(source="tool"), runner=RecordedRunner(CommandResult(1, "", TOOL_BUSY))
    )
    s = busy.collect(time.monotonic() + 5)
    assert not s.ok and "busy" in (s.error or "")
    missing = DvbProbe(
        DvbProbeConfig(source="tool"),
        runner=RecordedRunner(CommandResult(None, "", "", missing=True)),
    )
    assert "not installed" in (missing.collect(time.monotonic() + 5).skipped or "")


def test_kernel_ioctl_fills_ctypes_objects_in_place() -> None:
    """The real ioctl wrapper on a real fd: FIONREAD writes an int into our ctypes object."""
    import socket
    import termios

    a, b = socket.socketpair()
    try:
        a.sendall(b"12345")
        time.sleep(0.01)
        pending = ctypes.c_int(0)
        dvb.kernel_ioctl(b.fileno(), termios.FIONREAD, pending)
        assert pending.value == 5
        with pytest.raises(OSError):
            dvb.kernel_ioctl(b.fileno(), dvb_uapi.FE_READ_STATUS, ctypes.c_uint32(0))
    finally:
        a.close()
        b.close()
