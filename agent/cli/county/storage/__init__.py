"""Where the collector keeps what it receives: SQLite (a file) or PostgreSQL (a URL), behind the
one :class:`~agent.cli.county.storage.base.Storage` interface."""

from __future__ import annotations

from pathlib import Path

from agent.cli.county.storage.base import Item, Storage, StorageError, StoreResult

__all__ = ["Item", "Storage", "StorageError", "StoreResult", "is_postgres", "open_storage"]


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def open_storage(db: str | Path) -> Storage:
    """The storage for ``--db``: a ``postgresql://`` URL, else a SQLite file path. The schema is
    created or migrated on open. psycopg is imported only for PostgreSQL."""
    text = str(db)
    if is_postgres(text):
        try:
            from agent.cli.county.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise StorageError(
                f"PostgreSQL needs psycopg 3 (Debian: apt install python3-psycopg): {exc}"
            ) from None
        return PostgresStorage(text)
    if "://" in text:
        raise StorageError(f"--db {text!r}: use a file path or a postgresql:// URL")
    from agent.cli.county.storage.sqlite import SqliteStorage

    return SqliteStorage(Path(text))
