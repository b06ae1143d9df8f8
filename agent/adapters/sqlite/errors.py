"""What a failed store operation means, as data: the exceptions and the short reason words.

Kept apart from the connection code so that callers (the runtime's write-trouble handling,
the daemon's start-up message) can name a trouble without opening anything.
"""

from __future__ import annotations

import errno
import sqlite3


class StoreError(Exception):
    """The store cannot be opened as it is; the message says what, where and what a person can do."""


class StoreCorrupt(StoreError):
    """The database file failed its integrity check."""


class StoreLocked(StoreError):
    """Another process kept the database locked for longer than the agent waits."""


class StoreRefused(StoreError):
    """A second damaged store in one boot: not moved aside again until a person has looked."""


class StoreUnavailable(StoreError):
    """The database exists but can be neither written nor read, or a new one cannot be made."""


# SQLite primary result codes (the low byte of ``sqlite_errorcode``).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR = 5, 6, 8, 10
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_PERM, _SQLITE_NOTADB = 11, 13, 14, 3, 26
_SQLITE_IOERR_SHMSIZE = _SQLITE_IOERR | (19 << 8)  # the -shm file cannot grow: no space left

# What a failed store operation means, as a short word (also the ``reason`` in alarms).
CORRUPT, LOCKED, FULL, READ_ONLY, IO_ERROR, OTHER = (
    "corrupt",
    "locked",
    "full",
    "read-only",
    "io-error",
    "other",
)
# Troubles of the whole store (not of one write): every write fails until they end.
STORE_TROUBLES = (LOCKED, FULL, READ_ONLY, IO_ERROR)

MOVED_MARKER = "store-moved-aside.json"


def classify_error(exc: BaseException) -> str:
    """What a failed store operation means: corrupt, locked, full, read-only, io-error or other.

    ``sqlite3.OperationalError`` (locked, read-only, disk full, I/O error) is a subclass of
    ``DatabaseError``, so the class says nothing about corruption: the result code does.
    """
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return FULL
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return READ_ONLY
        return IO_ERROR
    if not isinstance(exc, sqlite3.Error):
        return OTHER
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by the sqlite3 module itself, not by SQLite
        text = str(exc).lower()
        return CORRUPT if "malformed" in text or "not a database" in text else OTHER
    primary = code & 0xFF
    if code == _SQLITE_IOERR_SHMSIZE or primary == _SQLITE_FULL:
        return FULL
    return {
        _SQLITE_CORRUPT: CORRUPT,
        _SQLITE_NOTADB: CORRUPT,
        _SQLITE_BUSY: LOCKED,
        _SQLITE_LOCKED: LOCKED,
        _SQLITE_READONLY: READ_ONLY,
        _SQLITE_PERM: READ_ONLY,
        _SQLITE_CANTOPEN: READ_ONLY,
        _SQLITE_IOERR: IO_ERROR,
    }.get(primary, OTHER)
