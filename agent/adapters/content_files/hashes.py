"""sha256 of files on disk, read once per file version.

A course video is hundreds of MB and a small board hashes it in seconds, while the content folder
and the intake folder are looked at again and again. So a digest is remembered under the file's
identity (device, inode, size, mtime_ns): an unchanged file is never read twice, and a file that
changes (a receiver still writing it, a file replaced) gets a new identity and is read again.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path

Key = tuple[int, int, int, int]

CHUNK = 1 << 20


def key_of(st: os.stat_result) -> Key:
    """The identity of one version of a file."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FileChanged(OSError):
    """The file changed while it was being read, so its digest describes no version of it."""


class FileHashes:
    """Bounded LRU of digests by file version, plus when each version was first seen.

    ``reads`` counts the files actually read, which is what the cache exists to keep low.
    ``first_seen`` lets the intake tell that a file has stopped changing without trusting the
    wall clock (terminals often boot with no real-time clock, so an mtime can be in the future).
    """

    def __init__(self, max_entries: int = 4096, chunk: int = CHUNK) -> None:
        if max_entries < 1:
            raise ValueError(f"FileHashes max_entries must be at least 1, not {max_entries}")
        if chunk < 4096:
            raise ValueError(f"FileHashes chunk must be at least 4096 bytes, not {chunk}")
        self.max_entries = max_entries
        self.chunk = chunk
        self.reads = 0
        self._digests: OrderedDict[Key, str] = OrderedDict()
        self._seen: OrderedDict[Key, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._digests)

    def known(self, key: Key) -> str | None:
        """The digest of this version if it was read before."""
        digest = self._digests.get(key)
        if digest is not None:
            self._digests.move_to_end(key)
        return digest

    def remember(self, key: Key, digest: str) -> None:
        """Record a digest computed elsewhere (a copy hashed while it was written)."""
        self._digests[key] = digest
        self._digests.move_to_end(key)
        while len(self._digests) > self.max_entries:
            self._digests.popitem(last=False)

    def forget(self, key: Key) -> None:
        """Drop a digest found to be wrong for its version (the bytes changed, the key did not)."""
        self._digests.pop(key, None)

    def first_seen(self, key: Key, now: float | None = None) -> float:
        """Monotonic time at which this version was first asked about."""
        when = self._seen.get(key)
        if when is None:
            when = time.monotonic() if now is None else now
            self._seen[key] = when
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
        return when

    def sha256(self, path: Path, *, follow_symlinks: bool = True) -> str:
        """Hex sha256 of ``path``, from the cache when this version was read before.

        Raises FileChanged if the file's identity changed during the read (nothing is cached
        then), and OSError if it cannot be opened (``follow_symlinks=False`` refuses a symlink).
        """
        flags = os.O_RDONLY | (0 if follow_symlinks else os.O_NOFOLLOW)
        fd = os.open(path, flags)
        try:
            before = key_of(os.fstat(fd))
            digest = self.known(before)
            if digest is not None:
                return digest
            self.reads += 1
            h = hashlib.sha256()
            buf = bytearray(self.chunk)
            view = memoryview(buf)
            while n := os.readv(fd, [buf]):
                h.update(view[:n])
            after = key_of(os.fstat(fd))
        finally:
            os.close(fd)
        if after != before:
            raise FileChanged(f"{path} changed while it was being read")
        digest = h.hexdigest()
        self.remember(before, digest)
        return digest
