"""What the link sends: outbox rows within the confirmation windows, their re-sends, the batched
deletion of confirmed rows, and the heartbeat and status messages.

Runs on the link's worker thread only. The outbox (through the bridge) is the single memory of
what is unsent; ``OutboxPolicy`` decides what may go out and what is confirmed, this class does
the publishing and the deleting.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from agent import __version__
from agent.adapters.mqtt.bridge import BridgeClosed
from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.conn import failed as _failed
from agent.adapters.mqtt.connection import Connection
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.outbox import OTHER, RECORDS, OutboxPolicy, Row
from agent.domain.records import utc_now_text

log = logging.getLogger("agent.adapters.mqtt")

FETCH_MAX = 500  # rows per outbox read
FLUSH_ROWS = 500  # confirmed rows deleted per transaction, at most
FLUSH_S = 0.05  # ... or after this long
RECHECK_S = 5.0  # look at the outbox (and paho's socket state) this often even without a wake-up


class Sender:
    """Publishes for the current connection of ``conn`` and keeps the confirmations until they
    are deleted from the outbox."""

    def __init__(
        self,
        conn: Connection,
        m: MqttConfig,
        bridge: Any,
        policy: OutboxPolicy,
        *,
        link_status: Callable[[], dict[str, Any]],
        mono: Callable[[], float],
    ) -> None:
        self.conn = conn
        self.m = m
        self.bridge = bridge
        self.policy = policy
        self.link_status = link_status
        self.mono = mono
        self.next_heartbeat = 0.0
        self.heartbeat_seq = 0
        self.next_recheck = 0.0
        self.flush_due: float | None = None
        self._confirm_ids: list[int] = []
        self._acks: list[tuple[str, int]] = []
        self._retried: list[int] = []
        self._buffer: dict[str, deque[Row]] = {OTHER: deque(), RECORDS: deque()}

    def _topic(self, suffix: str) -> str:
        return t.topic(self.conn.county, self.conn.terminal, suffix)

    # -- one connection's bookkeeping ----------------------------------------------------------------

    def on_connected(self, now: float, window: int | None) -> None:
        """A new connection: what the last one confirmed must not go out again, the windows
        start empty, and rows read ahead for the old connection are read again."""
        self.flush(force=True)
        self.policy.reset(window)
        for buf in self._buffer.values():
            buf.clear()
        self.next_heartbeat = now + self.m.heartbeat_seconds
        self.next_recheck = now + RECHECK_S

    def due_times(self) -> list[float]:
        """When the connected link next has something to do here (for the worker's sleep)."""
        due = [self.next_heartbeat, self.next_recheck]
        retry = self.policy.next_retry_at()
        if retry is not None:
            due.append(retry)
        return due

    def tick(self, now: float) -> None:
        """The timed work of a connected link: heartbeat, a periodic look at the outbox, re-sends."""
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.m.heartbeat_seconds
            self.heartbeat()
        if now >= self.next_recheck:
            self.next_recheck = now + RECHECK_S
            self.policy.wake()
        if self.bridge.status_stale:  # something the county looks at changed (content readiness)
            self.bridge.status_stale = False
            self.publish_status(None)
        retry = self.policy.next_retry_at()
        if retry is not None and now >= retry:
            self.retry(now)

    # -- confirmations ---------------------------------------------------------------------------------

    def on_puback(self, mid: int, rc: Any) -> None:
        row_id = self.policy.on_puback(mid, not _failed(rc), self.mono())
        if _failed(rc):
            log.warning("broker refused message mid=%s: %s", mid, rc)
        if row_id is not None:
            self._confirm_ids.append(row_id)

    def on_record_acks(self, pairs: list[tuple[str, int]]) -> None:
        self.policy.on_record_ack(pairs)
        self._acks.extend(pairs)

    def flush(self, force: bool = False) -> None:
        """Delete confirmed rows, batched: one transaction (one fsync) per FLUSH_ROWS rows or
        FLUSH_S seconds, whichever comes first."""
        pending = len(self._confirm_ids) + len(self._acks) + len(self._retried)
        if not pending:
            self.flush_due = None
            return
        now = self.mono()
        if self.flush_due is None:
            self.flush_due = now + FLUSH_S
        if not force and pending < FLUSH_ROWS and now < self.flush_due:
            return
        ids, acks, retried = self._confirm_ids, self._acks, self._retried
        self._confirm_ids, self._acks, self._retried = [], [], []
        self.flush_due = None
        try:
            self.bridge.confirm(ids, acks, retried)
        except BridgeClosed:
            raise
        except Exception:
            # Keep them: deleting later is harmless, deleting never only costs a duplicate.
            self._confirm_ids.extend(ids)
            self._acks.extend(acks)
            raise

    # -- the outbox ----------------------------------------------------------------------------------

    def publish_row(self, row: Row) -> bool:
        client = self.conn.client
        if client is None:
            return False
        info = client.publish(
            self._topic(row.topic), with_msg_id(row.payload, row.msg_id), row.qos, row.retain
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self.policy.sent(row, info.mid, self.mono())
        return True

    def pump(self) -> None:
        """Publish what the windows allow, in order, reading the outbox in big slices."""
        for stream in (OTHER, RECORDS):
            buf = self._buffer[stream]
            while self.conn.connected:
                room = self.policy.room_for(stream)
                if room <= 0:
                    break
                if not buf:
                    if self.policy.drained[stream]:
                        break
                    rows = self.bridge.fetch(stream, self.policy.cursor[stream], FETCH_MAX)
                    buf.extend(self.policy.take(stream, rows, FETCH_MAX))
                    if not buf:
                        break
                for _ in range(min(room, len(buf))):
                    if not self.publish_row(buf.popleft()):
                        return

    def retry(self, now: float) -> None:
        due = self.policy.due_retries(now)
        if not due:
            return
        current = {r.id: r for r in self.bridge.fetch_ids([r.id for r in due])}
        for row in due:
            fresh = current.get(row.id)
            if fresh is None:
                continue  # confirmed or replaced meanwhile
            if self.publish_row(fresh):
                self._retried.append(fresh.id)
        log.info(
            "re-sent %d message(s) with no confirmation after %.0f s",
            len(current),
            self.m.ack_timeout_seconds,
        )

    # -- heartbeat and status ------------------------------------------------------------------------

    def heartbeat(self) -> None:
        conn = self.conn
        client = conn.client
        if client is None:
            return
        summary = self.bridge.summary()
        conn.clock = summary.get("clock", conn.clock)
        self.heartbeat_seq += 1
        payload = p.heartbeat(
            ts=utc_now_text(),
            terminal=conn.terminal,
            seq=self.heartbeat_seq,
            session=conn.session,
            agent_version=__version__,
            summary=summary,
        )
        info = client.publish(self._topic(t.HEARTBEAT), p.dumps(payload), 0, False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            conn.lost(f"heartbeat not sent: {mqtt.error_string(info.rc)}")

    def publish_status(self, snapshot: dict[str, Any] | None) -> None:
        """The retained status message: the agent's snapshot (fresh when ``None``) plus the
        link's own view of itself."""
        conn = self.conn
        client = conn.client
        if client is None or not conn.connected:
            return
        if snapshot is None:
            snapshot = self.bridge.status()
        conn.clock = snapshot.get("clock", conn.clock)
        payload = p.status(
            ts=utc_now_text(),
            session=conn.session,
            agent_version=__version__,
            snapshot=snapshot,
            link=self.link_status(),
        )
        client.publish(self._topic(t.STATUS), p.dumps(payload), 1, True)


def with_msg_id(payload: str, msg_id: str) -> bytes:
    """The outbox row's stable id goes into the message as ``msg_id`` (the county drops
    duplicates by it); a cheap splice, the stored JSON is not parsed again."""
    if payload.startswith("{") and '"msg_id":' not in payload:
        head = '{"msg_id":' + json.dumps(msg_id, ensure_ascii=False)
        payload = head + ("}" if payload == "{}" else "," + payload[1:])
    return payload.encode("utf-8")
