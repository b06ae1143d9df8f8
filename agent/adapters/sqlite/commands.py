"""Executed MQTT command ids, on disk, so a re-delivered or replayed command runs only once.

The table is made on first use (by the link's first command), not with the main schema: a
terminal without MQTT never has it, and a healthy store still opens without a write.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from agent.adapters.sqlite.database import Database
from agent.domain.records import utc_now_text

COMMANDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_commands (
    id          TEXT PRIMARY KEY,
    cmd         TEXT,
    received_at TEXT NOT NULL,
    status      TEXT NOT NULL,
    reply       TEXT
);
"""
COMMANDS_KEPT = 2000  # executed ids remembered (a county tool never reuses one this soon)


class CommandLedger:
    """The ``mqtt_commands`` table of one store (core thread only)."""

    def __init__(self, store: Database) -> None:
        self.store = store
        store.db.executescript(COMMANDS_SCHEMA)

    def begin(self, cmd_id: str, cmd: str | None) -> dict[str, Any] | None:
        """Claim ``cmd_id``; returns the earlier entry if it was seen before (then do not run it)."""
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT cmd, received_at, status, reply FROM mqtt_commands WHERE id=?", (cmd_id,)
            ).fetchone()
            if row is not None:
                return {
                    "cmd": row[0],
                    "received_at": row[1],
                    "status": row[2],
                    "reply": json.loads(row[3]) if row[3] else None,
                }
            conn.execute(
                "INSERT INTO mqtt_commands(id, cmd, received_at, status) VALUES(?,?,?,?)",
                (cmd_id, cmd, utc_now_text(), "executing"),
            )
            conn.execute(
                "DELETE FROM mqtt_commands WHERE rowid <= "
                "(SELECT MAX(rowid) FROM mqtt_commands) - ?",
                (COMMANDS_KEPT,),
            )
        return None

    def finish(
        self, cmd_id: str | None, status: str, reply: dict[str, Any], conn: sqlite3.Connection
    ) -> None:
        """Note the outcome of ``cmd_id`` inside the caller's transaction (with its reply)."""
        if cmd_id is None:
            return
        conn.execute(
            "UPDATE mqtt_commands SET status=?, reply=? WHERE id=?",
            (status, json.dumps(reply, ensure_ascii=False), cmd_id),
        )
