"""``fetch_file``: mirrors in order until one yields the verified file.

Why a cut connection is resumed on the same mirror within the call: on a rural line cuts are
the common case and the .part already holds the bytes; going back to the caller's back-off
after each cut would make a long file take hours. A resume is only retried while it makes
progress (and at most ``MAX_RESUMES`` times per mirror), so a dead mirror still fails fast.
A stall, a wrong status, a wrong size or a wrong hash moves on to the next mirror.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .client import make_pool
from .errors import FetchError, FetchResult
from .transfer import Transfer

MAX_RESUMES = 100
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FINAL = frozenset({"cancelled", "disk"})


def fetch_file(
    sources: Sequence[str],
    dest: Path,
    size: int,
    sha256: str,
    *,
    part_dir: Path,
    max_kbps: float | None = None,
    stall_seconds: float = 60,
    connect_timeout: float = 20,
    ca_file: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    chunk: int = 256 * 1024,
) -> FetchResult:
    """Fetch ``dest`` (``size`` bytes, ``sha256``) from the first mirror that delivers it.

    Resumes from ``part_dir/{sha256}.part``; raises FetchError (the last attempt's reason, with
    every attempt listed in the message) when no mirror delivers a verified file.
    """
    _check_args(sources, size, sha256, max_kbps, stall_seconds, connect_timeout, chunk)
    started = time.monotonic()
    pool = make_pool(connect_timeout, stall_seconds, ca_file)
    transfer = Transfer(
        pool=pool,
        dest=Path(dest),
        part_path=Path(part_dir) / f"{sha256}.part",
        size=size,
        sha256=sha256,
        max_kbps=max_kbps,
        progress=progress,
        cancel=cancel,
        chunk=chunk,
    )
    failures: list[FetchError] = []
    try:
        if cancel is not None and cancel.is_set():
            raise FetchError("cancelled", "cancelled before the first request")
        transfer.resumed_from = transfer.open_part().length
        for url in sources:
            if _try_mirror(transfer, url, failures):
                return FetchResult(
                    path=Path(dest),
                    mirror=url,
                    bytes_received=transfer.received,
                    resumed_from=transfer.resumed_from,
                    seconds=time.monotonic() - started,
                )
    finally:
        transfer.close()
        pool.clear()
    last = failures[-1]
    if len(failures) == 1:
        raise last
    summary = "; ".join(f"{e.mirror}: {e.reason} ({e.detail})" for e in failures)
    raise FetchError(last.reason, f"{len(failures)} attempts failed: {summary}", last.mirror)


def _try_mirror(transfer: Transfer, url: str, failures: list[FetchError]) -> bool:
    resumes = 0
    while True:
        before = transfer.received
        try:
            transfer.attempt(url)
            return True
        except FetchError as e:
            failures.append(e)
            if e.reason in _FINAL:
                raise
            progressed = transfer.received > before
            if e.reason == "network" and progressed and resumes < MAX_RESUMES:
                resumes += 1
                continue
            return False


def _check_args(
    sources: Sequence[str],
    size: int,
    sha256: str,
    max_kbps: float | None,
    stall_seconds: float,
    connect_timeout: float,
    chunk: int,
) -> None:
    if isinstance(sources, str) or not sources:
        raise ValueError(f"fetch_file: sources must be a non-empty list of URLs, got {sources!r}")
    for url in sources:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"fetch_file: source {url!r} is not an http:// or https:// URL")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"fetch_file: size must be a positive integer, got {size!r}")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise ValueError(f"fetch_file: sha256 must be 64 lowercase hex digits, got {sha256!r}")
    if max_kbps is not None and not max_kbps > 0:
        raise ValueError(f"fetch_file: max_kbps must be > 0 or None, got {max_kbps!r}")
    if not stall_seconds > 0 or not connect_timeout > 0:
        raise ValueError(
            f"fetch_file: stall_seconds and connect_timeout must be > 0, "
            f"got {stall_seconds!r}, {connect_timeout!r}"
        )
    if chunk < 1024:
        raise ValueError(f"fetch_file: chunk must be at least 1024 bytes, got {chunk!r}")
