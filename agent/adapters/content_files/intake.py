"""Taking course files from a satellite receive folder or a USB stick.

A datacast receiver writes a file slowly, in pieces, and a stick may hold stale or damaged
copies; so a file is taken only when it has exactly the wanted size, has stopped changing for
``settle_seconds``, and its sha256 matches. It is then hard-linked (same filesystem: instant, no
extra space) or copied through ``.partial`` and renamed into place, so the content folder never
holds a half file. Symlinks in the intake folder are never followed: a stick must not be able to
make the agent read (or, with ``move``, delete) files outside it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from agent.adapters.content_files.folder import ContentFolder
from agent.adapters.content_files.hashes import FileChanged, FileHashes, Key, key_of
from agent.runtime.files import fsync_dir

log = logging.getLogger(__name__)

SHA256 = re.compile(r"[0-9a-f]{64}")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# A hard link that the filesystem refuses is not an error: the file is copied instead.
NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EACCES)


class IntakeError(Exception):
    """The content folder's disk is full; ``taken`` lists what landed before it filled up."""

    def __init__(self, message: str, *, reason: str, taken: list[str]) -> None:
        super().__init__(message)
        self.reason = reason
        self.taken = taken


def take_from_folder(
    folder: Path,
    wants: Iterable[tuple[str, int, str]],
    content: ContentFolder,
    *,
    move: bool,
    hashes: FileHashes | None = None,
    settle_seconds: float = 2.0,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Put every wanted (path, size, sha256) found in ``folder`` into ``content``.

    Returns the content paths that landed. ``move=True`` (satellite) removes a source once it is
    in place, and also a source that duplicates a file already verified there, so the receive
    folder does not fill up with repeats; ``move=False`` (USB) never touches the source.
    ``hashes`` should live as long as the caller polls the folder: it is what keeps a complete
    file from being read twice and a wrong one from being read again until it changes (it
    defaults to the content folder's cache). A file that changed within ``settle_seconds`` of
    ``wall()``, or (clock not trusted) was first seen in this version less than
    ``settle_seconds`` of ``monotonic()`` ago, is left for a later call.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"intake folder {folder} is not a directory")
    hashes = hashes if hashes is not None else content.hashes
    by_size = _index(wants, content)
    present: dict[str, bool] = {}

    def is_present(path: str, size: int, sha: str) -> bool:
        if path not in present:
            present[path] = content.verified(path, size, sha)
        return present[path]

    taken: list[str] = []
    for src, st in _regular_files(folder):
        candidates = by_size.get(st.st_size)
        if not candidates:
            continue
        pending = [(p, sha) for p, sha in candidates if not is_present(p, st.st_size, sha)]
        if not pending and not move:
            continue
        key = key_of(st)
        settled_at = hashes.first_seen(key, monotonic())
        if wall() - st.st_mtime < settle_seconds and monotonic() - settled_at < settle_seconds:
            continue
        try:
            digest = hashes.sha256(src, follow_symlinks=False)
            if key_of(os.lstat(src)) != key:
                continue
        except OSError as exc:
            log.debug("intake: %s not read now: %s", src, exc)
            continue
        matches = [p for p, sha in pending if sha == digest]
        duplicate = any(sha == digest for _, sha in candidates)
        for path in matches:
            try:
                landed = _install(src, key, digest, content.dest(path), content, hashes)
            except OSError as exc:
                if exc.errno in DISK_FULL:
                    raise IntakeError(
                        f"no space in the content folder {content.root} for {path} "
                        f"({st.st_size} bytes) from {src}",
                        reason="disk",
                        taken=taken,
                    ) from exc
                log.warning("intake: cannot take %s from %s: %s", path, src, exc)
                continue
            if landed:
                present[path] = True
                taken.append(path)
                log.info("intake: took %s from %s", path, src)
        if move and duplicate and all(present.get(p) for p, sha in candidates if sha == digest):
            try:
                os.unlink(src)
            except OSError as exc:
                log.warning("intake: cannot remove %s after taking it: %s", src, exc)
    return taken


def _index(
    wants: Iterable[tuple[str, int, str]], content: ContentFolder
) -> dict[int, list[tuple[str, str]]]:
    """Wanted (path, sha256) by size, each checked so a bad want fails before any file moves."""
    by_size: dict[int, list[tuple[str, str]]] = {}
    seen: set[str] = set()
    for want in wants:
        try:
            path, size, sha = want
        except (TypeError, ValueError):
            raise ValueError(f"intake want must be (path, size, sha256), not {want!r}") from None
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"intake want {path!r}: size must be a positive integer, not {size!r}")
        if not isinstance(sha, str) or not SHA256.fullmatch(sha):
            raise ValueError(f"intake want {path!r}: sha256 must be 64 lowercase hex, not {sha!r}")
        content.dest(path)
        if path in seen:
            continue
        seen.add(path)
        by_size.setdefault(size, []).append((path, sha))
    return by_size


def _regular_files(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under ``folder``, never through a symlink, dot names skipped.

    Dot names are how receivers and copy tools mark files still being written.
    """
    stack = [folder]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            log.warning("intake: cannot list %s: %s", directory, exc)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(st.st_mode):
                yield Path(entry.path), st


def _install(
    src: Path, key: Key, digest: str, dest: Path, content: ContentFolder, hashes: FileHashes
) -> bool:
    """Link or copy ``src`` (the version ``key``) to ``dest`` whole; False if it changed."""
    part_dir = content.partial_dir
    tmp = part_dir / f"{digest}.{secrets.token_hex(4)}.intake"
    try:
        landed_key = None
        if os.stat(part_dir).st_dev == key[0]:
            landed_key = _link(src, tmp, key)
        if landed_key is None:
            landed_key = _copy(src, tmp, key, digest, hashes.chunk)
        if landed_key is None:
            hashes.forget(key)
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)
    for cache in {id(hashes): hashes, id(content.hashes): content.hashes}.values():
        cache.remember(landed_key, digest)
    return True


def _link(src: Path, tmp: Path, key: Key) -> Key | None:
    """Hard-link ``src`` to ``tmp``; None (nothing left behind) if the filesystem refuses."""
    try:
        os.link(src, tmp, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in NO_LINK:
            return None
        raise
    if key_of(os.lstat(tmp)) != key:
        # The name now points at another file than the one hashed: leave it for next time.
        tmp.unlink()
        raise FileChanged(f"{src} changed before it could be linked")
    return key


def _copy(src: Path, tmp: Path, key: Key, digest: str, chunk: int) -> Key | None:
    """Copy ``src`` to ``tmp`` hashing on the way, fsync; None if the bytes differ from ``digest``."""
    h = hashlib.sha256()
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if key_of(os.fstat(fd_in)) != key:
            raise FileChanged(f"{src} changed before it could be copied")
        fd_out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            buf = bytearray(chunk)
            view = memoryview(buf)
            while n := os.readv(fd_in, [buf]):
                h.update(view[:n])
                done = 0
                while done < n:
                    done += os.write(fd_out, view[done:n])
            os.fsync(fd_out)
            landed = key_of(os.fstat(fd_out))
        finally:
            os.close(fd_out)
        changed = key_of(os.fstat(fd_in)) != key
    finally:
        os.close(fd_in)
    if changed or h.hexdigest() != digest:
        tmp.unlink()
        return None
    return landed
