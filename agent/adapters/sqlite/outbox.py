"""The outbox queries the MQTT link runs (through the runtime's store, on the core thread).

Rows leave in id order, in two streams (records, everything else), and are confirmed by deleting
them: by row id (PUBACK) or, for records, by ``(record_id, rev)`` from the collector's
``record/ack``: a record re-queued with a higher ``rev`` (attendance added later) survives an ack
for the older revision. Enqueueing is ``Database.enqueue``, shared by every writer.
"""

from __future__ import annotations

from typing import Any

from agent.adapters.sqlite.database import Database
from agent.domain.outbox import RECORDS, Row

ROW_COLUMNS = (
    "id, msg_id, kind, topic, payload, qos, retain, "
    "CASE WHEN kind='record' THEN json_extract(payload, '$.rev') END"
)
CHUNK = 500  # ids per statement, well under SQLite's bound-parameter limit


def _row(r: Any) -> Row:
    return Row(
        id=r[0],
        msg_id=r[1],
        kind=r[2],
        topic=r[3],
        payload=r[4],
        qos=r[5],
        retain=bool(r[6]),
        rev=int(r[7]) if r[7] is not None else None,
    )


def _marks(n: int) -> str:
    return ",".join("?" for _ in range(n))


class OutboxQueue:
    """The link's reads and confirmations of the ``outbox`` table of one store."""

    def __init__(self, store: Database) -> None:
        self.store = store

    def fetch(self, stream: str, after: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows of ``stream`` after row id ``after``, oldest first."""
        op = "=" if stream == RECORDS else "!="
        rows = self.store.db.execute(
            f"SELECT {ROW_COLUMNS} FROM outbox WHERE id > ? AND kind {op} 'record' "
            "ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [_row(r) for r in rows]

    def fetch_ids(self, ids: list[int]) -> list[Row]:
        """The rows among ``ids`` still in the outbox (the others were confirmed meanwhile)."""
        if not ids:
            return []
        rows = self.store.db.execute(
            f"SELECT {ROW_COLUMNS} FROM outbox WHERE id IN ({_marks(len(ids))}) ORDER BY id", ids
        )
        return [_row(r) for r in rows]

    def confirm(
        self, row_ids: list[int], record_acks: list[tuple[str, int]], retried: list[int]
    ) -> int:
        """Delete confirmed rows in one transaction (one fsync for the batch); count retries.

        Returns the rows deleted.
        """
        if not row_ids and not record_acks and not retried:
            return 0
        with self.store.transaction() as conn:
            before = conn.total_changes
            for i in range(0, len(row_ids), CHUNK):
                chunk = row_ids[i : i + CHUNK]
                conn.execute(f"DELETE FROM outbox WHERE id IN ({_marks(len(chunk))})", chunk)
            conn.executemany(
                "DELETE FROM outbox WHERE kind='record' AND msg_id=? "
                "AND COALESCE(json_extract(payload, '$.rev'), 1) <= ?",
                record_acks,
            )
            deleted = conn.total_changes - before
            for i in range(0, len(retried), CHUNK):
                chunk = retried[i : i + CHUNK]
                conn.execute(
                    f"UPDATE outbox SET attempts = attempts + 1 WHERE id IN ({_marks(len(chunk))})",
                    chunk,
                )
        return deleted

    def last_id(self) -> int:
        """The highest row id ever given (it changes whenever something was enqueued)."""
        row = self.store.db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name='outbox'"
        ).fetchone()
        return int(row[0]) if row else 0
