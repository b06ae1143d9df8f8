"""The bandwidth cap holds the average within 5 % of ``max_kbps`` (kilobits/s), and progress
is reported a few times a second, never per chunk."""

from __future__ import annotations

from pathlib import Path

from agent.adapters.http_fetch import fetch_file
from agent.adapters.http_fetch.bucket import TokenBucket, kbps_to_bytes
from agent.testing.nginx import NginxServer, sha256_of, write_random


def test_max_kbps_caps_the_rate_within_5_percent(nginx: NginxServer, tmp_path: Path) -> None:
    max_kbps = 20_000  # 2.5 MB/s
    size = 9 * 1_000_000  # ~3.6 s at the cap
    sha = write_random(nginx.root / "f.bin", size)
    calls: list[tuple[int, int]] = []
    dest = tmp_path / "f.bin"
    result = fetch_file(
        [nginx.url("f.bin")],
        dest,
        size,
        sha,
        part_dir=tmp_path / "part",
        max_kbps=max_kbps,
        progress=lambda done, total: calls.append((done, total)),
    )
    rate = result.bytes_received / result.seconds
    assert abs(rate / kbps_to_bytes(max_kbps) - 1) <= 0.05, f"{rate * 8 / 1000:.0f} kbps"
    assert sha256_of(dest) == sha
    assert calls[-1] == (size, size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) <= result.seconds * 4 + 2


def test_token_bucket_debt_keeps_the_average() -> None:
    bucket = TokenBucket(1000.0, burst=100, now=0.0)
    now = 0.0
    for _ in range(50):
        now += bucket.take(250, now)
    assert abs(now - 50 * 250 / 1000) < 1e-9
    idle = now + 100
    assert bucket.take(100, idle) == 0.0
    assert bucket.take(1000, idle) == 1.0
