from __future__ import annotations

import os
import time
from pathlib import Path

from agent.monitoring.probes.datacast import DatacastProbe, DatacastProbeConfig
from tests.probes.probe_helpers import write_tree


def net(rx: int, errors: int = 0, crc: int = 0) -> dict[str, str]:
    base = "class/net/dvb0_0/statistics"
    return {
        f"{base}/rx_bytes": f"{rx}\n",
        f"{base}/rx_packets": f"{rx // 188}\n",
        f"{base}/rx_errors": f"{errors}\n",
        f"{base}/rx_crc_errors": f"{crc}\n",
    }


def touch(path: Path, age_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    t = time.time() - age_s
    os.utime(path, (t, t))


def test_counters_and_deltas(tmp_path: Path) -> None:
    sysfs = write_tree(tmp_path / "sys", net(1000))
    p = DatacastProbe(DatacastProbeConfig(), sysfs=sysfs)
    first = p.collect(time.monotonic() + 1)
    assert (
        first.interface_present
        and first.counters["rx_bytes"] == 1000
        and first.rx_bytes_delta is None
    )
    write_tree(sysfs, net(51000, errors=2, crc=5))
    second = p.collect(time.monotonic() + 1)
    assert second.rx_bytes_delta == 50000 and second.rx_errors_delta == 7


def test_newest_complete_file_ignores_partials(tmp_path: Path) -> None:
    rx = tmp_path / "rx"
    touch(rx / "courses/2026/math-01.mp4", 7200)
    touch(rx / "courses/2026/math-02.mp4", 3600)
    touch(rx / "schedule.json.part", 5)  # still arriving
    touch(rx / ".incoming/big.ts", 1)  # hidden staging folder
    touch(rx / "notes.tmp", 2)
    p = DatacastProbe(DatacastProbeConfig(receive_dir=rx), sysfs=tmp_path / "nosys")
    s = p.collect(time.monotonic() + 1)
    assert s.newest_file == "courses/2026/math-02.mp4"
    assert s.files_seen == 2
    assert 3590 < (s.seconds_since_file or 0) < 3700
    assert not s.interface_present and s.skipped is None


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "rx").mkdir()
    empty = DatacastProbe(DatacastProbeConfig(receive_dir=tmp_path / "rx"), sysfs=tmp_path).collect(
        time.monotonic() + 1
    )
    assert empty.ok and empty.files_seen == 0 and empty.seconds_since_file is None
    missing = DatacastProbe(
        DatacastProbeConfig(receive_dir=tmp_path / "nope"), sysfs=tmp_path
    ).collect(time.monotonic() + 1)
    assert not missing.ok and "missing" in (missing.error or "")


def test_nothing_configured_is_skipped(tmp_path: Path) -> None:
    s = DatacastProbe(DatacastProbeConfig(), sysfs=tmp_path).collect(time.monotonic() + 1)
    assert s.skipped


def test_scan_is_bounded(tmp_path: Path) -> None:
    rx = tmp_path / "rx"
    for i in range(30):
        touch(rx / f"d{i % 3}/f{i}.bin", i)
    s = DatacastProbe(DatacastProbeConfig(receive_dir=rx, max_entries=10), sysfs=tmp_path).collect(
        time.monotonic() + 1
    )
    assert s.scan_truncated and 10 <= s.files_seen < 30
    expired = DatacastProbe(DatacastProbeConfig(receive_dir=rx), sysfs=tmp_path).collect(
        time.monotonic() - 1
    )
    assert expired.scan_truncated and expired.files_seen == 0
