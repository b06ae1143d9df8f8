"""The action executor: carries out what the core decided, on the core thread.

The core returns actions (save a record, checkpoint, drive the player, raise an alarm, log,
restart libvlc, exit for systemd); this turns each into a store write or an adapter call. A
write the store refuses goes to the held-writes buffer (``agent.runtime.held``) instead of being
lost; a failing action never ends the loop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Any

from agent.domain import core as c
from agent.domain.records import OUTCOMES, Record, utc_text
from agent.runtime.held import HeldWrites
from agent.runtime.host import Host
from agent.runtime.log_limiter import LogLimiter
from agent.runtime.media_gate import MediaGate

log = logging.getLogger("agent")

FINAL = OUTCOMES
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def record_message(rec: Record, county: str) -> dict[str, Any]:
    """The record as published: the stored fields plus the envelope (ts, county)."""
    payload = rec.to_dict()
    payload["ts"] = utc_text(time.time())
    payload["county"] = county
    return payload


class Executor:
    def __init__(self, host: Host, media: MediaGate) -> None:
        self.host = host
        self.media = media
        self.log_limiter = LogLimiter()
        self.held = HeldWrites(host, self.do, self.persist_alarm)

    def execute(self, actions: list[c.Action]) -> None:
        for action in actions:
            if self.held.behind_held(action):
                continue
            try:
                self.do(action)
            except Exception as exc:
                self.held.action_failed(action, exc)

    def do(self, action: c.Action) -> None:
        """Carry out one action; raises when its write fails (the caller holds it)."""
        store = self.host.store
        assert store is not None
        match action:
            case c.SaveRecord(record=rec, new=new):
                self._save_record(rec, new)
            case c.Checkpoint():
                if not store.checkpoint_record(
                    action.record_id, action.position, action.played, action.completion
                ):
                    self.record_write_bug(action.record_id, "a checkpoint matched no record")
            case c.Preroll():
                self.media.submit(
                    action.token, action.media, action.sha256, action.start_at, paused=True
                )
            case c.Play():
                self.media.submit(
                    action.token, action.media, action.sha256, action.start_at, paused=False
                )
            case c.Start():
                self.host.player.start(action.token)
            case c.Stop():
                self.media.cancel(action.token)
            case c.UnloadPlayer():
                self.host.player.unload()
            case c.Log():
                self.log(action)
            case c.Alarm():
                self.persist_alarm(action)
            case c.RestartPlayer():
                self.restart_player(action.reason)
            case c.ExitProcess():
                self._exit_process(action.reason)
            case c.Reply():
                pass

    # -- records ---------------------------------------------------------------------------

    def _save_record(self, rec: Record, new: bool) -> None:
        """Insert or update a record, and queue it for the county when final, in one transaction.

        An update that matches no row is a bug somewhere: the record is inserted instead, so
        nothing is lost, and ``record_write_bug`` names it. An insert of a record that is
        already there (a held insert whose commit did go through) becomes an update.
        """
        store = self.host.store
        assert store is not None
        missing = False
        with store.transaction() as conn:
            if new:
                try:
                    store.insert_record(rec, conn)
                except sqlite3.IntegrityError:
                    if not store.update_record(rec, conn):
                        raise
            elif not store.update_record(rec, conn):
                missing = True
                store.insert_record(rec, conn)
            if rec.outcome in FINAL:
                self.enqueue_record(rec, conn)
        if missing:
            self.record_write_bug(rec.record_id, "an update matched no record; inserted instead")
        if rec.outcome in FINAL:
            self.host.notify("record", rec)

    def enqueue_record(self, rec: Record, conn: sqlite3.Connection) -> None:
        """Queue a final record for the county, in the caller's transaction (same id replaces)."""
        store = self.host.store
        assert store is not None
        store.enqueue(
            "record",
            rec.record_id,
            "record",
            record_message(rec, self.host.cfg.county),
            replace=True,
            conn=conn,
        )

    def record_write_bug(self, record_id: str, what: str) -> None:
        """A write that matched no row: nothing is lost, but something is wrong; say which."""
        detail = {"record_id": record_id, "what": what}
        self.execute(
            [
                c.Log("error", "record_write_bug", f"record {record_id}: {what}", detail),
                c.Alarm("record_write_bug", "raised", "warning", detail),
            ]
        )

    # -- alarms and the event log ----------------------------------------------------------

    def persist_alarm(self, alarm: c.Alarm, at: float | None = None) -> None:
        from agent.adapters.sqlite.alarms import persist_alarm_change
        from agent.domain.health import AlarmChange

        host = self.host
        assert host.store is not None
        change = AlarmChange(
            alarm.name, alarm.action, at or host.clock.wall(), alarm.severity, alarm.detail
        )  # type: ignore[arg-type]
        persist_alarm_change(
            host.store,
            change,
            host.cfg.terminal,
            host.cfg.county,
            clock_state=host.core.clock_state() if host.core else None,
        )
        host.notify("alarm", change)

    def log(self, entry: c.Log) -> None:
        """An event-log entry, within the per-kind rate limit."""
        verdict = self.log_limiter.admit(entry.kind, self.host.clock.monotonic())
        if verdict is None:
            return
        if verdict:  # messages of this kind were held back: say how many, once
            self._log_now(
                c.Log(
                    "warning",
                    "log_suppressed",
                    f"{verdict} more '{entry.kind}' messages were suppressed (rate limit)",
                    {"kind": entry.kind, "suppressed": verdict},
                )
            )
        self._log_now(entry)

    def _log_now(self, entry: c.Log) -> None:
        log.log(LEVELS.get(entry.level, logging.INFO), "%s: %s", entry.kind, entry.message)
        store = self.host.store
        if store is not None:
            store.add_event(entry.level, entry.kind, entry.message, entry.data or None)
        self.host.notify("log", entry)

    def store_event(
        self, level: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """An event-log line that may be lost when the store refuses writes (counted, noted)."""
        store = self.host.store
        assert store is not None
        try:
            store.add_event(level, kind, message, data)
        except (sqlite3.Error, OSError) as exc:
            self.held.action_failed(c.Log(level, kind, message, data or {}), exc)

    # -- the player and the process --------------------------------------------------------

    def restart_player(self, reason: str) -> None:
        host = self.host
        new = host.player_factory()
        if hasattr(new, "start_thread"):
            new.start_thread()
        # The media-check thread hands media to ``host.player`` under the gate's lock: swap it
        # under the same lock, so a check never talks to a player that is being thrown away.
        with self.media.lock:
            old, host.player = host.player, new
        # A hung worker may never return: shut it down from a throw-away thread.
        threading.Thread(target=old.shutdown, kwargs={"timeout": 5.0}, daemon=True).start()
        log.warning("player restarted: %s", reason)

    def _exit_process(self, reason: str) -> None:
        host = self.host
        store = host.store
        assert store is not None
        log.error("exiting so that systemd restarts the agent: %s", reason)
        host.exit_code = 3
        host.request_stop()
        key = f"process_restarts/{host.boot}"
        try:
            store.put(key, str(int(store.get(key, "0") or 0) + 1))
        except (sqlite3.Error, OSError, ValueError) as exc:
            # The budget is then not counted for this restart: systemd's own start limit
            # still bounds a loop, and exiting is what matters now.
            log.error("cannot count this restart (%s); exiting anyway", exc)
