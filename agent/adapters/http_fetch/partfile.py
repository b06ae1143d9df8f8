"""The ``.part`` file: bytes received so far, their running sha256, and the move into place.

Why the hash lives with the file: the sha256 is computed while receiving, so the file is never
read a second time, except once after a restart (SIGKILL, power cut) to rebuild the running hash
of the bytes already on disk. Why periodic fsync: after a power cut the ``.part`` must hold what
it claims; fsync by bytes and by time bounds both the loss and the flash wear on slow links.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from pathlib import Path

from .errors import FetchError

FSYNC_BYTES = 64 * 1024 * 1024
FSYNC_SECONDS = 30.0
REHASH_CHUNK = 1024 * 1024


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartFile:
    """An open ``.part`` of a file of ``size`` bytes; raises FetchError("disk") on I/O errors."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.hasher = hashlib.sha256()
        self.length = 0
        self._unsynced = 0
        self._synced_at = time.monotonic()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            existed = path.exists()
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._lock()
            if not existed:
                fsync_dir(path.parent)
            self.length = os.fstat(self.fd).st_size
            if self.length > size:
                self.restart()
        except OSError as e:
            raise FetchError("disk", f"cannot open {path}: {e}") from e

    def _lock(self) -> None:
        """Two fetches of the same file at once would interleave their bytes in one .part; the
        lock refuses the second one (and dies with a killed process, unlike a lock file)."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise FetchError("disk", f"{self.path} is being fetched by another process") from None

    def rehash(self, cancel: threading.Event | None) -> None:
        """Rebuild the running hash from the bytes already on disk (once, on resume)."""
        self.hasher = hashlib.sha256()
        done = 0
        try:
            while done < self.length:
                if cancel is not None and cancel.is_set():
                    raise FetchError("cancelled", f"while re-reading {self.path}")
                data = os.pread(self.fd, min(REHASH_CHUNK, self.length - done), done)
                if not data:
                    break
                self.hasher.update(data)
                done += len(data)
        except OSError as e:
            raise FetchError("disk", f"cannot read {self.path}: {e}") from e
        if done != self.length:
            self._truncate(done)

    def restart(self) -> None:
        """Forget every byte: the server sent the whole file again (or the .part was too long)."""
        self._truncate(0)

    def _truncate(self, length: int) -> None:
        try:
            os.ftruncate(self.fd, length)
        except OSError as e:
            raise FetchError("disk", f"cannot truncate {self.path}: {e}") from e
        self.length = length
        if length == 0:
            self.hasher = hashlib.sha256()

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                n = os.pwrite(self.fd, view, self.length)
                self.length += n
                view = view[n:]
            self._unsynced += len(data)
            if self._unsynced >= FSYNC_BYTES or time.monotonic() - self._synced_at >= FSYNC_SECONDS:
                self.sync()
        except OSError as e:
            raise FetchError("disk", f"cannot write {self.path}: {e}") from e
        self.hasher.update(data)

    def sync(self) -> None:
        os.fsync(self.fd)
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()

    def commit(self, dest: Path) -> None:
        """fsync, then atomically rename into ``dest`` and fsync the folders involved."""
        try:
            self.sync()
            self.close()
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path, dest)
            fsync_dir(dest.parent)
            if dest.parent.resolve() != self.path.parent.resolve():
                fsync_dir(self.path.parent)
        except OSError as e:
            raise FetchError("disk", f"cannot move {self.path} to {dest}: {e}") from e

    def discard(self) -> None:
        """Delete the .part: its bytes failed the hash and must never be resumed from."""
        self.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as e:
            raise FetchError("disk", f"cannot delete {self.path}: {e}") from e

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
