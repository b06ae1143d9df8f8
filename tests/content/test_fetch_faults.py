"""Failures a technician must be able to tell apart: a corrupt mirror, a stall, a 404, a wrong
size, a refused connection, a cancel, bad arguments. Real nginx, fault proxy where needed."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from agent.adapters.http_fetch import FetchError, fetch_file
from agent.testing.nginx import NginxServer, sha256_of, write_random
from tests.content.faultproxy import FaultProxy, Plan

MB = 1024 * 1024


def test_a_corrupting_mirror_loses_to_the_next_one(nginx: NginxServer, tmp_path: Path) -> None:
    size = 4 * MB
    sha = write_random(nginx.root / "f.bin", size)
    dest = tmp_path / "content" / "f.bin"
    seen_at_dest: list[bool] = []

    def progress(done: int, total: int) -> None:
        seen_at_dest.append(dest.exists())

    with FaultProxy(nginx.port, corrupt_at=size // 3) as bad:
        result = fetch_file(
            [bad.url("f.bin"), nginx.url("f.bin")],
            dest,
            size,
            sha,
            part_dir=tmp_path / "part",
            progress=progress,
        )
        assert bad.body_bytes == size
    assert result.mirror == nginx.url("f.bin")
    assert result.bytes_received == 2 * size
    assert sha256_of(dest) == sha
    assert seen_at_dest[:-1] and not any(seen_at_dest[:-1])


def test_only_a_bad_mirror_gives_hash_mismatch_and_no_file(
    nginx: NginxServer, tmp_path: Path
) -> None:
    size = 2 * MB
    sha = write_random(nginx.root / "f.bin", size)
    write_random(nginx.root / "other.bin", size)
    dest, part_dir = tmp_path / "content" / "f.bin", tmp_path / "part"
    with pytest.raises(FetchError) as err:
        fetch_file([nginx.url("other.bin")], dest, size, sha, part_dir=part_dir)
    assert err.value.reason == "hash_mismatch"
    assert err.value.mirror == nginx.url("other.bin")
    assert not dest.exists()
    assert not (part_dir / f"{sha}.part").exists()


def test_every_attempt_is_named_in_the_message(nginx: NginxServer, tmp_path: Path) -> None:
    sha = write_random(nginx.root / "f.bin", MB)
    write_random(nginx.root / "big.bin", 2 * MB)
    urls = [nginx.url("missing.bin"), nginx.url("big.bin")]
    with pytest.raises(FetchError) as err:
        fetch_file(urls, tmp_path / "f.bin", MB, sha, part_dir=tmp_path / "part")
    assert err.value.reason == "size_mismatch"
    assert "http_status" in str(err.value) and "missing.bin" in str(err.value)


def test_404_is_http_status(nginx: NginxServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError) as err:
        fetch_file([nginx.url("nope.bin")], tmp_path / "x", 10, "a" * 64, part_dir=tmp_path / "p")
    assert err.value.reason == "http_status"
    assert "404" in str(err.value)


def test_a_stall_fails_within_stall_seconds(nginx: NginxServer, tmp_path: Path) -> None:
    size = 2 * MB
    sha = write_random(nginx.root / "f.bin", size)
    part_dir = tmp_path / "part"
    with FaultProxy(nginx.port, plans=[Plan(stall_after=MB // 2, stall_seconds=60)]) as proxy:
        t0 = time.monotonic()
        with pytest.raises(FetchError) as err:
            fetch_file(
                [proxy.url("f.bin")], tmp_path / "f.bin", size, sha, part_dir=part_dir,
                stall_seconds=1.5,
            )  # fmt: skip
        elapsed = time.monotonic() - t0
    assert err.value.reason == "stalled"
    assert 1.4 <= elapsed <= 1.5 + 3.0
    assert (part_dir / f"{sha}.part").stat().st_size == MB // 2


def test_cancel_during_a_stall_returns_promptly_and_keeps_the_part(
    nginx: NginxServer, tmp_path: Path
) -> None:
    size = 2 * MB
    sha = write_random(nginx.root / "f.bin", size)
    part_dir = tmp_path / "part"
    cancel = threading.Event()
    with FaultProxy(nginx.port, plans=[Plan(stall_after=MB, stall_seconds=60)]) as proxy:
        threading.Timer(0.5, cancel.set).start()
        t0 = time.monotonic()
        with pytest.raises(FetchError) as err:
            fetch_file(
                [proxy.url("f.bin")], tmp_path / "f.bin", size, sha, part_dir=part_dir,
                stall_seconds=30, cancel=cancel,
            )  # fmt: skip
        elapsed = time.monotonic() - t0
    assert err.value.reason == "cancelled"
    assert elapsed < 3.0
    assert (part_dir / f"{sha}.part").stat().st_size == MB


def test_refused_connection_is_network(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError) as err:
        fetch_file(
            [f"http://127.0.0.1:{port}/f.bin"], tmp_path / "f", 10, "b" * 64, part_dir=tmp_path
        )
    assert err.value.reason == "network"


def test_disk_error_is_disk_and_final(nginx: NginxServer, tmp_path: Path) -> None:
    sha = write_random(nginx.root / "f.bin", MB)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(FetchError) as err:
        fetch_file([nginx.url("f.bin")], tmp_path / "f.bin", MB, sha, part_dir=blocker / "part")
    assert err.value.reason == "disk"


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"sources": []}, "sources"),
        ({"sources": "http://x/y"}, "sources"),
        ({"sources": ["ftp://x/y"]}, "ftp://x/y"),
        ({"size": 0}, "size"),
        ({"sha256": "ABC"}, "sha256"),
        ({"max_kbps": 0}, "max_kbps"),
    ],
)
def test_bad_arguments_say_what(tmp_path: Path, kwargs: dict[str, object], word: str) -> None:
    args: dict[str, object] = {
        "sources": ["http://127.0.0.1:9/f"],
        "dest": tmp_path / "f",
        "size": 10,
        "sha256": "c" * 64,
        "part_dir": tmp_path,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match="fetch_file") as err:
        fetch_file(**args)  # type: ignore[arg-type]
    assert word in str(err.value)


def test_a_mirror_with_another_size_is_size_mismatch_on_resume(
    nginx: NginxServer, tmp_path: Path
) -> None:
    """Resuming against a mirror whose file has another size: Content-Range tells, nothing is
    appended and the .part is kept for a mirror with the right file."""
    write_random(nginx.root / "f.bin", 3 * MB)
    part_dir = tmp_path / "part"
    part_dir.mkdir()
    part = part_dir / f"{'d' * 64}.part"
    part.write_bytes(os.urandom(MB))
    with pytest.raises(FetchError) as err:
        fetch_file([nginx.url("f.bin")], tmp_path / "f", 2 * MB, "d" * 64, part_dir=part_dir)
    assert err.value.reason == "size_mismatch"
    assert part.stat().st_size == MB


def test_a_second_fetch_of_the_same_file_is_refused(nginx: NginxServer, tmp_path: Path) -> None:
    size = 2 * MB
    sha = write_random(nginx.root / "f.bin", size)
    part_dir = tmp_path / "part"
    with FaultProxy(nginx.port, plans=[Plan(stall_after=MB, stall_seconds=60)]) as proxy:
        cancel = threading.Event()
        first = threading.Thread(
            target=lambda: pytest.raises(FetchError, fetch_file, [proxy.url("f.bin")],
                                         tmp_path / "a", size, sha, part_dir=part_dir,
                                         cancel=cancel),
        )  # fmt: skip
        first.start()
        deadline = time.monotonic() + 10
        while proxy.body_bytes < MB and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(FetchError) as err:
            fetch_file([nginx.url("f.bin")], tmp_path / "b", size, sha, part_dir=part_dir)
        cancel.set()
        first.join(10)
    assert err.value.reason == "disk" and "another" in str(err.value)
    assert not (tmp_path / "b").exists()
