"""CEC (recorded cec-ctl outputs, real runner with a fake tool) and clock sync (injected adjtimex)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.monitoring.probes import clocksync
from agent.monitoring.probes.base import CommandResult, run_command
from agent.monitoring.probes.cec import CecProbe, CecProbeConfig, parse_power_status
from agent.monitoring.probes.clocksync import ClockSyncProbe, ClockSyncProbeConfig, Timex
from tests.probes.probe_helpers import RecordedRunner

CEC_ON = """Transmit from Playback Device 1 to TV (4 to 0):
CEC_MSG_GIVE_DEVICE_POWER_STATUS (0x8f)
    Received from TV (0 to 4): REPORT_POWER_STATUS (0x90):
        pwr-state: on (0x00)
"""
CEC_STANDBY = CEC_ON.replace("pwr-state: on (0x00)", "pwr-state: standby (0x01)")
CEC_TO_ON = CEC_ON.replace("pwr-state: on (0x00)", "pwr-state: in transition standby to on (0x02)")
CEC_NACK = """Transmit from Playback Device 1 to TV (4 to 0):
CEC_MSG_GIVE_DEVICE_POWER_STATUS (0x8f)
    Tx, Not Acknowledged (4), Max Retries
"""
CEC_TIMEOUT = """Transmit from Playback Device 1 to TV (4 to 0):
CEC_MSG_GIVE_DEVICE_POWER_STATUS (0x8f)
    Tx, Timeout
"""


@pytest.mark.parametrize(
    ("text", "power"),
    [
        (CEC_ON, "on"),
        (CEC_STANDBY, "standby"),
        (CEC_TO_ON, "to_on"),
        (CEC_NACK, "unknown"),
        (CEC_TIMEOUT, "unknown"),
    ],
)
def test_cec_power_forms(text: str, power: str) -> None:
    got, _raw, reason = parse_power_status(text)
    assert got == power
    assert (reason is None) == (power != "unknown")


def test_no_answer_is_unknown_never_off() -> None:
    s = CecProbe(CecProbeConfig(), runner=RecordedRunner(CommandResult(1, CEC_NACK))).collect(
        time.monotonic() + 1
    )
    assert s.power == "unknown" and "did not answer" in (s.reason or "")


def test_cec_ctl_missing_or_failing() -> None:
    missing = CecProbe(
        CecProbeConfig(), runner=RecordedRunner(CommandResult(None, "", missing=True))
    )
    assert missing.collect(time.monotonic() + 1).skipped == "cec-ctl not installed"
    failing = CecProbe(
        CecProbeConfig(),
        runner=RecordedRunner(CommandResult(1, "", "No such file or directory: /dev/cec0\n")),
    )
    s = failing.collect(time.monotonic() + 1)
    assert s.power == "unknown" and "cec-ctl failed" in (s.reason or "")


def test_cec_through_the_real_runner_with_a_fake_tool(tmp_path: Path) -> None:
    tool = tmp_path / "cec-ctl"
    tool.write_text("#!/bin/sh\ncat <<'EOF'\n" + CEC_STANDBY + "EOF\n")
    tool.chmod(0o755)
    cfg = CecProbeConfig(
        command=[str(tool), "-d", "{device}", "--to", "0", "--give-device-power-status"]
    )
    s = CecProbe(cfg, runner=run_command).collect(time.monotonic() + 2)
    assert s.power == "standby"


def test_real_runner_kills_a_hung_tool_at_the_deadline(tmp_path: Path) -> None:
    tool = tmp_path / "cec-ctl"
    tool.write_text("#!/bin/sh\necho partial\nsleep 30\n")
    tool.chmod(0o755)
    start = time.monotonic()
    s = CecProbe(CecProbeConfig(command=[str(tool)]), runner=run_command).collect(start + 0.5)
    assert time.monotonic() - start < 1.5
    assert s.power == "unknown" and "deadline" in (s.reason or "")
    out = run_command([str(tool)], 0.3)
    assert out.timed_out and "partial" in out.stdout


# -- clock sync ------------------------------------------------------------------------------


def fake_adjtimex(ret: int, status: int, maxerror: int, offset: int = 0, freq: int = 0):
    calls: list[int] = []

    def call(tx: Timex) -> int:
        calls.append(tx.modes)
        tx.status, tx.maxerror, tx.esterror, tx.offset, tx.freq = (
            status,
            maxerror,
            1000,
            offset,
            freq,
        )
        return ret

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_synced_clock() -> None:
    fn = fake_adjtimex(0, clocksync.STA_PLL, 120_000, offset=-250, freq=65536 * 12)
    s = ClockSyncProbe(ClockSyncProbeConfig(), adjtimex=fn).collect(time.monotonic() + 1)
    assert s.synced is True and s.state == "ok" and s.reason is None
    assert s.offset_us == -250.0 and s.freq_ppm == pytest.approx(12.0)
    assert fn.calls == [0]  # modes = 0: read only


def test_unsynced_forms() -> None:
    unsync = ClockSyncProbe(
        ClockSyncProbeConfig(), adjtimex=fake_adjtimex(5, clocksync.STA_UNSYNC, 16_000_000)
    )
    s = unsync.collect(time.monotonic() + 1)
    assert s.synced is False and s.state == "error"
    assert "STA_UNSYNC" in (s.reason or "") and "16 s" in (s.reason or "")
    drifted = ClockSyncProbe(ClockSyncProbeConfig(), adjtimex=fake_adjtimex(0, 0, 17_000_000))
    assert drifted.collect(time.monotonic() + 1).synced is False
    nano = ClockSyncProbe(
        ClockSyncProbeConfig(), adjtimex=fake_adjtimex(0, clocksync.STA_NANO, 1000, offset=5000)
    )
    assert nano.collect(time.monotonic() + 1).offset_us == 5.0


def test_adjtimex_failure() -> None:
    def fail(tx: Timex) -> int:
        raise OSError(1, "Operation not permitted")

    s = ClockSyncProbe(ClockSyncProbeConfig(), adjtimex=fail).collect(time.monotonic() + 1)
    assert not s.ok and s.synced is None


def test_real_adjtimex_reads_without_changing_anything() -> None:
    before = time.time()
    s = ClockSyncProbe(ClockSyncProbeConfig()).collect(time.monotonic() + 1)
    assert s.ok and s.synced in (True, False) and s.state in clocksync.TIME_STATES.values()
    assert abs(time.time() - before) < 1.0
