"""Persisting alarm changes and link summaries: called on the core thread, one transaction each.

Each alarm change becomes, atomically: a row in ``alarms`` (one row per raise; a clear sets
``cleared_at`` on the open row), a line in ``events`` for stationctl, and an ``event`` message in
the outbox with a stable msg_id, so a retry after a crash re-sends the same id and the county
collector can drop the duplicate. Link summaries go to ``events`` and the outbox the same way.

After a restart the health machines start from the open rows (``active_alarms``), so an alarm that
was raised before the restart is cleared, not raised a second time.
"""

from __future__ import annotations

import calendar
import json
import time
import uuid
from typing import Any

from agent.adapters.sqlite.database import Database
from agent.domain.health import AlarmChange
from agent.domain.records import utc_text

# Stable ids: the same change always gets the same msg_id (uuid5 over its identity).
NAMESPACE = uuid.UUID("6d1f3c1e-7a51-4b8e-9c2e-3f0a4b5c6d7e")

LEVELS = {"critical": "error", "warning": "warning", "info": "info"}


def alarm_msg_id(terminal: str, change: AlarmChange) -> str:
    return str(
        uuid.uuid5(NAMESPACE, f"alarm/{terminal}/{change.name}/{change.action}/{change.at:.3f}")
    )


def summary_msg_id(terminal: str, summary: dict[str, Any]) -> str:
    return str(
        uuid.uuid5(NAMESPACE, f"link_summary/{terminal}/{float(summary['period_start']):.3f}")
    )


def _as_change(change: AlarmChange | dict[str, Any]) -> AlarmChange:
    return change if isinstance(change, AlarmChange) else AlarmChange(**change)


def persist_alarm_change(
    store: Database,
    change: AlarmChange | dict[str, Any],
    terminal: str,
    county: str,
    *,
    clock_state: str | None = None,
) -> None:
    """Write one raised/cleared alarm to alarms + events + outbox in one transaction.

    ``change`` may be the AlarmChange or its ``to_dict()`` (what the monitor emits).
    A raise while an open row of the same name exists (restart without restore) keeps the
    existing row and its original raise time; a clear with no open row still records the event.
    """
    c = _as_change(change)
    at = utc_text(c.at)
    raised_at = c.raised_at
    with store.transaction() as conn:
        open_row = conn.execute(
            "SELECT id, raised_at FROM alarms WHERE name=? AND cleared_at IS NULL ORDER BY id DESC LIMIT 1",
            (c.name,),
        ).fetchone()
        if c.action == "raised":
            if open_row is None:
                conn.execute(
                    "INSERT INTO alarms(name, severity, raised_at, cleared_at, detail) VALUES(?,?,?,NULL,?)",
                    (c.name, c.severity, at, json.dumps(c.detail, ensure_ascii=False, default=str)),
                )
        elif open_row is not None:
            conn.execute("UPDATE alarms SET cleared_at=? WHERE id=?", (at, open_row[0]))
            if raised_at is None:
                raised_at = parse_utc(open_row[1])
        payload: dict[str, Any] = {
            "ts": at,
            "terminal": terminal,
            "county": county,
            "type": "alarm",
            "name": c.name,
            "state": c.action,
            "severity": c.severity,
            "raised_at": utc_text(raised_at)
            if c.action == "cleared" and raised_at is not None
            else None,
            "cleared_at": at if c.action == "cleared" else None,
            "detail": c.detail,
        }
        if c.action == "raised":
            payload["raised_at"] = at
        if clock_state is not None:
            payload["clock"] = clock_state
        level = LEVELS.get(c.severity, "warning") if c.action == "raised" else "info"
        store.add_event(level, "alarm", f"{c.name} {c.action}", payload, ts=at, conn=conn)
        store.enqueue("event", alarm_msg_id(terminal, c), "event", payload, conn=conn)


def persist_link_summary(
    store: Database,
    summary: dict[str, Any],
    terminal: str,
    county: str,
    *,
    clock_state: str | None = None,
) -> None:
    """Store one link-quality summary (events) and queue it for the county (outbox)."""
    payload = dict(summary)
    payload["period_start"] = utc_text(float(summary["period_start"]))
    payload["period_end"] = utc_text(float(summary["period_end"]))
    payload = {"ts": payload["period_end"], "terminal": terminal, "county": county, **payload}
    if clock_state is not None:
        payload["clock"] = clock_state
    with store.transaction() as conn:
        store.add_event(
            "info", "link_summary", "link summary", payload, ts=payload["ts"], conn=conn
        )
        store.enqueue(
            "link_summary", summary_msg_id(terminal, summary), "link/summary", payload, conn=conn
        )


def active_alarms(store: Database) -> dict[str, float]:
    """Open alarms (name -> raised_at epoch) to hand to ``Monitor(active_alarms=...)``."""
    rows = store.db.execute(
        "SELECT name, raised_at FROM alarms WHERE cleared_at IS NULL ORDER BY id"
    )
    return {name: parse_utc(raised) for name, raised in rows}


def active_alarm_rows(store: Database) -> list[dict[str, Any]]:
    """Open alarms as the status snapshot shows them, oldest raise first."""
    rows = store.db.execute(
        "SELECT name, severity, raised_at, detail FROM alarms WHERE cleared_at IS NULL ORDER BY id"
    )
    return [{"name": n, "severity": s, "raised_at": r, "detail": d} for n, s, r, d in rows]


class AlarmLog:
    """The alarms of one store, for an adapter that holds the store only through a port."""

    def __init__(self, store: Database) -> None:
        self.store = store

    def active(self) -> dict[str, float]:
        """Open alarms: name -> raised_at epoch."""
        return active_alarms(self.store)

    def persist(
        self,
        change: AlarmChange | dict[str, Any],
        terminal: str,
        county: str,
        *,
        clock_state: str | None = None,
    ) -> None:
        """``persist_alarm_change`` on this store: alarms + events + outbox, one transaction."""
        persist_alarm_change(self.store, change, terminal, county, clock_state=clock_state)


def parse_utc(text: str) -> float:
    """Inverse of ``agent.domain.records.utc_text`` (``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    base, _, frac = text.rstrip("Z").partition(".")
    whole = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return whole + (int(frac) / 10 ** len(frac) if frac else 0.0)
