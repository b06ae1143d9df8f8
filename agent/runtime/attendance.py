"""Attendance: how many people watched a collective study session.

Runs on the core thread (the control socket calls :func:`apply_attendance` through
``runtime.call``). One transaction: the record's ``attendance`` is set and its ``rev`` bumped, the
record message is queued again under the same msg_id (``replace=True``, so an unsent older copy
is dropped and the county sees one record with the newer rev), and an event is logged.

A record that is still open (the course is playing now) is updated in the store and in the core's
own copy, and is not queued: it goes out with its attendance when it closes.

Which record: ``ref`` may be a record id, a unique prefix of one (at least 4 characters), or the
record number (``seq``) that ``stationctl records`` shows. Without ``ref``, the latest record that
was actually shown (it has ``started_at``) is used.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.adapters.sqlite import attendance as records
from agent.adapters.sqlite.store import Store
from agent.domain import core as c
from agent.domain.records import OUTCOMES, Record

log = logging.getLogger("agent.runtime.attendance")

MAX_ATTENDANCE = 10000
FINAL = OUTCOMES


class AttendanceError(Exception):
    def __init__(self, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def find_record(store: Store, ref: str | None) -> Record:
    db = store.db
    if ref is None:
        latest = records.latest_shown(db)
        if latest is None:
            raise AttendanceError("no_record", "no course has been shown yet")
        return latest
    ref = ref.strip().lstrip("#")
    if ref.isdigit() and len(ref) <= 12:
        rec = records.by_seq(db, int(ref))
        if rec is not None:
            return rec
    rec = records.by_id(db, ref)
    if rec is not None:
        return rec
    if len(ref) >= 4:
        found = records.by_prefix(db, ref)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AttendanceError("ambiguous", f"{ref!r} matches several records", ref=ref)
    raise AttendanceError("no_record", f"no record {ref!r}", ref=ref)


def set_attendance(
    store: Store,
    county: str,
    count: int,
    ref: str | None = None,
) -> tuple[Record, int | None, bool]:
    """Set the attendance; returns (record after, previous value, queued for sending)."""
    from agent.runtime.loop import record_message

    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_ATTENDANCE:
        raise AttendanceError(
            "bad_count", f"attendance must be a whole number from 0 to {MAX_ATTENDANCE}"
        )
    with store.transaction() as conn:
        rec = find_record(store, ref)
        if rec.started_at is None:
            raise AttendanceError(
                "not_shown",
                f"record {rec.seq} ({rec.title}) was never shown ({rec.outcome or 'pending'})",
                seq=rec.seq,
                outcome=rec.outcome,
            )
        previous = rec.attendance
        rec.attendance = count
        rec.rev += 1
        records.set_attendance(conn, rec.record_id, count, rec.rev)
        queued = rec.outcome in FINAL
        if queued:
            store.enqueue(
                "record",
                rec.record_id,
                "record",
                record_message(rec, county),
                replace=True,
                conn=conn,
            )
        before = "" if previous is None else f" (was {previous})"
        store.add_event(
            "info",
            "attendance",
            f"{rec.title}: attendance {count}{before}, record {rec.seq}",
            {
                "record_id": rec.record_id,
                "seq": rec.seq,
                "attendance": count,
                "previous": previous,
                "queued": queued,
            },
            conn=conn,
        )
    return rec, previous, queued


def apply_attendance(runtime: Any, count: int, ref: str | None = None) -> dict[str, Any]:
    """The control socket's attendance command; call on the core thread (``runtime.call``)."""
    store = runtime.store
    if store is None:
        raise AttendanceError("not_ready", "the agent's store is not open")
    rec, previous, queued = set_attendance(store, runtime.cfg.county, count, ref)
    if runtime.core is not None:
        # The session playing now, if it is this record's, keeps the change in its next save.
        runtime.core.handle(c.AttendanceSet(rec.record_id, count, rec.rev))
    if queued:
        # Listeners (the MQTT link) learn that a record message waits in the outbox.
        for listener in list(runtime.listeners):
            try:
                listener("record", rec)
            except Exception:
                # The record is committed and queued; a listener only speeds up its sending.
                log.exception("attendance: listener %r failed for record %s", listener, rec.seq)
    return {
        "message": f"attendance {count} recorded for {rec.title}",
        "record_id": rec.record_id,
        "seq": rec.seq,
        "title": rec.title,
        "course_id": rec.course_id,
        "started_at": rec.started_at,
        "attendance": count,
        "previous": previous,
        "rev": rec.rev,
        "queued": queued,
    }
