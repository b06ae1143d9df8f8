"""The DVB-S frontend: lock status and DVBv5 statistics, straight from the Linux DVB API.

Read path: open ``/dev/dvb/adapterA/frontendF`` read-only and non-blocking (a read-only open is
allowed while the receiver software holds the frontend read-write), ``FE_READ_STATUS`` for the lock
bits, then one ``FE_GET_PROPERTY`` for the eight ``DTV_STAT_*`` properties. BER and block error
rate are ratios of counter deltas between two reads, so the first read reports counters only.
Drivers without DVBv5 statistics fall back to the DVBv3 ioctls, whose units are driver-specific
and are marked so. Boxes whose receiver software keeps the device to itself can instead parse
``dvb-fe-tool -m`` output (``source: tool``). The kernel's structs and ioctl numbers are in
``dvb_uapi``.
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.domain.health import Verdict
from agent.domain.linkstats import SummaryBuilder
from agent.domain.schema import between
from agent.monitoring.probes.base import (  # noqa: F401 - kernel_ioctl re-exported for tests
    IoctlFn,
    ProbeContext,
    Runner,
    Sample,
    kernel_ioctl,
    remaining,
    run_command,
)
from agent.monitoring.probes.dvb_uapi import (
    DTV_STAT_CNR,
    DTV_STAT_ERROR_BLOCK_COUNT,
    DTV_STAT_POST_ERROR_BIT_COUNT,
    DTV_STAT_POST_TOTAL_BIT_COUNT,
    DTV_STAT_PRE_ERROR_BIT_COUNT,
    DTV_STAT_PRE_TOTAL_BIT_COUNT,
    DTV_STAT_SIGNAL_STRENGTH,
    DTV_STAT_TOTAL_BLOCK_COUNT,
    FE_GET_PROPERTY,
    FE_HAS_CARRIER,
    FE_HAS_LOCK,
    FE_HAS_SIGNAL,
    FE_READ_BER,
    FE_READ_SIGNAL_STRENGTH,
    FE_READ_SNR,
    FE_READ_STATUS,
    FE_READ_UNCORRECTED_BLOCKS,
    FE_SCALE_COUNTER,
    FE_SCALE_DECIBEL,
    FE_SCALE_NOT_AVAILABLE,
    FE_SCALE_RELATIVE,
    STAT_COMMANDS,
    DtvProperties,
    DtvProperty,
)
from agent.monitoring.probes.registry import (
    Cadence,
    CountHysteresis,
    Judging,
    Severity,
    register,
)

# -- config, alarm, sample -----------------------------------------------------------------


@dataclass
class DvbProbeConfig:
    """Which frontend to read and how. ``tool_command`` may use ``{adapter}`` and ``{frontend}``."""

    adapter: int = field(default=0, metadata={"check": between(0, 63)})
    frontend: int = field(default=0, metadata={"check": between(0, 63)})
    source: Literal["ioctl", "tool"] = "ioctl"
    tool_command: list[str] = field(
        default_factory=lambda: ["dvb-fe-tool", "-a", "{adapter}", "-f", "{frontend}", "-m"]
    )
    tool_seconds: float = field(default=2.5, metadata={"check": between(0.5, 30)})


@dataclass
class SatelliteUnlockedAlarm(CountHysteresis):
    severity: Severity = "critical"


@dataclass
class DvbSample(Sample):
    present: bool = False
    source: str | None = None  # ioctl-v5 | ioctl-v3 | tool
    status: int | None = None
    has_signal: bool | None = None
    has_carrier: bool | None = None
    has_lock: bool | None = None
    signal_dbm: float | None = None
    signal_pct: float | None = None
    cnr_db: float | None = None
    cnr_pct: float | None = None
    pre_ber: float | None = None
    post_ber: float | None = None
    block_error_rate: float | None = None
    error_blocks: int | None = None
    quality: str | None = None
    v3_raw: dict[str, int] = field(default_factory=dict)
    units: str | None = None  # "driver-specific" for DVBv3 values

    def set_status(self, status: int) -> None:
        self.status = status
        self.has_signal = bool(status & FE_HAS_SIGNAL)
        self.has_carrier = bool(status & FE_HAS_CARRIER)
        self.has_lock = bool(status & FE_HAS_LOCK)


def verdicts(s: DvbSample, ctx: Judging) -> dict[str, Verdict]:
    """Satellite mode only; a frontend we cannot read is not evidence of lost lock."""
    if ctx.mode != "satellite" or s.skipped or not s.ok:
        return {}
    detail = {"status": s.status, "signal_dbm": s.signal_dbm, "cnr_db": s.cnr_db}
    return {"satellite_unlocked": Verdict(None if s.has_lock is None else not s.has_lock, detail)}


def summary(s: DvbSample, mode: str) -> dict[str, Any]:
    """Lock and signal; in satellite mode the lock is what the heartbeat calls the link."""
    if not s.present:
        return {}
    out: dict[str, Any] = {
        "lock": s.has_lock,
        "signal_dbm": None if s.signal_dbm is None else round(s.signal_dbm, 1),
        "cnr_db": None if s.cnr_db is None else round(s.cnr_db, 1),
    }
    if mode == "satellite":
        out["link"] = "locked" if s.has_lock else "unlocked"
    return out


def period(s: DvbSample, builder: SummaryBuilder, mono: float) -> None:
    """Time-weighted lock and the signal figures for the periodic link summary."""
    if s.present and not s.skipped:
        builder.add_lock(mono, s.has_lock)
        builder.add_signal(s.signal_dbm, s.signal_pct, s.cnr_db, s.post_ber)


# -- the ioctl reader ----------------------------------------------------------------------


@register(
    "dvb",
    config=DvbProbeConfig,
    sample=DvbSample,
    cadence=Cadence(interval=30, timeout=5, timeout_range=(0.5, 60)),
    alarms={"satellite_unlocked": SatelliteUnlockedAlarm},
    verdicts=verdicts,
    summary=summary,
    period=period,
)
class DvbProbe:
    def __init__(
        self,
        cfg: DvbProbeConfig,
        *,
        dev_root: Path = Path("/dev"),
        ioctl: IoctlFn = kernel_ioctl,
        runner: Runner = run_command,
    ) -> None:
        self.cfg = cfg
        self.dev_root = dev_root
        self.ioctl = ioctl
        self.runner = runner
        self._counters: dict[int, int] = {}

    @classmethod
    def create(cls, cfg: DvbProbeConfig, ctx: ProbeContext) -> DvbProbe:
        r = ctx.roots
        return cls(cfg, dev_root=r.dev, ioctl=r.ioctl, runner=r.runner)

    @property
    def device(self) -> Path:
        return self.dev_root / f"dvb/adapter{self.cfg.adapter}/frontend{self.cfg.frontend}"

    def collect(self, deadline: float) -> DvbSample:
        if self.cfg.source == "tool":
            return self.collect_tool(deadline)
        sample = DvbSample(at=time.time())
        try:
            fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            sample.skipped = f"no DVB frontend at {self.device}"
            return sample
        except OSError as exc:
            sample.ok, sample.error = False, f"cannot open {self.device}: {exc.strerror}"
            return sample
        sample.present = True
        try:
            status = ctypes.c_uint32(0)
            self.ioctl(fd, FE_READ_STATUS, status)
            sample.set_status(status.value)
            if not self.read_v5(fd, sample):
                self.read_v3(fd, sample)
        except OSError as exc:
            sample.ok, sample.error = False, f"FE_READ_STATUS failed: {exc.strerror or exc}"
        finally:
            os.close(fd)
        return sample

    def read_v5(self, fd: int, sample: DvbSample) -> bool:
        """Fill DVBv5 statistics; False when the driver has none (then try DVBv3)."""
        props = (DtvProperty * len(STAT_COMMANDS))()
        for prop, cmd in zip(props, STAT_COMMANDS, strict=True):
            prop.cmd = cmd
        request = DtvProperties(len(STAT_COMMANDS), props)
        try:
            self.ioctl(fd, FE_GET_PROPERTY, request)
        except OSError:
            return False
        stats: dict[int, tuple[int, int, int]] = {}
        for prop in props:
            if prop.u.st.len >= 1:
                st = prop.u.st.stat[0]  # layer 0: the global value
                if st.scale != FE_SCALE_NOT_AVAILABLE:
                    stats[prop.cmd] = (st.scale, st.uvalue, st.svalue)
        if not stats:
            return False
        sample.source = "ioctl-v5"
        sig = stats.get(DTV_STAT_SIGNAL_STRENGTH)
        if sig and sig[0] == FE_SCALE_DECIBEL:
            sample.signal_dbm = sig[2] / 1000.0
        elif sig and sig[0] == FE_SCALE_RELATIVE:
            sample.signal_pct = 100.0 * sig[1] / 65535.0
        cnr = stats.get(DTV_STAT_CNR)
        if cnr and cnr[0] == FE_SCALE_DECIBEL:
            sample.cnr_db = cnr[2] / 1000.0
        elif cnr and cnr[0] == FE_SCALE_RELATIVE:
            sample.cnr_pct = 100.0 * cnr[1] / 65535.0
        counters = {cmd: v[1] for cmd, v in stats.items() if v[0] == FE_SCALE_COUNTER}
        sample.pre_ber = self._ratio(
            counters, DTV_STAT_PRE_ERROR_BIT_COUNT, DTV_STAT_PRE_TOTAL_BIT_COUNT
        )
        sample.post_ber = self._ratio(
            counters, DTV_STAT_POST_ERROR_BIT_COUNT, DTV_STAT_POST_TOTAL_BIT_COUNT
        )
        sample.block_error_rate = self._ratio(
            counters, DTV_STAT_ERROR_BLOCK_COUNT, DTV_STAT_TOTAL_BLOCK_COUNT
        )
        sample.error_blocks = counters.get(DTV_STAT_ERROR_BLOCK_COUNT)
        self._counters = counters
        return True

    def _ratio(self, counters: dict[int, int], err: int, total: int) -> float | None:
        """Errors per unit between this read and the previous one; None without two reads."""
        if err not in counters or total not in counters:
            return None
        if err not in self._counters or total not in self._counters:
            return None
        d_err = counters[err] - self._counters[err]
        d_total = counters[total] - self._counters[total]
        if d_total <= 0 or d_err < 0:  # no new bits counted, or the driver reset its counters
            return None
        return d_err / d_total

    def read_v3(self, fd: int, sample: DvbSample) -> None:
        """DVBv3 fallback: numbers whose scale each driver picks for itself."""
        sample.source = "ioctl-v3"
        sample.units = "driver-specific"
        for key, request, ctype in (
            ("signal", FE_READ_SIGNAL_STRENGTH, ctypes.c_uint16),
            ("snr", FE_READ_SNR, ctypes.c_uint16),
            ("ber", FE_READ_BER, ctypes.c_uint32),
            ("ucb", FE_READ_UNCORRECTED_BLOCKS, ctypes.c_uint32),
        ):
            value = ctype(0)
            try:
                self.ioctl(fd, request, value)
            except OSError:
                continue
            sample.v3_raw[key] = int(value.value)

    # -- dvb-fe-tool -m --------------------------------------------------------------------

    def collect_tool(self, deadline: float) -> DvbSample:
        argv = [
            a.format(adapter=self.cfg.adapter, frontend=self.cfg.frontend)
            for a in self.cfg.tool_command
        ]
        out = self.runner(argv, min(self.cfg.tool_seconds, remaining(deadline)))
        if out.missing:
            return DvbSample(at=time.time(), skipped=f"{argv[0]} not installed")
        sample = parse_fe_tool(out.stdout + "\n" + out.stderr)
        if sample.status is None:
            sample.ok = False
            text = (out.stderr or out.stdout).strip().splitlines()
            sample.error = text[-1][:200] if text else "no status line in tool output"
        return sample


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STATUS = re.compile(r"^\s*(RF|Carrier|Viterbi|Sync|Lock|Timeout|Reinit)?\s*\(0x([0-9a-fA-F]+)\)")
_FIELD = re.compile(r"(Quality|Signal|C/N|UCB|postBER|preBER|PER)=\s*(\S+)")
_NUMBER = re.compile(r"^(-?[0-9.]+)(?:x10\^(-?\d+))?(dBm|dB|%)?$")


def _value(text: str) -> tuple[float, str] | None:
    m = _NUMBER.match(text)
    if not m:
        return None
    value = float(m.group(1))
    if m.group(2):
        value *= 10.0 ** int(m.group(2))
    return value, m.group(3) or ""


def parse_fe_tool(text: str) -> DvbSample:
    """Parse libdvbv5's stats lines as printed by ``dvb-fe-tool -m`` (or dvbv5-zap -m).

    Lines look like ``Lock   (0x1f) Quality= Good Signal= -33.00dBm C/N= 10.50dB UCB= 0
    postBER= 2.10x10^-6``; following ``Layer A:`` lines belong to the same read. The tool repeats
    reads until killed, so the last complete status line wins. Signal and C/N print as dB(m) for
    decibel scales and as a percentage for relative ones; BER prints as a ratio.
    """
    sample = DvbSample(at=time.time(), source="tool", present=True)
    last: str | None = None
    for raw in _ANSI.sub("", text).splitlines():
        if _STATUS.match(raw):
            last = raw
    if last is None:
        sample.present = False
        return sample
    status = _STATUS.match(last)
    assert status is not None
    sample.set_status(int(status.group(2), 16))
    for key, raw_value in _FIELD.findall(last[status.end() :]):
        if key == "Quality":
            sample.quality = raw_value
            continue
        parsed = _value(raw_value)
        if parsed is None:
            continue
        value, unit = parsed
        if key == "Signal":
            if unit == "%":
                sample.signal_pct = value
            else:
                sample.signal_dbm = value
        elif key == "C/N":
            if unit == "%":
                sample.cnr_pct = value
            else:
                sample.cnr_db = value
        elif key == "UCB":
            sample.error_blocks = int(value)
        elif key == "postBER":
            sample.post_ber = value
        elif key == "preBER":
            sample.pre_ber = value
        elif key == "PER":
            sample.block_error_rate = value
    return sample
