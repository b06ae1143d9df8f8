"""PostgreSQL through psycopg 3 (3.1 or newer: Debian 12's python3-psycopg is 3.1.7), for a
county that runs several collectors or keeps years of records.

Each batch is one transaction at READ COMMITTED; two collectors writing the same keys meet on
``ON CONFLICT`` and ``SELECT .. FOR UPDATE``, and a batch aborted for a deadlock or a
serialization failure is retried by the shared logic. Migrations take a transaction-scoped
advisory lock, so collectors started together migrate once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors

from agent.cli.county.storage.base import SqlStorage, StorageError

MIGRATION_LOCK = 0x636F756E7479  # any fixed number: "county"


class PostgresStorage(SqlStorage):
    types = {"serial": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION", "blob": "BYTEA"}
    greatest = "GREATEST"
    least = "LEAST"
    for_update = " FOR UPDATE"
    driver_errors = (psycopg.Error,)

    def __init__(self, url: str, connect_timeout: float = 10.0) -> None:
        self.url = _redacted(url)
        try:
            self.conn = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, int(connect_timeout))
            )
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"cannot connect to PostgreSQL at {self.url}: {first}") from None
        self.migrate()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def _lock_for_migration(self) -> None:
        self._execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def _execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), params)

    def _transient(self, exc: BaseException) -> bool:
        return isinstance(exc, errors.TransactionRollback)

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql.replace("?", "%s"), params)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        self.conn.close()


def _redacted(url: str) -> str:
    """The address without a password, for messages and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
