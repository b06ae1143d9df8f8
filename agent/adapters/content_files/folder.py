"""The content folder: where verified course files live, and what they cost in disk.

Every path handed in comes from a manifest or a schedule, so it is confined before any file is
touched: relative, no ``..``, no part starting with "." (dot names are the pipeline's own:
``.partial`` holds downloads and copies in progress, and ``scan`` skips them, so a file there
would be invisible to the budget), and no symlink that resolves outside the root.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from agent.adapters.content_files.hashes import FileHashes

PARTIAL = ".partial"


class ContentPathError(ValueError):
    """A path that would leave the content folder (or is not a usable file path at all)."""


class ContentFolder:
    """One content root on disk: confined paths, scans, verification, eviction, space."""

    def __init__(self, root: Path, hashes: FileHashes | None = None) -> None:
        self.root = Path(root)
        self.hashes = hashes if hashes is not None else FileHashes()

    @property
    def partial_dir(self) -> Path:
        """``root/.partial``, created on first use (same filesystem as the root, for renames)."""
        part = self.root / PARTIAL
        part.mkdir(parents=True, exist_ok=True)
        return part

    def dest(self, path: str) -> Path:
        """The absolute path of manifest path ``path`` inside the root, or ContentPathError.

        The returned path is under the root's real path; its last part may be a symlink that
        stays inside (replacing it then replaces the link, never a file outside).
        """
        rel = _relative(path)
        root = self.root.resolve()
        candidate = root.joinpath(*rel.parts)
        parent = _resolve(candidate.parent, path)
        for real in (_resolve(candidate, path), parent):
            if not real.is_relative_to(root):
                raise ContentPathError(
                    f"content path {path!r} leads outside the content folder {root} (to {real})"
                )
        return parent / candidate.name

    def scan(self) -> list[tuple[str, int, float]]:
        """(relative posix path, size, mtime) of every regular file, dot names skipped, sorted."""
        out: list[tuple[str, int, float]] = []
        if not self.root.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            base = Path(dirpath)
            for name in filenames:
                if name.startswith("."):
                    continue
                try:
                    st = os.lstat(base / name)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    rel = (base / name).relative_to(self.root).as_posix()
                    out.append((rel, st.st_size, st.st_mtime))
        out.sort()
        return out

    def used_bytes(self) -> int:
        """Total size of the files ``scan`` sees (what the ``max_gb`` budget counts)."""
        return sum(size for _, size, _ in self.scan())

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer can still use on the root's filesystem."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def verified(self, path: str, size: int, sha256: str) -> bool:
        """Whether ``path`` exists as a regular file of exactly this size and sha256.

        The size is checked first (free); the digest comes from the cache when this version of
        the file was hashed before. An unreadable file is simply not verified.
        """
        target = self.dest(path)
        try:
            st = os.stat(target)
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return False
            return self.hashes.sha256(target) == sha256
        except OSError:
            return False

    def evict(self, paths: Iterable[str]) -> int:
        """Delete these files (and directories left empty) and return the bytes freed.

        Every path is checked before anything is deleted, so one bad path deletes nothing.
        A missing file frees 0. A file with other hard links frees 0 too: its blocks stay.
        """
        root = self.root.resolve()
        wanted = list(paths)
        targets = [self.dest(path) for path in wanted]
        for path, target in zip(wanted, targets, strict=True):
            if target.is_dir() and not target.is_symlink():
                raise ContentPathError(f"cannot evict {path!r}: it is a directory in {root}")
        freed = 0
        for target in targets:
            try:
                st = os.lstat(target)
                os.unlink(target)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                freed += st.st_size
            _prune_empty(target.parent, root)
        return freed


def _relative(path: str) -> PurePosixPath:
    if not isinstance(path, str) or not path:
        raise ContentPathError(f"content path must be a non-empty string, not {path!r}")
    if "\x00" in path or "\\" in path:
        raise ContentPathError(f"content path {path!r} contains forbidden characters")
    rel = PurePosixPath(path)
    if not rel.parts or rel.name in ("", "."):
        raise ContentPathError(f"content path {path!r} must name a file")
    if rel.is_absolute():
        raise ContentPathError(f"content path {path!r} must be relative to the content folder")
    for part in rel.parts:
        if part == "..":
            raise ContentPathError(f"content path {path!r} must not contain '..'")
        if part.startswith("."):
            raise ContentPathError(f"content path {path!r}: no part may start with '.'")
    return rel


def _resolve(path: Path, original: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ContentPathError(f"content path {original!r} cannot be resolved: {exc}") from None


def _prune_empty(directory: Path, root: Path) -> None:
    """Remove ``directory`` and its parents while they are empty, stopping at ``root``."""
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
