"""SQLite store: the single source of truth across restarts and power cuts.

WAL mode with synchronous=FULL: measured on this kind of machine, it survived every simulated
power cut with no lost commit, where NORMAL lost acknowledged commits (see shared design notes).
Readers (stationctl) open the same file read-only and never block the writer.

Tables
- ``records``  one row per viewing record; ``outcome`` is NULL while the record is open.
- ``outbox``   messages waiting to leave the terminal, in order; removed only when confirmed.
- ``events``   the agent's own event log (notable events, not debug chatter) for stationctl.
- ``alarms``   current and past alarms (raised/cleared), one row per raise.
- ``kv``       small durable values (session counter, plan cursor, seen command ids...).
"""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.domain.records import RECORD_COLUMNS, Record, utc_now_text
from agent.runtime.files import atomic_write

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id        TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL UNIQUE,
    occurrence_key   TEXT,
    terminal         TEXT NOT NULL,
    course_id        TEXT NOT NULL,
    title            TEXT NOT NULL,
    media            TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    schedule_layer   TEXT,
    schedule_version INTEGER,
    item_id          TEXT,
    planned_start    TEXT,
    started_at       TEXT,
    ended_at         TEXT,
    played_seconds   REAL NOT NULL DEFAULT 0,
    media_duration   REAL,
    position         REAL NOT NULL DEFAULT 0,
    completion       REAL NOT NULL DEFAULT 0,
    outcome          TEXT,
    reason           TEXT,
    clock_state      TEXT NOT NULL,
    boot_id          TEXT NOT NULL,
    attendance       INTEGER,
    resumed_from     TEXT,
    rev              INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_open ON records(outcome) WHERE outcome IS NULL;
CREATE INDEX IF NOT EXISTS records_occurrence ON records(occurrence_key);
CREATE INDEX IF NOT EXISTS records_planned ON records(planned_start);
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    topic      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    qos        INTEGER NOT NULL DEFAULT 1,
    retain     INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_msg ON outbox(msg_id);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      TEXT NOT NULL,
    level   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    data    TEXT
);
CREATE TABLE IF NOT EXISTS alarms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    raised_at  TEXT NOT NULL,
    cleared_at TEXT,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS alarms_active ON alarms(name) WHERE cleared_at IS NULL;
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Every table and index SCHEMA makes: a store that has them all opens without a write.
SCHEMA_OBJECTS = frozenset(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", SCHEMA))


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


class Store:
    """The agent's read-write handle. One per process, used from the core thread only.

    ``degraded`` says why the store is open in a fallback mode (read-only, or holding the file
    exclusively because the disk is full): every write then fails and the runtime holds what must
    not be lost until ``reopen()`` succeeds.
    """

    # How long ``open_or_recover`` waits, in all, for another process to release the database.
    lock_wait_s: float = 30.0

    def __init__(self, path: Path, *, readonly: bool = False, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.timeout = timeout
        self.degraded: str | None = None
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
        self.db.row_factory = sqlite3.Row
        try:
            if readonly:
                self.db.execute("PRAGMA query_only=1")
            else:
                self._prepare()
        except BaseException:
            self.db.close()  # a half-open handle would keep locks and the -shm mapping
            raise

    def _prepare(self) -> None:
        """WAL, FULL sync, the schema: writes only what is missing, so a healthy store opens
        without a write (a writer holding the lock or a full disk does not stop the open)."""
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        # Fewer, larger checkpoints: every WAL page written back costs SD-card wear.
        self.db.execute("PRAGMA wal_autocheckpoint=256")
        if not self._has_schema():
            self.db.executescript(SCHEMA)
        if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _has_schema(self) -> bool:
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        return names >= SCHEMA_OBJECTS

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open_or_recover(
        cls, path: Path, *, boot: str | None = None, timeout: float = 5.0
    ) -> tuple[Store, Path | None]:
        """Open the store; only a corrupt file is moved aside (with a timestamp) for a fresh one.

        Returns the store and the path the corrupt file was moved to, if any, so the caller can
        raise an alarm. Losing a corrupt store is bad; refusing to play for months is worse. But
        nothing else moves a store aside: a lock is waited for (``lock_wait_s`` in all, then
        StoreLocked); a full disk or a read-only file system opens the store in a degraded mode
        (``degraded``) that reads but cannot write. A second corruption in the same boot raises
        StoreRefused: something is wrong with the card and a person must look.
        """
        path = Path(path)
        deadline = time.monotonic() + cls.lock_wait_s
        while True:
            wait = max(0.05, min(timeout, deadline - time.monotonic()))
            try:
                return cls._open_checked(path, wait), None
            except StoreCorrupt as exc:
                return cls._recover(path, boot, str(exc), timeout)
            except (sqlite3.Error, OSError) as exc:
                kind = classify_error(exc)
                if kind == CORRUPT:
                    return cls._recover(path, boot, str(exc), timeout)
                if kind == LOCKED:
                    if time.monotonic() < deadline:
                        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                        continue
                    raise StoreLocked(_locked_message(path, cls.lock_wait_s)) from exc
                if not path.exists():
                    raise StoreUnavailable(
                        f"cannot create the database {path} ({kind}: {exc}); "
                        f"free space in or make {path.parent} writable"
                    ) from exc
                return cls._open_degraded(path, kind, exc, wait), None

    @classmethod
    def _open_checked(cls, path: Path, timeout: float) -> Store:
        """A normal read-write open, then ``quick_check``: StoreCorrupt when it reports damage."""
        store = cls(path, timeout=timeout)
        try:
            result = store.db.execute("PRAGMA quick_check").fetchone()[0]
        except BaseException:
            store.close()
            raise
        if result != "ok":
            store.close()
            raise StoreCorrupt(f"quick_check: {result}")
        return store

    @classmethod
    def _recover(
        cls, path: Path, boot: str | None, reason: str, timeout: float
    ) -> tuple[Store, Path]:
        moved = _move_aside(path, boot or _this_boot(), reason)
        try:
            return cls(path, timeout=timeout), moved
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(
                f"the damaged database was moved aside to {moved}, but a new one cannot be "
                f"created at {path} ({classify_error(exc)}: {exc}); free space in {path.parent}"
            ) from exc

    @classmethod
    def _open_degraded(cls, path: Path, kind: str, cause: BaseException, timeout: float) -> Store:
        """Open a store that cannot be written, for reading: the agent plays on and holds writes.

        Measured on a full tmpfs and on a read-only one (SQLite 3.40): a read-only open works
        where the ``-shm`` file exists (left by a crash); with a full disk and no ``-shm`` only
        EXCLUSIVE locking mode reads (it keeps the WAL index in memory, so no other process can
        read meanwhile); on a read-only mount with no ``-shm`` only ``immutable`` reads, and it
        ignores the WAL, so it is used only when there is no WAL content to miss. Corruption
        found here is still corruption, but it cannot be moved aside: say so instead.
        """
        wal = Path(f"{path}-wal")
        attempts = [
            (f"file:{path}?mode=ro", False, "read-only"),
            (f"file:{path}", True, "exclusive (no space for the shared index)"),
        ]
        if not wal.exists() or wal.stat().st_size == 0:
            attempts.append((f"file:{path}?mode=ro&immutable=1", False, "read-only (immutable)"))
        errors = [f"{kind}: {cause}"]
        for uri, exclusive, how in attempts:
            db = sqlite3.connect(
                uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            try:
                if exclusive:
                    db.execute("PRAGMA locking_mode=EXCLUSIVE")
                result = db.execute("PRAGMA quick_check").fetchone()[0]
            except sqlite3.Error as exc:
                db.close()
                errors.append(f"{how}: {exc}")
                continue
            if result != "ok":
                db.close()
                raise StoreUnavailable(
                    f"the database {path} is damaged (quick_check: {result}) and cannot be moved "
                    f"aside ({kind}: {cause}); a person must replace it"
                )
            store = cls.__new__(cls)
            store.path, store.readonly, store.timeout, store.db = path, False, timeout, db
            store.db.row_factory = sqlite3.Row
            store.degraded = f"{kind}; opened {how}"
            if not store._has_schema():
                store.close()
                raise StoreUnavailable(f"the database {path} has no agent tables and is {kind}")
            return store
        raise StoreUnavailable(
            f"the database {path} can be neither written nor read: " + "; ".join(errors)
        )

    def reopen(self) -> bool:
        """Leave the degraded mode once the file can be written again; True when it did.

        The degraded handle is closed first (in EXCLUSIVE mode it holds the lock a new handle
        needs); when the normal open still fails, the degraded one is made again.
        """
        if self.degraded is None:
            return True
        self.db.close()
        try:
            fresh = Store(self.path, timeout=self.timeout)
        except (sqlite3.Error, OSError) as exc:
            again = Store._open_degraded(self.path, classify_error(exc), exc, self.timeout)
            self.db, self.degraded = again.db, again.degraded
            return False
        self.db, self.degraded = fresh.db, None
        return True

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself failed (disk full, busy): SQLite may leave the transaction
            # open, and every later BEGIN would then fail.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    # -- kv --------------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.db).execute(
            "INSERT INTO kv(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def bump_counter(self, key: str) -> int:
        with self.transaction() as conn:
            value = int(self.get(key, "0") or 0) + 1
            self.put(key, str(value), conn)
        return value

    # -- records ---------------------------------------------------------------------------

    def next_record_seq(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()
        return int(row[0]) + 1

    def insert_record(self, rec: Record, conn: sqlite3.Connection | None = None) -> int:
        """Insert ``rec``; returns the rows written (1), so a caller can tell a write happened."""
        cols = ", ".join(RECORD_COLUMNS)
        marks = ", ".join("?" for _ in RECORD_COLUMNS)
        values = [getattr(rec, c) for c in RECORD_COLUMNS]
        cur = (conn or self.db).execute(f"INSERT INTO records({cols}) VALUES({marks})", values)
        return cur.rowcount

    def update_record(self, rec: Record, conn: sqlite3.Connection | None = None) -> int:
        """Update ``rec`` by its id; returns the rows matched (0: no such record, a bug)."""
        cols = [c for c in RECORD_COLUMNS if c != "record_id"]
        assignments = ", ".join(f"{c}=?" for c in cols)
        values = [getattr(rec, c) for c in cols] + [rec.record_id]
        cur = (conn or self.db).execute(
            f"UPDATE records SET {assignments} WHERE record_id=?", values
        )
        return cur.rowcount

    def checkpoint_record(
        self, record_id: str, position: float, played: float, completion: float
    ) -> int:
        """Save an open record's progress; returns the rows matched (0: no such record)."""
        cur = self.db.execute(
            "UPDATE records SET position=?, played_seconds=?, completion=? WHERE record_id=?",
            (position, played, completion, record_id),
        )
        return cur.rowcount

    def get_record(self, record_id: str) -> Record | None:
        row = self.db.execute("SELECT * FROM records WHERE record_id=?", (record_id,)).fetchone()
        return Record.from_row(row) if row else None

    def open_records(self) -> list[Record]:
        rows = self.db.execute("SELECT * FROM records WHERE outcome IS NULL ORDER BY seq")
        return [Record.from_row(r) for r in rows]

    def records(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        course_id: str | None = None,
        limit: int | None = None,
    ) -> list[Record]:
        sql = "SELECT * FROM records WHERE 1=1"
        args: list[Any] = []
        if since:
            sql += " AND COALESCE(started_at, planned_start) >= ?"
            args.append(since)
        if until:
            sql += " AND COALESCE(started_at, planned_start) < ?"
            args.append(until)
        if course_id:
            sql += " AND course_id = ?"
            args.append(course_id)
        if limit:
            sql += f" ORDER BY seq DESC LIMIT {int(limit)}"
            rows = list(self.db.execute(sql, args))[::-1]
            return [Record.from_row(r) for r in rows]
        sql += " ORDER BY seq"
        return [Record.from_row(r) for r in self.db.execute(sql, args)]

    def occurrence_outcomes(self, keys: Iterable[str]) -> dict[str, list[tuple[str | None, str]]]:
        """For each occurrence key, the (outcome, record_id) of its records, oldest first."""
        out: dict[str, list[tuple[str | None, str]]] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.db.execute(
                f"SELECT occurrence_key, outcome, record_id FROM records WHERE occurrence_key IN ({marks}) ORDER BY seq",
                chunk,
            )
            for key, outcome, rid in rows:
                out.setdefault(key, []).append((outcome, rid))
        return out

    # -- outbox ----------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        msg_id: str,
        topic: str,
        payload: dict[str, Any] | str,
        *,
        qos: int = 1,
        retain: bool = False,
        replace: bool = False,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        """Put a message in the outbox. ``replace`` drops an unsent older copy with the same id."""
        c = conn or self.db
        text = (
            payload
            if isinstance(payload, str)
            else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        )
        if replace:
            c.execute("DELETE FROM outbox WHERE msg_id=? AND kind=?", (msg_id, kind))
        c.execute(
            "INSERT INTO outbox(msg_id, kind, topic, payload, qos, retain, created_at) VALUES(?,?,?,?,?,?,?)",
            (msg_id, kind, topic, text, qos, int(retain), utc_now_text()),
        )

    def outbox_depth(self, kind: str | None = None) -> int:
        if kind:
            return self.db.execute("SELECT COUNT(*) FROM outbox WHERE kind=?", (kind,)).fetchone()[
                0
            ]
        return self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    # -- events ----------------------------------------------------------------------------

    def add_event(
        self,
        level: str,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
        ts: str | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> None:
        (conn or self.db).execute(
            "INSERT INTO events(ts, level, kind, message, data) VALUES(?,?,?,?,?)",
            (
                ts or utc_now_text(),
                level,
                kind,
                message,
                json.dumps(data, ensure_ascii=False) if data else None,
            ),
        )


def _this_boot() -> str:
    from agent.adapters.kernel_clock import (
        boot_id,  # agent.adapters.kernel_clock imports this module
    )

    return boot_id()


def _read_marker(marker: Path) -> dict[str, Any]:
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _move_aside(path: Path, boot: str, reason: str) -> Path:
    """Move a corrupt store (and its -wal/-shm) aside, at most once per boot.

    The marker beside the store names the boot that last moved one aside; a second corruption
    in the same boot means the card itself is failing, and moving store after store aside would
    lose the evidence and the data: refuse until a person removes the marker (or the file).
    """
    marker = path.parent / MOVED_MARKER
    prior = _read_marker(marker)
    if prior.get("boot_id") == boot:
        raise StoreRefused(
            f"the database {path} is damaged ({reason}), and a damaged database was already "
            f"moved aside in this boot (to {prior.get('moved_to')} at {prior.get('at')}); the "
            f"storage may be failing, so it is not moved aside again. A person must check the "
            f"card, then delete {marker} (or move {path} away) and restart the agent"
        )
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while moved.exists():
        n += 1
        moved = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    note = {"boot_id": boot, "moved_to": moved.name, "at": utc_now_text(), "reason": reason}
    try:
        atomic_write(marker, json.dumps(note, ensure_ascii=False).encode())
    except OSError as exc:
        raise StoreCorrupt(
            f"the database {path} is damaged ({reason}) but {marker} cannot be written ({exc}), "
            f"so it is not moved aside; free space in {path.parent}"
        ) from exc
    os.replace(path, moved)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(moved) + suffix))
    return moved


def _holders(path: Path) -> list[str]:
    """Processes that have the database (or its -wal/-shm) open, as "pid (name)"."""
    names = {str(path), str(path) + "-wal", str(path) + "-shm"}
    found: list[str] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(os.readlink(fd) in names for fd in fds):
                comm = (proc / "comm").read_text().strip()
                found.append(f"{proc.name} ({comm})")
        except OSError:
            continue
    return found


def _locked_message(path: Path, waited: float) -> str:
    holders = _holders(path.resolve())
    who = ", ".join(holders) if holders else "no process found; a file lock on another host?"
    return (
        f"the database {path} stayed locked for {waited:.0f} s by another process "
        f"(holding it open: {who}); is a second agent or a stuck tool running? Stop it and "
        f"restart the agent"
    )
