"""The ``.part`` file: bytes received so far, their running sha256, and the move into place.

Why the hash lives with the file: the sha256 is computed while receiving, so the file is never
read a second time, except once after a restart (SIGKILL, power cut) to rebuild the running hash
of the bytes already on disk. The hashing runs on a helper thread (hashlib releases the GIL), so
receiving, writing and hashing overlap on two cores; at most ``HASH_QUEUE`` chunks wait for it. Why periodic fsync: after a power cut the ``.part`` must hold what
it claims; fsync by bytes and by time bounds both the loss and the flash wear on slow links.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import queue
import threading
import time
from pathlib import Path

from .errors import FetchError

FSYNC_BYTES = 64 * 1024 * 1024
FSYNC_SECONDS = 30.0
REHASH_CHUNK = 1024 * 1024
HASH_QUEUE = 4  # chunks waiting to be hashed (bounded memory: 4 x the read size)


class RunningHash:
    """sha256 over the chunks handed to ``update``, computed on a helper thread, in order.

    ``hexdigest`` and ``reset`` wait for the chunks handed over so far; the thread lives while
    chunks come and is stopped by ``close``.
    """

    def __init__(self) -> None:
        self._hasher = hashlib.sha256()
        self._chunks: queue.Queue[bytes | None] = queue.Queue(HASH_QUEUE)
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            data = self._chunks.get()
            try:
                if data is None:
                    return
                self._hasher.update(data)
            finally:
                self._chunks.task_done()

    def update(self, data: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fetch-hash", daemon=True)
            self._thread.start()
        self._chunks.put(data)

    def _drain(self) -> None:
        if self._thread is not None:
            self._chunks.join()

    def hexdigest(self) -> str:
        self._drain()
        return self._hasher.hexdigest()

    def reset(self) -> None:
        self._drain()
        self._hasher = hashlib.sha256()

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._chunks.put(None)
            thread.join()


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
        self.hasher = RunningHash()
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
        self.hasher.reset()
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
            self.hasher.reset()

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
        self.hasher.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
