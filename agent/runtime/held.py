"""Writes the store refused, held in memory in order and retried, within a bound.

A record or an alarm must reach the store: when a write fails (disk full, read-only, locked,
an I/O error, or one write that fails alone) it is held here and tried again, in order, never
dropped while memory allows. Minor writes (event-log lines, checkpoints) are counted as lost
instead: the held record carries its own progress. Each trouble of the whole store raises one
alarm, stored (raised at the trouble's start, then cleared) once writes go in again; until then
the status section ``store_writes`` and the journal say it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.adapters.sqlite.errors import FULL, STORE_TROUBLES, StoreError, classify_error
from agent.domain import core as c
from agent.domain.records import utc_text
from agent.runtime.host import Host

log = logging.getLogger("agent")

MUST_PERSIST = (c.SaveRecord, c.Alarm)
# Actions that write to the store (the others drive the player or answer a caller).
STORE_WRITES = (c.SaveRecord, c.Alarm, c.Checkpoint, c.Log)
# Held writes, at most (a held record measured about 0.8 KB: 2000 are under 2 MB).
HELD_MAX = 2000
RETRY_S = 1.0  # how often held writes are tried again, and a degraded store reopened
# The alarm for each trouble of the whole store; a write that fails alone is record_write_failed.
TROUBLE_ALARMS = {FULL: "disk_full"} | {
    kind: "store_unwritable" for kind in STORE_TROUBLES if kind != FULL
}

Write = Callable[[c.Action], None]
PersistAlarm = Callable[..., None]  # (alarm, at=None)


@dataclass
class WriteTrouble:
    """Why the store does not take writes, since when; its alarm is stored once it can be."""

    since: float
    detail: dict[str, Any]
    raise_stored: bool = False


def write_key(action: c.Action) -> str:
    """Held writes with the same key keep their order; others may pass one that keeps failing."""
    if isinstance(action, c.SaveRecord):
        return f"record/{action.record.record_id}"
    if isinstance(action, c.Alarm):
        return f"alarm/{action.name}"
    return type(action).__name__


class HeldWrites:
    """The held records and alarms, the store's troubles, and their retry.

    ``items``, ``dropped`` and ``troubles`` are changed in place only: the runtime shows them as
    its own attributes (``pending_writes``, ``held_dropped``, ``write_trouble``).
    """

    name = "store_writes"  # its status section

    def __init__(self, host: Host, write: Write, persist_alarm: PersistAlarm) -> None:
        self.host = host
        self._write = write
        self._persist_alarm = persist_alarm
        self.items: list[c.Action] = []
        self.max = HELD_MAX
        self.dropped: dict[str, int] = {}  # held writes given up at the bound, by kind
        self.dropped_writes = 0  # minor writes (events, checkpoints) lost while in trouble
        self.troubles: dict[str, WriteTrouble] = {}  # alarm name -> the trouble
        self._next_retry_mono = 0.0  # time.monotonic(): I/O pacing, not core time
        self._failed_keys: set[str] = set()  # held writes already reported as failing

    # -- taking actions --------------------------------------------------------------------

    def behind_held(self, action: c.Action) -> bool:
        """While writes are held, a record or alarm queues behind them (their order is kept),
        and a checkpoint of a held record is left out: the held record carries its progress."""
        if not self.items:
            return False
        if isinstance(action, MUST_PERSIST):
            self.hold(action)
            return True
        if isinstance(action, c.Checkpoint):
            key = f"record/{action.record_id}"
            return any(write_key(held) == key for held in self.items)
        return False

    def action_failed(self, action: c.Action, exc: Exception) -> None:
        """A record or alarm that was not written is held; a minor write is counted as lost.

        SQLite rolls a failed transaction back, so the store stays consistent; playback goes on.
        """
        kind = classify_error(exc) if isinstance(action, STORE_WRITES) else None
        if isinstance(action, MUST_PERSIST):
            self.hold(action)
            if kind in STORE_TROUBLES:
                self.trouble(kind, exc)
            else:
                self.write_failed(action, exc)
        elif kind in STORE_TROUBLES:
            self.dropped_writes += 1
            self.trouble(kind, exc)
        else:
            log.exception("action %s failed", type(action).__name__)

    def hold(self, action: c.Action) -> None:
        """Keep a record or alarm in memory, in order, until the store takes it."""
        self.items.append(action)
        self._enforce_bound()

    @property
    def disk_full_since(self) -> float | None:
        trouble = self.troubles.get("disk_full")
        return trouble.since if trouble else None

    def trouble(self, kind: str, exc: BaseException) -> None:
        """The whole store refuses writes (full, read-only, locked, I/O error): note it once.

        Its alarm cannot be stored now; it is stored, raised at this time, when writes go in
        again. Meanwhile the status (``store_writes``) and the journal say it.
        """
        name = TROUBLE_ALARMS[kind]
        if name in self.troubles:
            return
        cfg = self.host.cfg
        detail = {"state_dir": str(cfg.state_dir), "reason": kind, "error": str(exc)[:300]}
        self.troubles[name] = WriteTrouble(self.host.clock.wall(), detail)
        log.error(
            "%s: the store %s cannot be written (%s: %s); records and alarms are kept in "
            "memory until it can",
            name,
            cfg.db_path,
            kind,
            exc,
        )

    def write_failed(self, action: c.Action, exc: BaseException) -> None:
        """One record or alarm failed to write while the store otherwise works (a constraint, a
        bug): it is held like the rest, and ``record_write_failed`` is raised at once (the
        alarms table most likely takes it)."""
        key = write_key(action)
        if key not in self._failed_keys:
            self._failed_keys.add(key)
            log.error(
                "record_write_failed: %s was not written (%s: %s); it is held and tried again",
                key,
                type(exc).__name__,
                exc,
            )
        if "record_write_failed" in self.troubles:
            return
        detail: dict[str, Any] = {"write": key, "error": f"{type(exc).__name__}: {exc}"[:300]}
        if isinstance(action, c.SaveRecord):
            detail["record_id"] = action.record.record_id
        trouble = WriteTrouble(self.host.clock.wall(), detail)
        self.troubles["record_write_failed"] = trouble
        try:
            self._persist_alarm(
                c.Alarm("record_write_failed", "raised", "critical", detail), at=trouble.since
            )
            trouble.raise_stored = True
        except Exception as err:
            log.error("cannot store the record_write_failed alarm yet: %s", err)

    # -- the bound -------------------------------------------------------------------------

    def _enforce_bound(self) -> None:
        """At most ``max`` held writes. First, at no loss, a record save that a later held
        save of the same record supersedes is folded into it; then the oldest alarm goes; a
        record goes only when nothing else is left, written in full to the journal first.
        Alarms and records given up are counted (``dropped``, and in the trouble's alarm).
        """
        while len(self.items) > self.max:
            if self._fold_superseded_save():
                continue
            index = next(
                (i for i, a in enumerate(self.items) if not isinstance(a, c.SaveRecord)), 0
            )
            dropped = self.items.pop(index)
            kind = "record" if isinstance(dropped, c.SaveRecord) else "alarm"
            self.dropped[kind] = self.dropped.get(kind, 0) + 1
            if isinstance(dropped, c.SaveRecord):
                log.error(
                    "held writes at their bound (%d): record %s can no longer be kept in "
                    "memory; here it is in full, to be recovered from the journal: %s",
                    self.max,
                    dropped.record.record_id,
                    json.dumps(dropped.record.to_dict(), ensure_ascii=False),
                )
            else:
                log.error(
                    "held writes at their bound (%d): the oldest held %s was given up: %s",
                    self.max,
                    kind,
                    dropped,
                )

    def _fold_superseded_save(self) -> bool:
        """Drop the oldest held save whose record has a later held save; that one then inserts
        the record if the dropped one would have. True when one was folded."""
        latest: dict[str, int] = {}
        for i, held in enumerate(self.items):
            if isinstance(held, c.SaveRecord):
                latest[held.record.record_id] = i
        for i, held in enumerate(self.items):
            if isinstance(held, c.SaveRecord) and latest[held.record.record_id] != i:
                later = latest[held.record.record_id]
                after = self.items[later]
                assert isinstance(after, c.SaveRecord)
                self.items[later] = c.SaveRecord(after.record, new=held.new or after.new)
                del self.items[i]
                return True
        return False

    # -- retrying --------------------------------------------------------------------------

    def retry_due(self) -> float | None:
        """When (``time.monotonic()``) the next retry is due; None when nothing waits."""
        if self.host.store is None or (not self.items and not self.troubles):
            return None
        return self._next_retry_mono

    def retry(self) -> None:
        """Write what is held, in order, then store each trouble's alarm once writes go in.

        Tried at most every RETRY_S (a try may wait for a lock), and always when stopping.
        """
        if self.host.store is None or (not self.items and not self.troubles):
            return
        if time.monotonic() < self._next_retry_mono and not self.host.stop_requested.is_set():
            return
        try:
            if self._reopen_store() and self._flush():
                self._end_troubles()
        finally:
            self._next_retry_mono = time.monotonic() + RETRY_S

    def flush_at_exit(self) -> None:
        """Last chance before the store closes: write what is held; a record that still cannot
        be written goes in full to the journal, since memory is about to go."""
        self._next_retry_mono = 0.0
        self.retry()
        latest = {a.record.record_id: a.record for a in self.items if isinstance(a, c.SaveRecord)}
        for record_id, rec in latest.items():
            log.error(
                "stopping with record %s not in the store; here it is in full, to be "
                "recovered from the journal: %s",
                record_id,
                json.dumps(rec.to_dict(), ensure_ascii=False),
            )
        if self.items:
            log.error("stopping with %d write(s) the store did not take", len(self.items))

    def _reopen_store(self) -> bool:
        """A store opened degraded (full or read-only at start) is opened normally when it can."""
        store = self.host.store
        assert store is not None
        if store.degraded is None:
            return True
        try:
            if store.reopen():
                log.warning("the store %s can be written again", store.path)
                return True
        except StoreError as exc:
            log.error("the store %s cannot be opened again: %s", store.path, exc)
        return False

    def _flush(self) -> bool:
        """One pass over the held writes; False while the store refuses writes as a whole.

        A write that fails alone keeps its place and holds back only later writes of the same
        record or alarm; the others go in.
        """
        held = list(self.items)
        self.items.clear()
        kept: list[c.Action] = []
        blocked: set[str] = set()
        refused = False
        for action in held:
            key = write_key(action)
            if refused or key in blocked:
                kept.append(action)
                continue
            try:
                self._write(action)
            except Exception as exc:
                kept.append(action)
                kind = classify_error(exc)
                if kind in STORE_TROUBLES:
                    refused = True
                    self.trouble(kind, exc)
                else:
                    blocked.add(key)
                    self.write_failed(action, exc)
        self.items[:0] = kept
        self._enforce_bound()
        return not refused

    def _end_troubles(self) -> None:
        """Writes go in again: store each trouble's alarm (raised at its start, then cleared)."""
        for name, trouble in list(self.troubles.items()):
            if name == "record_write_failed" and self.items:
                continue  # a write still fails on its own
            detail = {
                **trouble.detail,
                "dropped_writes": self.dropped_writes,
                "held_dropped": dict(self.dropped),
            }
            try:
                if not trouble.raise_stored:
                    self._persist_alarm(
                        c.Alarm(name, "raised", "critical", detail), at=trouble.since
                    )
                    trouble.raise_stored = True
                self._persist_alarm(c.Alarm(name, "cleared", "info", detail))
            except Exception as exc:
                log.error("cannot store the %s alarm yet: %s", name, exc)
                return
            del self.troubles[name]
            log.warning(
                "%s cleared: the store takes writes again and held writes are in "
                "(%d minor writes lost; held writes given up: %s)",
                name,
                self.dropped_writes,
                self.dropped or "none",
            )
        if not self.troubles:
            self.dropped_writes = 0
            self.dropped.clear()
            self._failed_keys.clear()

    def section(self) -> dict[str, Any]:
        """What the store has not taken yet; the troubles' alarms are stored only once it can."""
        store = self.host.store
        return {
            "degraded": store.degraded if store is not None else None,
            "troubles": {
                name: {"since": utc_text(t.since), **t.detail} for name, t in self.troubles.items()
            },
            "held_writes": len(self.items),
            "dropped_writes": self.dropped_writes,
            "held_dropped": dict(self.dropped),
        }
