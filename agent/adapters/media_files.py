"""Course media on disk: resolving paths safely and checking integrity.

A media path from a schedule can never escape the content root: no absolute paths, no ``..``,
no NUL, and no symlink that resolves outside the root. The sha256 of a large video can take
seconds on a small board, so results are cached by (device, inode, size, mtime).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path, PurePosixPath


class MediaError(Exception):
    """The media cannot be played; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def resolve(content_root: Path, media: str) -> Path:
    """The real path of ``media`` under ``content_root``, or MediaError."""
    if "\x00" in media or "\\" in media:
        raise MediaError("bad_path", f"media path {media!r} contains forbidden characters")
    rel = PurePosixPath(media)
    if rel.is_absolute() or any(p == ".." for p in rel.parts) or not rel.parts:
        raise MediaError("bad_path", f"media path {media!r} must stay inside the content folder")
    root = Path(content_root).resolve()
    candidate = root.joinpath(*rel.parts)
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise MediaError("missing", f"media file {media} is missing from {root}") from None
    except (OSError, RuntimeError) as exc:
        raise MediaError("unreadable", f"media file {media} cannot be opened: {exc}") from None
    if real != root and root not in real.parents:
        raise MediaError("bad_path", f"media {media} points outside the content folder ({real})")
    if not real.is_file():
        raise MediaError("missing", f"media {media} is not a regular file")
    if not os.access(real, os.R_OK):
        raise MediaError("unreadable", f"media file {media} is not readable")
    return real


class HashCache:
    """sha256 results keyed by file identity, so each file is read once per change.

    Bounded: every new version of a file adds an entry, so at ``max_entries`` the least recently
    used one is forgotten (``evictions`` counts them); forgetting costs only a second reading.
    """

    def __init__(self, max_entries: int = 512) -> None:
        if max_entries < 1:
            raise ValueError(f"HashCache max_entries must be at least 1, not {max_entries}")
        self.max_entries = max_entries
        self.evictions = 0
        self._cache: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    @staticmethod
    def _key(path: Path) -> tuple[int, int, int, int]:
        st = path.stat()
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def cached(self, path: Path) -> bool:
        """Whether the current version of ``path`` has its digest cached."""
        return self._key(path) in self._cache

    def sha256(self, path: Path) -> str:
        key = self._key(path)
        digest = self._cache.get(key)
        if digest is not None:
            self._cache.move_to_end(key)
            return digest
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        digest = h.hexdigest()
        self._cache[key] = digest
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
            self.evictions += 1
        return digest


def check(content_root: Path, media: str, sha256: str | None, cache: HashCache) -> Path:
    """Resolve and verify a media file; raise MediaError with the reason when it must not play."""
    path = resolve(content_root, media)
    if sha256:
        try:
            actual = cache.sha256(path)
        except OSError as exc:
            raise MediaError("unreadable", f"media file {media} cannot be read: {exc}") from None
        if actual != sha256:
            raise MediaError(
                "checksum",
                f"media file {media} is damaged or wrong (sha256 {actual[:12]}…, expected {sha256[:12]}…)",
            )
    return path
