"""SQLite, the embedded default: one file, WAL, ``synchronous=FULL`` (a commit the collector
acknowledges survives a power cut). Several collector processes may share the file; SQLite
takes one writer at a time (``BEGIN IMMEDIATE``, with a generous busy timeout)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.cli.county.storage.base import SqlStorage, StorageError


class SqliteStorage(SqlStorage):
    types = {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "blob": "BLOB"}
    greatest = "max"
    least = "min"
    for_update = ""
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the SQLite database {self.path}: {exc}") from None
        self.migrate()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self.db.execute(sql, params)

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        cur = self.db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def close(self) -> None:
        self.db.close()
