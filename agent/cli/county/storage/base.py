"""The collector's storage: one interface, the same SQL for SQLite and PostgreSQL.

What one batch commit does (all of it or none, then the collector acknowledges):

- records by ``record_id``: new, or a higher ``rev`` replaces the row; ``deliveries`` counts
  every arrival. Events and link summaries by ``msg_id`` the same way (first one kept).
- a record, event or link summary belongs to the terminal whose topic it came on: one whose key
  another terminal already owns goes to ``rejected`` and is not acknowledged to the terminal.
- heartbeats become one row per terminal and UTC hour (first and last seen, how many), state
  messages one row per (session, state, reason), and the newest content readiness (heartbeat
  ``content``, status ``content``) one row per terminal: enough for online days and readiness
  without keeping every heartbeat.

Writers race only on the same keys: ``INSERT .. ON CONFLICT DO NOTHING`` first, then the row is
read under a lock (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite) and updated. A batch
the database aborts for a deadlock or a serialization failure is run again.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections import defaultdict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from agent.cli.county.storage import schema as s
from agent.domain.records import utc_text

CSV_FIELDS = s.RECORD_COLUMNS_V1 + ["first_received_at", "received_at", "deliveries"]
RETRIES = 5


class StorageError(Exception):
    """The database cannot be used (unreachable, newer schema, bad address); printed as is."""


@dataclass
class Item:
    """One incoming message, checked: its kind, where it came from, and the object or why not."""

    kind: str  # record, event, link_summary, state, heartbeat, status, rejected
    county: str
    terminal: str
    topic: str
    obj: Any = None
    payload: bytes = b""
    reason: str | None = None


@dataclass
class StoreResult:
    new: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    acks: dict[tuple[str, str], list[tuple[str, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )


class Storage(Protocol):
    """What the collector and the report need from a database."""

    url: str

    def store(self, items: list[Item], collector: str, now: float | None = None) -> StoreResult: ...
    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]: ...
    def count(self) -> int: ...
    def export_csv(self, out: TextIO) -> int: ...
    def schema_version(self) -> int: ...
    def close(self) -> None: ...


def norm_time(text: Any) -> str | None:
    """An RFC 3339 time as canonical UTC text, so text order is time order; None stays None,
    anything unreadable is kept as it came (the raw payload is kept anyway)."""
    if not isinstance(text, str):
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return utc_text(when.timestamp())


class SqlStorage:
    """The shared logic; a dialect supplies the connection, its transaction and its spelling."""

    url = ""
    types: dict[str, str] = {}
    greatest = "max"
    least = "min"
    for_update = ""
    driver_errors: tuple[type[BaseException], ...] = ()

    # -- the dialect's part -----------------------------------------------------------------------

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        raise NotImplementedError

    def _transient(self, exc: BaseException) -> bool:
        return False

    def close(self) -> None:
        raise NotImplementedError

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- schema -------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to :data:`schema.VERSION` in one transaction (two collectors starting
        together: the second waits, then finds nothing to do)."""
        with self._tx():
            self._lock_for_migration()
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._execute("SELECT MAX(version) FROM schema_version").fetchone()
            have = row[0] or 0
            if have > s.VERSION:
                raise StorageError(
                    f"{self.url}: schema version {have} is newer than this countyctl knows "
                    f"({s.VERSION}); use a newer countyctl"
                )
            for version in range(have + 1, s.VERSION + 1):
                for sql in s.statements(version, self.types):
                    self._execute(sql)
            if have < s.VERSION:
                self._execute("DELETE FROM schema_version")
                self._execute("INSERT INTO schema_version(version) VALUES(?)", (s.VERSION,))

    def _lock_for_migration(self) -> None:
        """Hold off another process migrating the same database (the dialect's lock)."""

    def schema_version(self) -> int:
        return int(self.rows("SELECT MAX(version) AS v FROM schema_version")[0]["v"])

    # -- the batch ----------------------------------------------------------------------------------

    def store(self, items: list[Item], collector: str, now: float | None = None) -> StoreResult:
        """Commit one batch (``now``: the receive time, the clock's by default)."""
        # A fixed order of keys keeps two collectors' batches from locking rows crosswise.
        ordered = sorted(items, key=_lock_order)
        for attempt in range(RETRIES):
            try:
                with self._tx():
                    return self._store(
                        ordered, collector, utc_text(time.time() if now is None else now)
                    )
            except Exception as exc:
                if attempt < RETRIES - 1 and self._transient(exc):
                    continue
                if isinstance(exc, self.driver_errors):
                    raise StorageError(f"{self.url}: the batch was not stored: {exc}") from exc
                raise
        raise AssertionError("unreachable")

    def _store(self, items: list[Item], collector: str, now: str) -> StoreResult:
        result = StoreResult()
        beats: dict[tuple[str, str, str], list[Any]] = {}
        for it in items:
            reason = it.reason
            if it.kind == "record":
                reason = self._record(it, collector, now, result)
            elif it.kind == "event":
                reason = self._event(it, now)
            elif it.kind == "link_summary":
                reason = self._link_summary(it, now)
            elif it.kind == "state":
                self._state(it, now)
            elif it.kind == "heartbeat":
                key = (it.county, it.terminal, now[:13])
                seen = beats.setdefault(key, [now, now, 0])
                seen[2] += 1
                self._content(it, it.obj.get("content"), None, now)
            elif it.kind == "status":
                self._content(it, (it.obj.get("content") or {}).get("readiness"), it.obj, now)
            if reason is not None:
                self._execute(
                    "INSERT INTO rejected(topic, payload, reason, received_at) VALUES(?,?,?,?)",
                    (it.topic, it.payload, reason, now),
                )
                result.rejected.append((it.topic, reason))
        for (county, terminal, hour), (first, last, n) in sorted(beats.items()):
            self._execute(
                "INSERT INTO heartbeat_hours(county, terminal, hour, first_seen, last_seen, beats) "
                "VALUES(?,?,?,?,?,?) ON CONFLICT (county, terminal, hour) DO UPDATE SET "
                f"first_seen = {self.least}(heartbeat_hours.first_seen, excluded.first_seen), "
                f"last_seen = {self.greatest}(heartbeat_hours.last_seen, excluded.last_seen), "
                "beats = heartbeat_hours.beats + excluded.beats",
                (county, terminal, hour, first, last, n),
            )
        return result

    def _owner(self, table: str, key_col: str, key: str, extra: str = "") -> Any:
        return self._execute(
            f"SELECT terminal, county{extra} FROM {table} WHERE {key_col}=?{self.for_update}",
            (key,),
        ).fetchone()

    def _record(self, it: Item, collector: str, now: str, result: StoreResult) -> str | None:
        obj = it.obj
        rid = obj["record_id"]
        values = [
            norm_time(obj.get(c)) if c in s.RECORD_TIMES else obj.get(c) for c in s.RECORD_COLUMNS
        ]
        text = it.payload.decode("utf-8")
        cols = ", ".join(s.RECORD_COLUMNS)
        marks = ", ".join("?" for _ in s.RECORD_COLUMNS)
        cur = self._execute(
            f"INSERT INTO records({cols}, payload, first_received_at, received_at, stored_by) "
            f"VALUES({marks}, ?, ?, ?, ?) ON CONFLICT (record_id) DO NOTHING",
            [*values, text, now, now, collector],
        )
        if cur.rowcount == 1:
            result.new += 1
            result.acks[(it.county, it.terminal)].append((rid, obj["rev"]))
            return None
        owner = self._owner("records", "record_id", rid, ", rev")
        if (owner[0], owner[1]) != (it.terminal, it.county):
            return _owned_by("record_id", rid, owner[1], owner[0])
        if obj["rev"] > owner[2]:
            sets = ", ".join(f"{c}=?" for c in s.RECORD_COLUMNS[1:])
            self._execute(
                f"UPDATE records SET {sets}, payload=?, received_at=?, stored_by=? "
                "WHERE record_id=?",
                [*values[1:], text, now, collector, rid],
            )
        self._execute("UPDATE records SET deliveries = deliveries + 1 WHERE record_id=?", (rid,))
        result.duplicates += 1
        result.acks[(it.county, it.terminal)].append((rid, obj["rev"]))
        return None

    def _event(self, it: Item, now: str) -> str | None:
        obj = it.obj
        key = obj.get("msg_id") or f"{it.terminal}:{obj['ts']}:{obj['name']}"
        detail = obj.get("detail")
        cur = self._execute(
            "INSERT INTO events(msg_id, terminal, county, ts, type, name, state, severity, "
            "raised_at, cleared_at, detail, payload, received_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (msg_id) DO NOTHING",
            (
                key,
                it.terminal,
                it.county,
                norm_time(obj["ts"]),
                obj.get("type"),
                obj.get("name"),
                obj.get("state"),
                obj.get("severity"),
                norm_time(obj.get("raised_at")),
                norm_time(obj.get("cleared_at")),
                None if detail is None else json.dumps(detail, ensure_ascii=False),
                it.payload.decode("utf-8"),
                now,
            ),
        )
        return self._duplicate("events", key, it) if cur.rowcount != 1 else None

    def _link_summary(self, it: Item, now: str) -> str | None:
        obj = it.obj
        key = obj.get("msg_id") or f"{it.terminal}:link:{obj['period_start']}"
        cur = self._execute(
            "INSERT INTO link_summaries(msg_id, terminal, county, mode, period_start, period_end, "
            "availability, loss, rtt_p50_ms, rtt_p95_ms, longest_outage_s, payload, received_at) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (msg_id) DO NOTHING",
            (
                key,
                it.terminal,
                it.county,
                obj.get("mode"),
                norm_time(obj["period_start"]),
                norm_time(obj["period_end"]),
                _num(obj.get("availability")),
                _num(obj.get("loss")),
                _num(obj.get("rtt_p50_ms")),
                _num(obj.get("rtt_p95_ms")),
                _num(obj.get("longest_outage_s")),
                it.payload.decode("utf-8"),
                now,
            ),
        )
        return self._duplicate("link_summaries", key, it) if cur.rowcount != 1 else None

    def _duplicate(self, table: str, key: str, it: Item) -> str | None:
        owner = self._owner(table, "msg_id", key)
        if (owner[0], owner[1]) != (it.terminal, it.county):
            return _owned_by("msg_id", key, owner[1], owner[0])
        self._execute(f"UPDATE {table} SET deliveries = deliveries + 1 WHERE msg_id=?", (key,))
        return None

    def _state(self, it: Item, now: str) -> None:
        obj = it.obj
        self._execute(
            "INSERT INTO state_changes(county, terminal, session, state, reason, ts, received_at, "
            "payload) VALUES(?,?,?,?,?,?,?,?) "
            "ON CONFLICT (county, terminal, session, state, reason) DO NOTHING",
            (
                it.county,
                it.terminal,
                obj["session"],
                obj["state"],
                obj["reason"],
                norm_time(obj["ts"]),
                now,
                it.payload.decode("utf-8"),
            ),
        )

    def _content(self, it: Item, readiness: Any, status: dict[str, Any] | None, now: str) -> None:
        """The newest readiness (by the terminal's ``ts``) and, from a status, its file list."""
        if not isinstance(readiness, dict) and status is None:
            return
        ts = norm_time(it.obj.get("ts"))
        ready_text = json.dumps(readiness, ensure_ascii=False) if readiness else None
        if status is None:
            self._execute(
                "INSERT INTO content(county, terminal, readiness, readiness_ts, received_at) "
                "VALUES(?,?,?,?,?) ON CONFLICT (county, terminal) DO UPDATE SET "
                "readiness = excluded.readiness, readiness_ts = excluded.readiness_ts, "
                "received_at = excluded.received_at WHERE content.readiness_ts IS NULL "
                "OR content.readiness_ts <= excluded.readiness_ts",
                (it.county, it.terminal, ready_text, ts, now),
            )
            return
        section = status.get("content") if isinstance(status.get("content"), dict) else {}
        files = section.get("files") if isinstance(section.get("files"), list) else None
        self._execute(
            "INSERT INTO content(county, terminal, readiness, readiness_ts, files, files_total, "
            "status_ts, received_at) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT (county, terminal) "
            "DO UPDATE SET readiness = excluded.readiness, readiness_ts = excluded.readiness_ts, "
            "files = excluded.files, files_total = excluded.files_total, "
            "status_ts = excluded.status_ts, received_at = excluded.received_at "
            "WHERE content.status_ts IS NULL OR content.status_ts <= excluded.status_ts",
            (
                it.county,
                it.terminal,
                ready_text,
                ts,
                None if files is None else json.dumps(files, ensure_ascii=False),
                section.get("files_total") if isinstance(section.get("files_total"), int) else None,
                ts,
                now,
            ),
        )

    # -- reading ------------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.rows("SELECT COUNT(*) AS n FROM records")[0]["n"])

    def export_csv(self, out: TextIO) -> int:
        w = csv.writer(out)
        w.writerow(CSV_FIELDS)
        n = 0
        for row in self.rows(
            f"SELECT {', '.join(CSV_FIELDS)} FROM records ORDER BY terminal, seq, record_id"
        ):
            w.writerow(["" if row[c] is None else row[c] for c in CSV_FIELDS])
            n += 1
        return n


def _lock_order(it: Item) -> tuple[str, str]:
    if it.kind in ("record", "event", "link_summary") and isinstance(it.obj, dict):
        return (it.kind, str(it.obj.get("record_id") or it.obj.get("msg_id") or ""))
    return (it.kind, it.terminal)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _owned_by(what: str, key: str, county: str, terminal: str) -> str:
    return (
        f"{what} {key} belongs to terminal {terminal} (county {county}); "
        "not stored over another terminal's data"
    )
