"""What a fetch returns and how it fails: one exception with a reason the runtime can act on.

Why one exception with a ``reason`` rather than a class per failure: the caller (the content
worker) only decides "try later / alarm / give up" per reason and shows the reason to people;
the reason strings are part of the status shown by ``stationctl`` and sent to the county.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REASONS = frozenset(
    {
        "http_status",
        "hash_mismatch",
        "size_mismatch",
        "stalled",
        "network",
        "tls",
        "too_large",
        "cancelled",
        "disk",
    }
)


class FetchError(Exception):
    """A fetch that did not land a verified file. ``mirror`` is the URL that failed (or None)."""

    def __init__(self, reason: str, detail: str = "", mirror: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"FetchError: unknown reason {reason!r} (one of {sorted(REASONS)})")
        self.reason = reason
        self.detail = detail
        self.mirror = mirror
        where = f" from {mirror}" if mirror else ""
        super().__init__(f"{reason}{where}: {detail}" if detail else f"{reason}{where}")


@dataclass
class FetchResult:
    """A verified file in place. ``bytes_received`` counts body bytes over the network in this
    call (all attempts); ``resumed_from`` is the .part length found when the call began."""

    path: Path
    mirror: str
    bytes_received: int
    resumed_from: int
    seconds: float
