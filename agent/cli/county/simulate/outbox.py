"""One terminal's outbox in memory, delivered by the agent's own policy
(:class:`agent.domain.outbox.OutboxPolicy`): the same windows, the same resend after
``ack_timeout`` and after every reconnect, the same rule that a record leaves only when the
collector's ``record/ack`` names its ``record_id`` with a ``rev`` at least its own. A simulated
terminal therefore loads the broker and the collector exactly as a real one would, backlog and
duplicates included."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.domain.outbox import OTHER, RECORDS, OutboxPolicy, Row

# publish(row) -> the MQTT message id, or None when the connection cannot take it now
Publish = Callable[[Row], "int | None"]


@dataclass
class MemOutbox:
    policy: OutboxPolicy
    rows: dict[int, Row] = field(default_factory=dict)
    ids: dict[str, list[int]] = field(default_factory=lambda: {RECORDS: [], OTHER: []})
    created: dict[int, float] = field(default_factory=dict)  # row id -> when it was queued
    by_msg: dict[str, list[int]] = field(default_factory=dict)  # records: msg_id -> row ids
    next_id: int = 1

    def add(
        self,
        kind: str,
        msg_id: str,
        topic: str,
        payload: str,
        now: float,
        *,
        retain: bool = False,
        rev: int | None = None,
    ) -> Row:
        row = Row(self.next_id, msg_id, kind, topic, payload, 1, retain, rev)
        self.next_id += 1
        self.rows[row.id] = row
        self.ids[row.stream].append(row.id)  # ids only grow: the list stays sorted
        self.created[row.id] = now
        if kind == "record":
            self.by_msg.setdefault(msg_id, []).append(row.id)
        self.policy.wake()
        return row

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> int:
        return len(self.ids[RECORDS])

    def oldest_record(self) -> float | None:
        """When the oldest record still waiting was queued (monotonic), or None."""
        ids = self.ids[RECORDS]
        return self.created.get(ids[0]) if ids else None

    def _delete(self, row_id: int) -> float | None:
        row = self.rows.pop(row_id, None)
        if row is None:
            return None
        same = self.by_msg.get(row.msg_id) if row.kind == "record" else None
        if same is not None:
            same.remove(row_id)
            if not same:
                del self.by_msg[row.msg_id]
        ids = self.ids[row.stream]
        i = bisect.bisect_left(ids, row_id)
        if i < len(ids) and ids[i] == row_id:
            del ids[i]
        return self.created.pop(row_id, None)

    def pump(self, publish: Publish, now: float) -> int:
        """Publish what the windows allow (retries first); returns how many went out."""
        sent = 0
        for row in self.policy.due_retries(now):
            if row.id not in self.rows:
                continue
            if not self._send(publish, row, now):
                return sent
            sent += 1
        for stream in (OTHER, RECORDS):
            asked = self.policy.want(stream)
            if asked <= 0:
                continue
            ids = self.ids[stream]
            start = bisect.bisect_right(ids, self.policy.cursor[stream])
            rows = [self.rows[i] for i in ids[start : start + asked]]
            for row in self.policy.take(stream, rows, asked):
                if not self._send(publish, row, now):
                    self.policy.wake()
                    return sent
                sent += 1
        return sent

    def _send(self, publish: Publish, row: Row, now: float) -> bool:
        mid = publish(row)
        if mid is None:
            return False
        self.policy.sent(row, mid, now)
        return True

    def on_puback(self, mid: int, ok: bool, now: float) -> None:
        row_id = self.policy.on_puback(mid, ok, now)
        if row_id is not None:
            self._delete(row_id)

    def on_record_ack(self, acks: list[tuple[str, int]]) -> list[float]:
        """Delete the records the collector confirmed; returns when each deleted one was
        queued (for the creation-to-ack latency)."""
        self.policy.on_record_ack(acks)
        best: dict[str, int] = {}
        for rid, rev in acks:
            best[rid] = max(rev, best.get(rid, 0))
        queued = []
        for rid, rev in best.items():
            for row_id in list(self.by_msg.get(rid, ())):
                if (self.rows[row_id].rev or 1) <= rev:
                    when = self._delete(row_id)
                    if when is not None:
                        queued.append(when)
        return queued
