"""The content folder's disk budget: room is made for a file by evicting what nobody needs soon.

A file is never evicted while it is wanted (a slot within the horizon, or the library) or while
the player holds it; the rest go least recently played first (``choose_evictions``). When the
wanted files alone do not fit, nothing is evicted and the caller alarms ``content_no_space``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.adapters.content_files import ContentFolder
from agent.domain.content_plan import OnDisk, Want, bytes_to_free, choose_evictions
from agent.runtime.config import ContentConfig


@dataclass
class Room:
    """The verdict for one file: it fits (after ``evicted`` went), or ``short`` says why not."""

    fits: bool
    evicted: list[str] = field(default_factory=list)
    freed: int = 0
    short: dict[str, Any] | None = None


class DiskBudget:
    def __init__(self, folder: ContentFolder, cfg: ContentConfig) -> None:
        self.folder = folder
        self.cfg = cfg

    def make_room(
        self, want: Want, keep: Collection[str], last_played: Mapping[str, float]
    ) -> Room:
        assert want.size is not None and want.sha256 is not None
        cfg, folder = self.cfg, self.folder
        part = folder.partial_dir / f"{want.sha256}.part"
        have = part.stat().st_size if part.exists() else 0
        files = folder.scan()
        used = sum(size for _, size, _ in files) + self.partial_bytes()
        max_bytes = int(cfg.max_gb * 1e9) if cfg.max_gb is not None else None
        min_free = int(cfg.min_free_mb * 1e6)
        need = bytes_to_free(want.size - have, used, max_bytes, folder.free_bytes(), min_free)
        if need <= 0:
            return Room(True)
        on_disk = [OnDisk(path, size, last_played.get(path), mtime) for path, size, mtime in files]
        victims = choose_evictions(on_disk, keep, need)
        if victims is None:
            short = {
                "file": want.path,
                "size": want.size,
                "short_bytes": need,
                "max_gb": cfg.max_gb,
                "min_free_mb": cfg.min_free_mb,
            }
            return Room(False, short=short)
        return Room(True, victims, folder.evict(victims))

    def partial_bytes(self) -> int:
        total = 0
        if self.folder.partial_dir.is_dir():
            for part in self.folder.partial_dir.iterdir():
                try:
                    total += part.stat().st_size
                except OSError:
                    pass
        return total

    def drop_stale_partials(self, wants: list[Want]) -> None:
        """A ``.part`` of a file no longer wanted (or a copy a crash left behind) only takes
        space."""
        keep = {f"{w.sha256}.part" for w in wants if w.sha256}
        if not self.folder.partial_dir.is_dir():
            return
        for part in self.folder.partial_dir.iterdir():
            if part.name not in keep:
                try:
                    part.unlink()
                except OSError:
                    pass
