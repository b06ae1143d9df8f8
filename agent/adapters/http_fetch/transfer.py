"""One fetch in progress: the .part, the rate cap and the progress reports shared by the
attempts (one per mirror, or several on one mirror when a cut connection is resumed).

Why a class that outlives one attempt: the running hash of the .part is rebuilt at most once per
call; a resumed attempt after a cut continues the same hash and the same rate budget.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bucket import TokenBucket, kbps_to_bytes
from .client import Interrupter, open_stream, read_chunk
from .errors import FetchError
from .partfile import PartFile

PROGRESS_INTERVAL = 0.25
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)
_UNSATISFIED = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.I)


class Transfer:
    """Receives one file of ``size`` bytes into ``part_path`` and moves it to ``dest``."""

    def __init__(
        self,
        *,
        pool: Any,
        dest: Path,
        part_path: Path,
        size: int,
        sha256: str,
        max_kbps: float | None,
        progress: Callable[[int, int], None] | None,
        cancel: threading.Event | None,
        chunk: int,
    ) -> None:
        self.pool = pool
        self.dest = dest
        self.part_path = part_path
        self.size = size
        self.sha256 = sha256
        self.progress = progress
        self.cancel = cancel
        self.received = 0
        self.resumed_from = 0
        self.part: PartFile | None = None
        self.bucket: TokenBucket | None = None
        self.amount = chunk
        if max_kbps is not None:
            rate = kbps_to_bytes(max_kbps)
            self.amount = max(4096, min(chunk, int(rate / 10)))
            self.bucket = TokenBucket(rate, burst=self.amount, now=time.monotonic())
        self._reported_at = 0.0

    def open_part(self) -> PartFile:
        if self.part is None:
            part = PartFile(self.part_path, self.size)
            self.part = part
            if part.length:
                part.rehash(self.cancel)
        return self.part

    def close(self) -> None:
        if self.part is not None:
            self.part.close()
            self.part = None

    def attempt(self, url: str) -> None:
        """Fetch from one mirror until the file is verified and in place, or raise FetchError."""
        self._check_cancel(url)
        part = self.open_part()
        offset = part.length
        resp = open_stream(self.pool, url, offset)
        try:
            if not self._accept(resp, url, part, offset):
                self._finish(url)
                return
            self._receive(resp, url, part)
            if part.length < self.size:
                raise FetchError(
                    "network", f"connection closed at {part.length} of {self.size} bytes", url
                )
            self._finish(url)
        except BaseException:
            resp.close()
            raise
        finally:
            resp.release_conn()

    def _accept(self, resp: Any, url: str, part: PartFile, offset: int) -> bool:
        """Check the reply's status and headers; False means "nothing to receive" (416 on a
        complete .part)."""
        status = resp.status
        headers = resp.headers
        if status == 416 and offset > 0:
            m = _UNSATISFIED.match(headers.get("Content-Range", ""))
            if offset == self.size and (m is None or int(m.group(1)) == self.size):
                return False
            have = m.group(1) if m else "?"
            raise FetchError("size_mismatch", f"server has {have} bytes, expected {self.size}", url)
        if status == 206:
            m = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
            if m is None:
                raise FetchError("network", "206 without a usable Content-Range", url)
            if m.group(3) != "*" and int(m.group(3)) != self.size:
                raise FetchError(
                    "size_mismatch", f"server has {m.group(3)} bytes, expected {self.size}", url
                )
            if int(m.group(1)) != offset:
                raise FetchError(
                    "network", f"server resumed at byte {m.group(1)}, asked {offset}", url
                )
            return True
        if status == 200:
            length = headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) != self.size:
                raise FetchError(
                    "size_mismatch", f"server has {int(length)} bytes, expected {self.size}", url
                )
            if offset:
                part.restart()
            return True
        raise FetchError("http_status", f"HTTP {status} {getattr(resp, 'reason', '') or ''}", url)

    def _receive(self, resp: Any, url: str, part: PartFile) -> None:
        with Interrupter(resp, self.cancel):
            while True:
                self._check_cancel(url)
                try:
                    data = read_chunk(resp, self.amount, url)
                except FetchError:
                    self._check_cancel(url)
                    raise
                if not data:
                    self._check_cancel(url)
                    return
                if part.length + len(data) > self.size:
                    self._drop_part()
                    raise FetchError("too_large", f"server sent more than {self.size} bytes", url)
                part.append(data)
                self.received += len(data)
                self._report(part.length)
                if self.bucket is not None:
                    self._pace(len(data), url)

    def _pace(self, n: int, url: str) -> None:
        assert self.bucket is not None
        delay = self.bucket.take(n, time.monotonic())
        if delay <= 0:
            return
        if self.cancel is not None:
            if self.cancel.wait(delay):
                self._check_cancel(url)
        else:
            time.sleep(delay)

    def _finish(self, url: str) -> None:
        part = self.open_part()
        digest = part.hexdigest()
        if digest != self.sha256:
            self._drop_part()
            raise FetchError("hash_mismatch", f"sha256 {digest}, expected {self.sha256}", url)
        part.commit(self.dest)
        self.part = None
        self._report(self.size, force=True)

    def _drop_part(self) -> None:
        if self.part is not None:
            self.part.discard()
            self.part = None

    def _report(self, done: int, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._reported_at >= PROGRESS_INTERVAL:
            self._reported_at = now
            self.progress(done, self.size)

    def _check_cancel(self, url: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise FetchError("cancelled", "the fetch was cancelled; the .part is kept", url)
