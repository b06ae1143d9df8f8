"""Satellite and USB intake on real files, real tmpfs mounts and a real slow writer thread."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from agent.adapters.content_files import (
    ContentFolder,
    ContentPathError,
    FileHashes,
    IntakeError,
    take_from_folder,
)
from tests.helpers import tmpfs, wait_for

MiB = 1 << 20
OLD = time.time() - 3600  # an mtime well past any settle time


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def drop(folder: Path, rel: str, data: bytes, mtime: float | None = OLD) -> Path:
    """A file as a receiver leaves it; by default finished an hour ago."""
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def leftovers(content: ContentFolder) -> list[str]:
    part = content.root / ".partial"
    return sorted(p.name for p in part.iterdir()) if part.exists() else []


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, ContentFolder]:
    intake = tmp_path / "intake"
    intake.mkdir()
    return intake, ContentFolder(tmp_path / "content")


def test_same_filesystem_is_hard_linked_and_move_removes_the_source(dirs) -> None:
    intake, content = dirs
    data = os.urandom(200_000)
    src = drop(intake, "sat/any-name.bin", data)
    ino = src.stat().st_ino
    assert take_from_folder(intake, [("c1/v.mp4", len(data), sha(data))], content, move=False) == [
        "c1/v.mp4"
    ]
    landed = content.dest("c1/v.mp4")
    assert landed.stat().st_ino == ino
    assert landed.stat().st_nlink == 2 and src.exists()  # USB mode keeps the source
    assert content.verified("c1/v.mp4", len(data), sha(data))

    data2 = os.urandom(1000)
    src2 = drop(intake, "two.bin", data2)
    ino2 = src2.stat().st_ino
    taken = take_from_folder(intake, [("c2/w.mp4", len(data2), sha(data2))], content, move=True)
    assert taken == ["c2/w.mp4"]
    assert not src2.exists()
    assert content.dest("c2/w.mp4").stat().st_ino == ino2
    assert content.dest("c2/w.mp4").stat().st_nlink == 1
    assert leftovers(content) == []


def test_other_filesystem_is_copied_whole(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 12345)  # several copy chunks
    content = ContentFolder(tmp_path / "content")
    with tmpfs(tmp_path / "sat", "8m") as sat:
        src = drop(sat, "in/v.ts", data)
        src_ino = src.stat().st_ino
        wants = [("c/v.mp4", len(data), sha(data))]
        assert take_from_folder(sat, wants, content, move=False) == ["c/v.mp4"]
        landed = content.dest("c/v.mp4")
        assert landed.stat().st_dev != src.stat().st_dev
        assert landed.stat().st_nlink == 1 and src.stat().st_ino == src_ino
        assert landed.read_bytes() == data
        assert leftovers(content) == []
        # Hashed while copying: verifying the copy reads nothing more.
        reads = content.hashes.reads
        assert content.verified("c/v.mp4", len(data), sha(data))
        assert content.hashes.reads == reads
        # Already present: not taken again; with move the duplicate source is cleared away.
        assert take_from_folder(sat, wants, content, move=False) == []
        assert src.exists()
        assert take_from_folder(sat, wants, content, move=True) == []
        assert not src.exists()


def test_a_copy_that_does_not_fit_fails_cleanly(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    src = drop(tmp_path / "usb", "course/v.mp4", data)
    with tmpfs(tmp_path / "small", "2m") as small:
        content = ContentFolder(small)
        wants = [("c/v.mp4", len(data), sha(data))]
        free_before = content.free_bytes()
        with pytest.raises(IntakeError, match="no space") as err:
            take_from_folder(tmp_path / "usb", wants, content, move=True)
        assert err.value.reason == "disk" and err.value.taken == []
        assert not content.dest("c/v.mp4").exists()
        assert leftovers(content) == []
        assert content.free_bytes() == free_before
    assert src.read_bytes() == data  # move=True, yet the source is intact


def test_a_file_written_slowly_in_pieces_is_taken_only_when_complete(dirs) -> None:
    intake, content = dirs
    data = os.urandom(400_000)
    wants = [("c/slow.mp4", len(data), sha(data))]
    pieces = 10
    step = len(data) // pieces
    finished = threading.Event()
    finished_at: list[float] = []

    def receiver() -> None:
        # Preallocated to full size first, as some receivers do: the size matches long before
        # the bytes do, so only the hash and the settle time can hold it back.
        with open(intake / "slow.ts", "wb") as fh:
            fh.truncate(len(data))
            for i in range(pieces):
                fh.seek(i * step)
                fh.write(data[i * step : (i + 1) * step if i < pieces - 1 else len(data)])
                fh.flush()
                time.sleep(0.3)
        finished_at.append(time.monotonic())
        finished.set()

    writer = threading.Thread(target=receiver, daemon=True)
    hashes = FileHashes()
    writer.start()
    polls = 0
    taken: list[str] = []
    deadline = time.monotonic() + 60
    while not taken and time.monotonic() < deadline:
        taken = take_from_folder(intake, wants, content, move=True, hashes=hashes)
        polls += 1
        if not taken:
            assert not content.dest("c/slow.mp4").exists()
            assert leftovers(content) == []
        time.sleep(0.05)
    took_at = time.monotonic()
    writer.join(10)
    assert taken == ["c/slow.mp4"], "the complete file was never taken"
    assert finished.is_set() and took_at >= finished_at[0]
    assert took_at - finished_at[0] >= 1.5  # it waited for the file to settle
    assert polls > 20
    assert content.dest("c/slow.mp4").read_bytes() == data
    assert not (intake / "slow.ts").exists()
    assert hashes.reads <= 3  # never hashed on every poll while it was being written


def test_a_file_that_grows_to_the_size_is_not_even_read_before_it_settles(dirs) -> None:
    intake, content = dirs
    data = os.urandom(5000)
    wants = [("c/v.mp4", len(data), sha(data))]
    src = drop(intake, "v.ts", data[:1000], mtime=None)
    hashes = FileHashes()
    assert take_from_folder(intake, wants, content, move=False, hashes=hashes) == []
    with open(src, "ab") as fh:
        fh.write(data[1000:])
    mtime = src.stat().st_mtime
    # Clock just after the last write: too fresh, and first seen just now.
    for offset in (0.0, 1.0, 1.9):
        got = take_from_folder(
            intake, wants, content, move=False, hashes=hashes, wall=lambda o=offset: mtime + o
        )
        assert got == []
    assert hashes.reads == 0
    assert take_from_folder(
        intake, wants, content, move=False, hashes=hashes, wall=lambda: mtime + 2.5
    ) == ["c/v.mp4"]
    assert hashes.reads == 1


def test_a_future_mtime_settles_by_the_monotonic_clock(dirs) -> None:
    intake, content = dirs
    data = os.urandom(5000)
    wants = [("c/v.mp4", len(data), sha(data))]
    drop(intake, "v.ts", data, mtime=time.time() + 86400 * 365)  # receiver's clock vs ours
    hashes, mono = FileHashes(), [1000.0]

    def take() -> list[str]:
        return take_from_folder(
            intake, wants, content, move=False, hashes=hashes, monotonic=lambda: mono[0]
        )

    assert take() == []
    mono[0] += 1.0
    assert take() == []
    mono[0] += 1.5
    assert take() == ["c/v.mp4"]


def test_a_wrong_file_is_never_taken_and_not_read_again_until_it_changes(dirs) -> None:
    intake, content = dirs
    good = os.urandom(8192)
    bad = bytearray(good)
    bad[-1] ^= 0x01
    src = drop(intake, "v.ts", bytes(bad))
    wants = [("c/v.mp4", len(good), sha(good))]
    hashes = FileHashes()
    for _ in range(5):
        assert take_from_folder(intake, wants, content, move=True, hashes=hashes) == []
    assert hashes.reads == 1
    assert src.exists() and not content.dest("c/v.mp4").exists()
    assert leftovers(content) == []
    drop(intake, "v.ts", bytes(bad), mtime=OLD + 10)  # a new version, still wrong
    assert take_from_folder(intake, wants, content, move=True, hashes=hashes) == []
    assert hashes.reads == 2
    drop(intake, "v.ts", good, mtime=OLD + 20)
    assert take_from_folder(intake, wants, content, move=True, hashes=hashes) == ["c/v.mp4"]


def test_symlinks_in_the_intake_folder_are_never_followed(tmp_path: Path, dirs) -> None:
    intake, content = dirs
    data = os.urandom(3000)
    secret = drop(tmp_path / "elsewhere", "secret.mp4", data)
    (intake / "link.ts").symlink_to(secret)
    (intake / "dirlink").symlink_to(tmp_path / "elsewhere")
    drop(intake, ".receiving.ts", data)  # dot names are files still being written
    wants = [("c/v.mp4", len(data), sha(data))]
    hashes = FileHashes()
    assert take_from_folder(intake, wants, content, move=True, hashes=hashes) == []
    assert hashes.reads == 0
    assert secret.exists() and (intake / ".receiving.ts").exists()
    assert not content.dest("c/v.mp4").exists()


def test_a_want_that_escapes_the_content_folder_is_refused(tmp_path: Path, dirs) -> None:
    intake, content = dirs
    data = os.urandom(100)
    drop(intake, "x.ts", data)
    content.root.mkdir()
    (content.root / "out").symlink_to(tmp_path)
    for path in ("../x.mp4", "out/x.mp4", "/tmp/x.mp4"):
        with pytest.raises(ContentPathError):
            take_from_folder(intake, [(path, len(data), sha(data))], content, move=False)
    assert not (tmp_path / "x.mp4").exists()


def test_one_source_fills_every_path_that_wants_it(dirs) -> None:
    intake, content = dirs
    data, other = os.urandom(777), os.urandom(777)
    src = drop(intake, "shared.ts", data)
    wants = [
        ("a/intro.mp4", len(data), sha(data)),
        ("b/intro.mp4", len(data), sha(data)),
        ("c/other.mp4", len(other), sha(other)),
    ]
    assert take_from_folder(intake, wants, content, move=True) == ["a/intro.mp4", "b/intro.mp4"]
    assert not src.exists()
    assert content.dest("a/intro.mp4").read_bytes() == content.dest("b/intro.mp4").read_bytes()


@pytest.mark.parametrize(
    "want, words",
    [
        (("c/v.mp4", 0, "a" * 64), "size"),
        (("c/v.mp4", True, "a" * 64), "size"),
        (("c/v.mp4", 10, "A" * 64), "sha256"),
        (("c/v.mp4", 10, "abc"), "sha256"),
        (("c/v.mp4", 10), r"\(path, size, sha256\)"),
    ],
)
def test_bad_wants_are_refused_with_the_reason(dirs, want, words) -> None:
    intake, content = dirs
    with pytest.raises(ValueError, match=words):
        take_from_folder(intake, [want], content, move=False)


def test_a_missing_intake_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="intake folder"):
        take_from_folder(tmp_path / "nope", [], ContentFolder(tmp_path / "c"), move=False)


def test_a_file_replaced_while_waiting_is_judged_by_its_new_bytes(dirs) -> None:
    intake, content = dirs
    data = os.urandom(4096)
    wants = [("c/v.mp4", len(data), sha(data))]
    src = drop(intake, "v.ts", os.urandom(4096))
    hashes = FileHashes()
    assert take_from_folder(intake, wants, content, move=False, hashes=hashes) == []
    tmp = intake / ".v.tmp"
    tmp.write_bytes(data)
    os.utime(tmp, (OLD, OLD))
    os.replace(tmp, src)  # same name, same size, same mtime: a new inode all the same
    assert take_from_folder(intake, wants, content, move=False, hashes=hashes) == ["c/v.mp4"]
    wait_for(lambda: content.verified("c/v.mp4", len(data), sha(data)), 5, what="verified")
