"""The content folder on real files and a real tmpfs: confinement, scans, hashes, eviction, space."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from agent.adapters.content_files import ContentFolder, ContentPathError, FileHashes
from agent.adapters.content_files.hashes import key_of
from tests.helpers import tmpfs

MiB = 1 << 20


def put(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- dest: confinement ---------------------------------------------------------------------------


def test_dest_resolves_relative_paths_under_the_real_root(tmp_path: Path) -> None:
    root = tmp_path / "content"
    root.mkdir()
    folder = ContentFolder(root)
    assert folder.dest("a/b/c.mp4") == root.resolve() / "a" / "b" / "c.mp4"
    assert folder.dest("x.mp4") == root.resolve() / "x.mp4"


@pytest.mark.parametrize(
    "bad, words",
    [
        ("/etc/passwd", "relative"),
        ("../outside.mp4", ".."),
        ("a/../../outside.mp4", ".."),
        (".partial/x.part", "'.'"),
        ("a/.hidden.mp4", "'.'"),
        ("", "non-empty"),
        (".", "name a file"),
        ("/", "name a file"),
        ("a\x00b", "forbidden"),
        ("a\\b", "forbidden"),
    ],
)
def test_dest_refuses_paths_that_leave_the_folder(tmp_path: Path, bad: str, words: str) -> None:
    with pytest.raises(ContentPathError, match=words) as err:
        ContentFolder(tmp_path).dest(bad)
    assert repr(bad) in str(err.value)


def test_dest_refuses_symlinks_that_point_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "content", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"x")
    (root / "file.mp4").symlink_to(outside / "secret.mp4")
    (root / "dir").symlink_to(outside)
    (root / "dangling.mp4").symlink_to(outside / "not-yet.mp4")
    (root / "loop.mp4").symlink_to(root / "loop.mp4")
    folder = ContentFolder(root)
    for escape in ("file.mp4", "dir/secret.mp4", "dir/new.mp4", "dangling.mp4"):
        with pytest.raises(ContentPathError, match="outside the content folder"):
            folder.dest(escape)
    with pytest.raises(ContentPathError, match="loop.mp4"):
        folder.dest("loop.mp4")


def test_dest_accepts_symlinks_that_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "content"
    put(root, "real/v.mp4", b"v")
    (root / "alias").symlink_to(root / "real")
    (root / "v-link.mp4").symlink_to(root / "real" / "v.mp4")
    folder = ContentFolder(root)
    assert folder.dest("alias/v.mp4") == root.resolve() / "real" / "v.mp4"
    assert folder.dest("v-link.mp4") == root.resolve() / "v-link.mp4"


# -- scan, used_bytes, free_bytes ----------------------------------------------------------------


def test_scan_lists_regular_files_and_skips_dot_names_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "content"
    put(root, "b/two.mp4", b"22")
    put(root, "one.mp4", b"1")
    put(root, ".partial/abc.part", b"partial bytes")
    put(root, "b/.tmp-write", b"hidden")
    (root / "link.mp4").symlink_to(root / "one.mp4")
    os.utime(root / "one.mp4", (1_700_000_000, 1_700_000_000))
    folder = ContentFolder(root)
    scanned = folder.scan()
    assert [(p, s) for p, s, _ in scanned] == [("b/two.mp4", 2), ("one.mp4", 1)]
    assert scanned[1][2] == 1_700_000_000
    assert folder.used_bytes() == 3
    assert ContentFolder(tmp_path / "missing").scan() == []


def test_free_bytes_follows_what_is_written_on_a_real_tmpfs(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        folder = ContentFolder(mnt)
        empty = folder.free_bytes()
        assert 7 * MiB < empty <= 8 * MiB
        put(mnt, "a/big.mp4", os.urandom(3 * MiB))
        after = folder.free_bytes()
        assert 3 * MiB <= empty - after <= 3 * MiB + 64 * 1024
        assert folder.used_bytes() == 3 * MiB
        assert folder.evict(["a/big.mp4"]) == 3 * MiB
        assert folder.free_bytes() == empty


# -- verified and the hash cache -----------------------------------------------------------------


def test_verified_checks_size_and_sha256_and_hashes_each_version_once(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    root = tmp_path / "content"
    path = put(root, "c/v.mp4", data)
    folder = ContentFolder(root)
    assert folder.verified("c/v.mp4", len(data), sha(data))
    assert folder.verified("c/v.mp4", len(data), sha(data))
    assert folder.hashes.reads == 1
    assert not folder.verified("c/v.mp4", len(data) + 1, sha(data))  # size: no read needed
    assert not folder.verified("c/v.mp4", len(data), sha(b"other"))  # cached digest differs
    assert folder.hashes.reads == 1
    assert not folder.verified("c/missing.mp4", 1, sha(b"x"))

    damaged = bytearray(data)
    damaged[1000] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, new mtime_ns: a new version
    assert not folder.verified("c/v.mp4", len(data), sha(data))
    assert folder.hashes.reads == 2


def test_verified_refuses_a_path_that_escapes(tmp_path: Path) -> None:
    root = tmp_path / "content"
    root.mkdir()
    put(tmp_path, "outside.mp4", b"abc")
    (root / "x.mp4").symlink_to(tmp_path / "outside.mp4")
    with pytest.raises(ContentPathError):
        ContentFolder(root).verified("x.mp4", 3, sha(b"abc"))


def test_hashing_a_large_file_uses_bounded_memory(tmp_path: Path) -> None:
    size = 48 * MiB
    path = tmp_path / "big.bin"
    expected = hashlib.sha256()
    with open(path, "wb") as fh:
        block = os.urandom(MiB)
        for _ in range(size // MiB):
            fh.write(block)
            expected.update(block)
    del block
    hashes = FileHashes()
    tracemalloc.start()
    try:
        digest = hashes.sha256(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == expected.hexdigest()
    assert peak < 3 * MiB, f"hashing {size} bytes peaked at {peak} bytes of Python memory"


def test_hash_cache_is_bounded_and_refuses_nonsense(tmp_path: Path) -> None:
    hashes = FileHashes(max_entries=2)
    files = [put(tmp_path, f"f{i}", bytes([i]) * 10) for i in range(3)]
    for f in files:
        hashes.sha256(f)
    assert len(hashes) == 2
    hashes.sha256(files[0])  # pushed out, so read again
    assert hashes.reads == 4
    hashes.forget(key_of(files[0].stat()))
    hashes.sha256(files[0])
    assert hashes.reads == 5
    with pytest.raises(ValueError, match="max_entries"):
        FileHashes(max_entries=0)
    (tmp_path / "link").symlink_to(files[0])
    with pytest.raises(OSError):
        hashes.sha256(tmp_path / "link", follow_symlinks=False)


# -- evict ---------------------------------------------------------------------------------------


def test_evict_deletes_files_and_empty_dirs_and_counts_bytes(tmp_path: Path) -> None:
    root = tmp_path / "content"
    put(root, "c1/a/one.mp4", b"1" * 100)
    put(root, "c1/two.mp4", b"2" * 50)
    put(root, "c2/three.mp4", b"3" * 7)
    folder = ContentFolder(root)
    assert folder.evict(["c1/a/one.mp4", "c2/three.mp4", "c9/never-there.mp4"]) == 107
    assert not (root / "c1" / "a").exists()
    assert not (root / "c2").exists()
    assert (root / "c1" / "two.mp4").exists()
    assert root.is_dir()
    assert folder.evict(["c1/two.mp4"]) == 50
    assert root.is_dir() and list(root.iterdir()) == []


def test_evict_refuses_anything_outside_and_then_deletes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "content"
    keep = put(root, "keep.mp4", b"k")
    outside = put(tmp_path, "outside/victim.mp4", b"v")
    (root / "escape").symlink_to(tmp_path / "outside")
    folder = ContentFolder(root)
    for bad in ("../outside/victim.mp4", "escape/victim.mp4", str(outside)):
        with pytest.raises(ContentPathError):
            folder.evict(["keep.mp4", bad])
    assert keep.exists() and outside.exists()
    (root / "sub").mkdir()
    with pytest.raises(ContentPathError, match="directory"):
        folder.evict(["keep.mp4", "sub"])
    with pytest.raises(ContentPathError, match="must name a file"):
        folder.evict(["keep.mp4", "."])
    assert keep.exists()


def test_evict_of_a_hard_linked_file_frees_nothing(tmp_path: Path) -> None:
    root = tmp_path / "content"
    path = put(root, "v.mp4", b"x" * 4096)
    os.link(path, tmp_path / "other-name")
    assert ContentFolder(root).evict(["v.mp4"]) == 0
    assert not path.exists()
