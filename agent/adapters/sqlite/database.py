"""The database file: opening it safely, its modes, transactions and the generic tables.

WAL mode with synchronous=FULL: measured on this kind of machine, it survived every simulated
power cut with no lost commit, where NORMAL lost acknowledged commits (see shared design notes).
Readers (stationctl) open the same file read-only and never block the writer.

``Database`` knows the file (open, recover, degraded modes, reopen) and the tables every part
writes (kv, outbox, events); ``agent.adapters.sqlite.store.Store`` adds the viewing records and
the per-purpose views. Schema: ``schema.py``; what a failure means: ``errors.py``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from agent.adapters.sqlite.errors import (
    CORRUPT,
    LOCKED,
    StoreCorrupt,
    StoreLocked,
    StoreUnavailable,
    classify_error,
)
from agent.adapters.sqlite.recovery import locked_message, move_aside
from agent.adapters.sqlite.schema import SCHEMA, SCHEMA_OBJECTS, SCHEMA_VERSION
from agent.domain.records import utc_now_text
from agent.runtime.boot import boot_id


class Database:
    """The agent's read-write handle on the file. One per process, used from the core thread only.

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
    ) -> tuple[Self, Path | None]:
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
                    raise StoreLocked(locked_message(path, cls.lock_wait_s)) from exc
                if not path.exists():
                    raise StoreUnavailable(
                        f"cannot create the database {path} ({kind}: {exc}); "
                        f"free space in or make {path.parent} writable"
                    ) from exc
                return cls._open_degraded(path, kind, exc, wait), None

    @classmethod
    def _open_checked(cls, path: Path, timeout: float) -> Self:
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
    ) -> tuple[Self, Path]:
        moved = move_aside(path, boot or boot_id(), reason)
        try:
            return cls(path, timeout=timeout), moved
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(
                f"the damaged database was moved aside to {moved}, but a new one cannot be "
                f"created at {path} ({classify_error(exc)}: {exc}); free space in {path.parent}"
            ) from exc

    @classmethod
    def _open_degraded(cls, path: Path, kind: str, cause: BaseException, timeout: float) -> Self:
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
            fresh = type(self)(self.path, timeout=self.timeout)
        except (sqlite3.Error, OSError) as exc:
            again = type(self)._open_degraded(self.path, classify_error(exc), exc, self.timeout)
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
