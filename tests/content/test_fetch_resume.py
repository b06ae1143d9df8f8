"""Resume: cuts, a 200 reply to a Range request, a complete .part, SIGKILL of the fetcher.

Real nginx on loopback, the fault proxy in front of it where a fault is needed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.adapters.http_fetch import fetch_file
from agent.testing.nginx import NginxServer, sha256_of, write_random
from tests.content.faultproxy import FaultProxy, Plan

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


def test_twenty_cuts_in_one_50mb_file_land_it_once(nginx: NginxServer, tmp_path: Path) -> None:
    size = 50 * MB
    sha = write_random(nginx.root / "big.bin", size)
    rng = random.Random(11)
    plans = [Plan(cut_after=rng.randrange(MB, 2 * MB + MB // 4)) for _ in range(20)]
    dest = tmp_path / "content" / "course" / "big.bin"
    with FaultProxy(nginx.port, plans=plans) as proxy:
        result = fetch_file([proxy.url("big.bin")], dest, size, sha, part_dir=tmp_path / "part")
        assert proxy.connections == 21
        forwarded = proxy.body_bytes
    assert sha256_of(dest) == sha
    assert result.bytes_received <= size * 1.02
    assert forwarded <= size * 1.02
    assert result.resumed_from == 0
    assert list((tmp_path / "part").iterdir()) == []


def test_resume_sends_a_range_from_the_part(nginx: NginxServer, tmp_path: Path) -> None:
    size = 3 * MB
    sha = write_random(nginx.root / "f.bin", size)
    part_dir = tmp_path / "part"
    part_dir.mkdir()
    (part_dir / f"{sha}.part").write_bytes((nginx.root / "f.bin").read_bytes()[:MB])
    dest = tmp_path / "f.bin"
    result = fetch_file([nginx.url("f.bin")], dest, size, sha, part_dir=part_dir)
    assert sha256_of(dest) == sha
    assert result.resumed_from == MB
    assert result.bytes_received == size - MB
    assert f'"bytes={MB}-"' in nginx.access_log.read_text()


def test_a_200_reply_to_a_range_request_restarts_from_zero(
    nginx: NginxServer, tmp_path: Path
) -> None:
    """The .part holds wrong bytes; a server that ignores Range sends the whole file: the
    fetcher must start over, not append the whole file after the old bytes."""
    size = 2 * MB
    sha = write_random(nginx.root / "f.bin", size)
    part_dir = tmp_path / "part"
    part_dir.mkdir()
    (part_dir / f"{sha}.part").write_bytes(os.urandom(MB // 2))
    dest = tmp_path / "f.bin"
    with FaultProxy(nginx.port, strip_range=True) as proxy:
        result = fetch_file([proxy.url("f.bin")], dest, size, sha, part_dir=part_dir)
    assert sha256_of(dest) == sha
    assert result.resumed_from == MB // 2
    assert result.bytes_received == size
    assert "bytes=" not in nginx.access_log.read_text()


def test_a_complete_part_gets_416_and_is_verified(nginx: NginxServer, tmp_path: Path) -> None:
    size = MB
    sha = write_random(nginx.root / "f.bin", size)
    part_dir = tmp_path / "part"
    part_dir.mkdir()
    (part_dir / f"{sha}.part").write_bytes((nginx.root / "f.bin").read_bytes())
    result = fetch_file([nginx.url("f.bin")], tmp_path / "f.bin", size, sha, part_dir=part_dir)
    assert result.bytes_received == 0 and result.resumed_from == size
    assert sha256_of(tmp_path / "f.bin") == sha
    assert " 416 " in nginx.access_log.read_text()


# -- SIGKILL of a fetching process -----------------------------------------------------------


def _runner(url: str, dest: str, size: int, sha: str, part_dir: str) -> None:
    """Child mode: fetch, printing the .part length at start and every progress report."""
    part = Path(part_dir) / f"{sha}.part"
    print(f"start {part.stat().st_size if part.exists() else 0}", flush=True)
    result = fetch_file(
        [url],
        Path(dest),
        size,
        sha,
        part_dir=Path(part_dir),
        progress=lambda done, total: print(f"progress {done}", flush=True),
    )
    out = {"resumed_from": result.resumed_from, "bytes_received": result.bytes_received}
    print("done " + json.dumps(out), flush=True)


def _start_runner(
    url: str, dest: Path, size: int, sha: str, part_dir: Path
) -> subprocess.Popen[str]:
    args = [url, str(dest), str(size), sha, str(part_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.content.test_fetch_resume", *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_sigkill_ten_times_resumes_from_the_part(nginx: NginxServer, tmp_path: Path) -> None:
    size = 12 * MB
    sha = write_random(nginx.root / "f.bin", size)
    dest, part_dir = tmp_path / "content" / "f.bin", tmp_path / "part"
    rng = random.Random(7)
    starts: list[int] = []
    with FaultProxy(nginx.port, throttle=3 * MB) as proxy:
        last_reported = 0
        for _ in range(10):
            proc = _start_runner(proxy.url("f.bin"), dest, size, sha, part_dir)
            assert proc.stdout is not None
            start = int(proc.stdout.readline().split()[1])
            assert start >= last_reported, "bytes reported written before the kill were lost"
            starts.append(start)
            line = proc.stdout.readline()
            assert line.startswith("progress"), line
            time.sleep(rng.uniform(0.05, 0.4))
            proc.send_signal(signal.SIGKILL)
            rest = proc.communicate(timeout=30)[0]
            reported = [
                int(x.split()[1]) for x in (line + rest).splitlines() if x.startswith("progress")
            ]
            assert "done" not in rest, "the runner finished before it was killed"
            last_reported = max(reported)
        proc = _start_runner(proxy.url("f.bin"), dest, size, sha, part_dir)
        out = proc.communicate(timeout=60)[0]
        forwarded = proxy.body_bytes
    assert proc.returncode == 0, out
    done = json.loads(out.splitlines()[-1].removeprefix("done "))
    assert done["resumed_from"] >= last_reported
    assert starts == sorted(starts) and starts[-1] > starts[1] > 0
    assert sha256_of(dest) == sha
    assert not (part_dir / f"{sha}.part").exists()
    assert forwarded <= size + 10 * 512 * 1024, f"{forwarded} bytes sent for a {size}-byte file"


if __name__ == "__main__":
    _runner(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
