"""What the link needs from the rest of the agent, behind one small interface.

``RuntimeBridge`` runs every operation on the core thread (``Runtime.call``): the store, the
schedules and the core stay single-threaded, as the design asks; the link's own thread only waits
for the answers. ``MemoryBridge`` is an in-memory stand-in with the same methods, for benches
(hundreds of simulated terminals in one process) and tests of the link alone.

Outbox rows are confirmed by deleting them: by row id (PUBACK) or, for records, by
``(record_id, rev)`` from the collector's ``record/ack``: a record re-queued with a higher ``rev``
(attendance added later) survives an ack for the older revision.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from agent import __version__
from agent.adapters.schedule_files import read_untrusted
from agent.adapters.sqlite.store import Store
from agent.domain.outbox import RECORDS, Row
from agent.domain.records import utc_now_text
from agent.domain.schedule import (
    LAYERS,
    ApplyResult,
    ScheduleDoc,
    ScheduleRejected,
    unreadable_alarm,
)

SESSION_KEY = "mqtt.session"
ACK_KEY = "mqtt.schedule_ack.{layer}"

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
REPLY_TIMEOUT_S = 120.0  # queuing a command's reply waits out a busy core this long


class BridgeClosed(Exception):
    """The agent's core has stopped; nothing more can be asked of it."""


@dataclass
class ScheduleOutcome:
    layer: str
    version: int | None  # None: the document had no valid version
    status: str  # applied | rejected | stale
    reasons: list[str]
    previous_version: int | None
    applied: dict[str, int | None]
    clock: str
    silent: bool = False  # a retained re-delivery already answered: publish nothing


@dataclass
class CommandResult:
    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


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


ROW_COLUMNS = (
    "id, msg_id, kind, topic, payload, qos, retain, "
    "CASE WHEN kind='record' THEN json_extract(payload, '$.rev') END"
)


def outbox_fetch(store: Store, stream: str, after: int, limit: int) -> list[Row]:
    op = "=" if stream == RECORDS else "!="
    rows = store.db.execute(
        f"SELECT {ROW_COLUMNS} FROM outbox WHERE id > ? AND kind {op} 'record' ORDER BY id LIMIT ?",
        (after, limit),
    )
    return [_row(r) for r in rows]


def outbox_fetch_ids(store: Store, ids: list[int]) -> list[Row]:
    if not ids:
        return []
    marks = ",".join("?" for _ in ids)
    rows = store.db.execute(
        f"SELECT {ROW_COLUMNS} FROM outbox WHERE id IN ({marks}) ORDER BY id", ids
    )
    return [_row(r) for r in rows]


def outbox_confirm(
    store: Store, row_ids: list[int], record_acks: list[tuple[str, int]], retried: list[int]
) -> int:
    """Delete confirmed rows in one transaction (one fsync for the batch); returns rows deleted."""
    if not row_ids and not record_acks and not retried:
        return 0
    with store.transaction() as conn:
        before = conn.total_changes
        for i in range(0, len(row_ids), 500):
            chunk = row_ids[i : i + 500]
            conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' for _ in chunk)})", chunk)
        conn.executemany(
            "DELETE FROM outbox WHERE kind='record' AND msg_id=? "
            "AND COALESCE(json_extract(payload, '$.rev'), 1) <= ?",
            record_acks,
        )
        deleted = conn.total_changes - before
        for i in range(0, len(retried), 500):
            chunk = retried[i : i + 500]
            conn.execute(
                f"UPDATE outbox SET attempts = attempts + 1 WHERE id IN ({','.join('?' for _ in chunk)})",
                chunk,
            )
    return deleted


def outbox_last_id(store: Store) -> int:
    row = store.db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
    return int(row[0]) if row else 0


class CommandLedger:
    """Executed command ids, on disk, so a re-delivered or replayed command runs only once."""

    def __init__(self, store: Store) -> None:
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

    def finish(self, cmd_id: str | None, status: str, reply: dict[str, Any], conn: Any) -> None:
        if cmd_id is None:
            return
        conn.execute(
            "UPDATE mqtt_commands SET status=?, reply=? WHERE id=?",
            (status, json.dumps(reply, ensure_ascii=False), cmd_id),
        )


class RuntimeBridge:
    """The link's view of a running ``agent.runtime.loop.Runtime`` (every call hops to the core)."""

    def __init__(self, runtime: Any, timeout: float = 15.0) -> None:
        self.runtime = runtime
        self.cfg = runtime.cfg
        self.timeout = timeout
        self.terminal = self.cfg.terminal
        self.county = self.cfg.county
        self.boot_id = runtime.boot
        self._ledger: CommandLedger | None = None

    # -- plumbing ----------------------------------------------------------------------------

    def _closed(self) -> bool:
        return self.runtime.store is None

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` on the core thread; BridgeClosed once the core loop has ended.

        ``TimeoutError`` means ``fn`` did not run and never will: a call the core thread has not
        begun when the wait ends is cancelled; one it has begun is waited for to the end.
        """
        if self._closed():
            raise BridgeClosed("the agent core has stopped")
        claim: Future[None] = Future()

        def once() -> Any:
            if not claim.set_running_or_notify_cancel():
                return None  # the caller gave up before the core thread got here
            return fn()

        fut: Future[Any] = self.runtime.call(once, timeout=None)
        limit = self.timeout if timeout is None else timeout
        start = time.monotonic()
        stop_seen: float | None = None
        while True:
            try:
                return fut.result(0.2)
            except FutureTimeout:
                pass  # not done yet: look at the core's state, then wait again
            now = time.monotonic()
            if self._closed():
                claim.cancel()
                raise BridgeClosed("the agent core has stopped")
            if self.runtime.stop_requested.is_set():
                stop_seen = stop_seen or now
                if now - stop_seen > 1.0:
                    claim.cancel()
                    raise BridgeClosed("the agent is stopping")
            if now - start > limit and claim.cancel():
                raise TimeoutError(
                    f"the core thread did not take the call within {limit:.0f} s; nothing was done"
                )

    def attach(self, wake: Callable[[], None], status: Callable[[], dict[str, Any]]) -> None:
        """Wake the link when the outbox grows; put the link's state into the status snapshot."""
        last = {"id": -1}

        def on_tick() -> None:
            store = self.runtime.store
            if store is None:
                return
            now_id = outbox_last_id(store)
            if now_id != last["id"]:
                last["id"] = now_id
                wake()

        def on_event(kind: str, _payload: Any) -> None:
            if kind == "record":
                wake()

        self.runtime.hooks_per_tick.append(on_tick)
        self.runtime.listeners.append(on_event)
        self.runtime.status_providers["mqtt"] = status

    def _store(self) -> Store:
        store = self.runtime.store
        if store is None:
            raise BridgeClosed("the store is closed")
        return store

    def _clock(self) -> str:
        return self.runtime.core.clock_state()

    # -- session, outbox ---------------------------------------------------------------------

    def next_session(self) -> tuple[int, str]:
        return self.call(lambda: (self._store().bump_counter(SESSION_KEY), self._clock()))

    def fetch(self, stream: str, after: int, limit: int) -> list[Row]:
        return self.call(lambda: outbox_fetch(self._store(), stream, after, limit))

    def fetch_ids(self, ids: list[int]) -> list[Row]:
        return self.call(lambda: outbox_fetch_ids(self._store(), ids))

    def confirm(
        self, row_ids: list[int], record_acks: list[tuple[str, int]], retried: list[int]
    ) -> int:
        return self.call(lambda: outbox_confirm(self._store(), row_ids, record_acks, retried))

    # -- what the terminal says about itself ---------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return self.call(self.runtime.summary)

    def status(self) -> dict[str, Any]:
        return self.call(self.runtime.status_snapshot)

    def clock(self) -> str:
        return self.call(self._clock)

    # -- schedules -----------------------------------------------------------------------------

    def apply_schedule(
        self, data: bytes, layer: str, source: str, retained: bool, build_ack: Callable[..., Any]
    ) -> ScheduleOutcome:
        """Read the document here, on the link's thread, then apply it and queue the ack on the
        core thread (no ack when it would repeat the last one for a retained copy).

        Reading is bounded (``parse_untrusted``: depth, values, time) and happens before the hop,
        so a hostile document costs the link a moment and the core thread nothing.
        """
        parsed = read_untrusted(data, source)
        return self.call(lambda: self._apply(data, layer, source, retained, build_ack, parsed))

    def _apply(
        self,
        data: bytes,
        layer: str,
        source: str,
        retained: bool,
        build_ack: Callable[..., Any],
        parsed: ScheduleDoc | ScheduleRejected,
    ) -> ScheduleOutcome:
        store = self._store()
        current = _same_as_applied(self.runtime, parsed, layer) if retained else None
        if current is not None:
            # The retained document we already run, re-delivered on every connect: it *is* the
            # applied version. Say so (once), never apply it again, log nothing.
            res = ApplyResult(layer, current, "applied", [], current)
        else:
            res = self.runtime.apply_schedule(data, source, layer, parsed=parsed)
        applied: dict[str, int | None] = {k: None for k in ("terminal", "county")}
        applied.update(self.runtime.schedule_versions())
        status, reasons = res.status, list(res.reasons)
        outcome = ScheduleOutcome(
            res.layer, res.version, status, reasons, res.previous_version, applied, self._clock()
        )
        key = ACK_KEY.format(layer=layer)
        said = f"{res.version}:{status}"
        if retained and store.get(key) == said:
            outcome.silent = True
            return outcome
        payload = build_ack(outcome)
        with store.transaction() as conn:
            store.enqueue(
                "schedule_ack",
                f"schedule_ack:{layer}:{_version_id(res.version)}:{status}",
                "schedule/ack",
                payload,
                retain=True,
                conn=conn,
            )
            store.put(key, said, conn)
        return outcome

    def on_layer_unreadable(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(layer)`` (on the core thread) when the stored document of a schedule
        layer is found unreadable, so that the link asks the county for that layer again."""

        def listener(kind: str, change: Any) -> None:
            if kind != "alarm" or change.action != "raised":
                return
            layer = (change.detail or {}).get("layer")
            if layer in LAYERS and change.name == unreadable_alarm(layer):
                callback(layer)

        self.runtime.listeners.append(listener)

    # -- commands ------------------------------------------------------------------------------

    def _commands(self) -> CommandLedger:
        if self._ledger is None:
            self._ledger = CommandLedger(self._store())
        return self._ledger

    def command_begin(self, cmd_id: str, cmd: str | None) -> dict[str, Any] | None:
        return self.call(lambda: self._commands().begin(cmd_id, cmd))

    def command_finish(self, cmd_id: str | None, status: str, reply: dict[str, Any]) -> None:
        def run() -> None:
            store = self._store()
            with store.transaction() as conn:
                self._commands().finish(cmd_id, status, reply, conn)
                msg_id = f"reply:{cmd_id}" if cmd_id else f"reply:anon:{time.time_ns()}"
                store.enqueue("reply", msg_id, "cmd/reply", reply, conn=conn)

        self.call(run, timeout=max(self.timeout, REPLY_TIMEOUT_S))

    def play(self, args: dict[str, Any]) -> CommandResult:
        """Check the media on this (the link's) thread the way the player will, then play.

        A file the player would refuse (outside the content folder, missing, unreadable) is
        answered ``bad_media`` here, so the county is never told "playing" for a course that
        then ends as ``skipped``.
        """
        from agent.adapters.control_socket import media_problem, play_target
        from agent.domain.core import PlayCommand

        course_id, media = args.get("course_id"), args.get("media")
        target = self.call(lambda: play_target(self.runtime.core, course_id, media))
        problem = media_problem(self.cfg.content_dir, target)
        if problem is not None:
            return CommandResult(
                False,
                f"{problem.message}; nothing was played",
                {"reason": problem.reason, "media": target},
                "bad_media",
            )
        cmd = PlayCommand(
            course_id=args.get("course_id"),
            media=args.get("media"),
            title=args.get("title"),
            trigger="remote",
            priority=args.get("priority"),
        )
        return _reply_result(self.runtime.submit(cmd, timeout=self.timeout))

    def stop(self) -> CommandResult:
        from agent.domain.core import StopCommand

        return _reply_result(
            self.runtime.submit(StopCommand(trigger="remote"), timeout=self.timeout)
        )

    def reload(self) -> CommandResult:
        def run() -> dict[str, Any]:
            self.runtime.reload_schedules("reload command from the county")
            return self.runtime.schedule_versions()

        versions = self.call(run)
        return CommandResult(True, "schedules reloaded", {"schedule_versions": versions})


def _reply_result(actions: list[Any]) -> CommandResult:
    from agent.domain.core import Reply

    for action in actions:
        if isinstance(action, Reply):
            data = dict(action.data)
            error = data.get("error") if not action.ok else None
            return CommandResult(action.ok, action.message, data, error)
    return CommandResult(False, "the core gave no answer", {}, "failed")


def _version_id(version: int | None) -> str:
    """The version as it appears in an ack's ``msg_id``: ``none`` for a document without one."""
    return "none" if version is None else str(version)


def _same_as_applied(
    runtime: Any, incoming: ScheduleDoc | ScheduleRejected, layer: str
) -> int | None:
    """The applied version when ``incoming`` is exactly the stored document of ``layer``.

    The stored one is read from disk (the agent's own JSON), not taken from memory: when it has
    become unreadable, the retained copy must be applied again, not waved through.
    """
    if isinstance(incoming, ScheduleRejected):
        return None
    try:
        current = runtime.schedules.load(layer)
    except ScheduleRejected:
        return None
    if current is None or incoming.version != current.version:
        return None
    as_stored = {**incoming.to_json(), "layer": layer}
    return current.version if as_stored == current.to_json() else None


class MemoryBridge:
    """An agent without an agent: an in-memory outbox, counters and canned answers.

    Used where the link is exercised alone (``scripts/bench/mqtt_storm.py`` runs hundreds of
    links in one process). Same methods as ``RuntimeBridge``; thread-safe.
    """

    def __init__(self, terminal: str, county: str) -> None:
        self.terminal = terminal
        self.county = county
        self.boot_id = "memory"
        self.lock = threading.Lock()
        self.session = 0
        self.rows: dict[int, Row] = {}
        self.ids = itertools.count(1)
        self.commands: dict[str, dict[str, Any]] = {}
        self.replies: list[dict[str, Any]] = []
        self.acks: list[ScheduleOutcome] = []
        self.wake: Callable[[], None] = lambda: None
        self.versions: dict[str, int | None] = {"terminal": None, "county": None}

    def attach(self, wake: Callable[[], None], status: Callable[[], dict[str, Any]]) -> None:
        self.wake = wake

    def enqueue(self, kind: str, msg_id: str, topic: str, payload: dict[str, Any] | str) -> int:
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        rev = json.loads(text).get("rev", 1) if kind == "record" else None
        with self.lock:
            if kind == "record":
                for rid in [i for i, r in self.rows.items() if r.msg_id == msg_id]:
                    del self.rows[rid]
            row_id = next(self.ids)
            self.rows[row_id] = Row(row_id, msg_id, kind, topic, text, 1, False, rev)
        self.wake()
        return row_id

    def next_session(self) -> tuple[int, str]:
        with self.lock:
            self.session += 1
            return self.session, "unsynced"

    def fetch(self, stream: str, after: int, limit: int) -> list[Row]:
        with self.lock:
            rows = sorted(
                (r for r in self.rows.values() if r.id > after and r.stream == stream),
                key=lambda r: r.id,
            )
        return rows[:limit]

    def fetch_ids(self, ids: list[int]) -> list[Row]:
        with self.lock:
            return [self.rows[i] for i in sorted(ids) if i in self.rows]

    def confirm(
        self, row_ids: list[int], record_acks: list[tuple[str, int]], retried: list[int]
    ) -> int:
        n = 0
        with self.lock:
            for i in row_ids:
                n += self.rows.pop(i, None) is not None
            for rid, rev in record_acks:
                for i in [
                    i
                    for i, r in self.rows.items()
                    if r.kind == "record" and r.msg_id == rid and (r.rev or 1) <= rev
                ]:
                    del self.rows[i]
                    n += 1
        return n

    def depth(self) -> int:
        with self.lock:
            return len(self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "uptime_s": 0.0,
            "playing": None,
            "schedule_versions": {k: v for k, v in self.versions.items() if v},
            "clock": "unsynced",
            "outbox": self.depth(),
        }

    def status(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "terminal": self.terminal,
            "county": self.county,
            "started_at": utc_now_text(),
            "boot_id": self.boot_id,
            "timezone": "Asia/Shanghai",
            "upcoming": [],
            "open_records": 0,
            "records_unsent": self.depth(),
            "agent_version": __version__,
        }

    def clock(self) -> str:
        return "unsynced"

    def apply_schedule(
        self, data: bytes, layer: str, source: str, retained: bool, build_ack: Callable[..., Any]
    ) -> ScheduleOutcome:
        doc = read_untrusted(data, source)
        if isinstance(doc, ScheduleRejected):
            out = ScheduleOutcome(
                layer, doc.version, "rejected", doc.problems, None, self.versions, "unsynced"
            )
        else:
            prev = self.versions.get(layer)
            if prev is not None and doc.version <= prev:
                out = ScheduleOutcome(
                    layer, doc.version, "stale", ["not newer"], prev, {}, "unsynced"
                )
                out.silent = retained
            else:
                self.versions[layer] = doc.version
                out = ScheduleOutcome(
                    layer, doc.version, "applied", [], prev, dict(self.versions), "unsynced"
                )
        self.acks.append(out)
        if not out.silent:
            self.enqueue(
                "schedule_ack", f"ack:{layer}:{out.version}", "schedule/ack", build_ack(out)
            )
        return out

    def on_layer_unreadable(self, callback: Callable[[str], None]) -> None:
        """Nothing is stored here, so no layer ever becomes unreadable."""

    def command_begin(self, cmd_id: str, cmd: str | None) -> dict[str, Any] | None:
        with self.lock:
            if cmd_id in self.commands:
                return self.commands[cmd_id]
            self.commands[cmd_id] = {"cmd": cmd, "status": "executing", "reply": None}
        return None

    def command_finish(self, cmd_id: str | None, status: str, reply: dict[str, Any]) -> None:
        with self.lock:
            if cmd_id is not None:
                self.commands[cmd_id] = {"cmd": reply.get("cmd"), "status": status, "reply": reply}
            self.replies.append(reply)
        self.enqueue("reply", f"reply:{cmd_id}", "cmd/reply", reply)

    def play(self, args: dict[str, Any]) -> CommandResult:
        return CommandResult(True, f"playing {args.get('course_id')}", {})

    def stop(self) -> CommandResult:
        return CommandResult(True, "nothing was playing", {"stopped": None})

    def reload(self) -> CommandResult:
        return CommandResult(True, "schedules reloaded", {})
