"""The delivery policy for the SQLite outbox: pure, no I/O, no threads, no clock of its own.

What it decides
- Order: two streams, each in outbox id order: ``records`` and ``other`` (events, acks, replies,
  link summaries). A backlog of records never holds back a command reply.
- Window: at most ``inflight_window`` QoS 1 messages published and not yet PUBACKed. In ``ack``
  mode at most ``ack_window`` records published and not yet confirmed by the county collector
  (back-pressure: a collector that is away must not get its broker queue flooded).
- Confirmation: a PUBACK confirms everything except records in ``ack`` mode, which wait for the
  collector's ``record/ack`` naming their ``record_id`` and a ``rev`` at least theirs. Only a
  confirmed row may leave the outbox (the caller deletes it).
- Retry: after a reconnect everything still in the outbox is sent again from the start (the
  receiver drops duplicates by id). Within a connection, a record PUBACKed but not acked after
  ``ack_timeout`` is sent again, and so is a message the broker refused (MQTT 5 reason >= 0x80).

The caller (``agent.adapters.mqtt.sending``) fetches rows with ``want()``/``take()``, publishes them, and
reports ``sent()``, ``on_puback()`` and ``on_record_ack()``; ``due_retries()`` names rows to send
again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

RECORDS = "records"
OTHER = "other"
STREAMS = (OTHER, RECORDS)


@dataclass(frozen=True)
class Row:
    id: int
    msg_id: str
    kind: str
    topic: str  # suffix under the terminal root
    payload: str
    qos: int = 1
    retain: bool = False
    rev: int | None = None  # records only

    @property
    def stream(self) -> str:
        return RECORDS if self.kind == "record" else OTHER


@dataclass
class _Inflight:
    row: Row
    sent_at: float
    acked: bool = False  # the collector's ack came before the PUBACK


@dataclass
class _Waiting:
    row: Row
    since: float
    refused: bool = False


@dataclass
class Counters:
    published: int = 0
    republished: int = 0
    confirmed_puback: int = 0
    confirmed_ack: int = 0
    refused: int = 0
    retried: int = 0


@dataclass
class OutboxPolicy:
    record_confirmation: str = "ack"  # "ack" | "puback"
    inflight_window: int = 100
    ack_window: int = 1000
    ack_timeout: float = 300.0
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        if self.record_confirmation not in ("ack", "puback"):
            raise ValueError("record_confirmation must be 'ack' or 'puback'")
        self.window = self.inflight_window
        self._ever_sent: set[int] = set()
        self.reset()

    # -- connection lifecycle ------------------------------------------------------------

    def reset(self, window: int | None = None) -> None:
        """A new connection: forget what was in flight; everything unconfirmed goes out again.

        ``window`` lowers the inflight window (an MQTT 5 broker's Receive Maximum).
        """
        self.window = min(self.inflight_window, window) if window else self.inflight_window
        self.cursor = {s: 0 for s in STREAMS}
        self.drained = {s: False for s in STREAMS}
        self.inflight: dict[int, _Inflight] = {}  # mid -> entry
        self.waiting: dict[int, _Waiting] = {}  # row id -> entry (PUBACKed record or refused)
        self._by_msg: dict[str, set[int]] = defaultdict(set)  # msg_id -> mids in flight

    def wake(self) -> None:
        """New rows were written: the streams are worth another look."""
        self.drained = {s: False for s in STREAMS}

    # -- sending --------------------------------------------------------------------------

    def _records_outstanding(self) -> int:
        flying = sum(1 for e in self.inflight.values() if e.row.kind == "record")
        return flying + sum(1 for w in self.waiting.values() if w.row.kind == "record")

    def room(self) -> int:
        return max(0, self.window - len(self.inflight))

    def room_for(self, stream: str) -> int:
        """How many rows of ``stream`` may be published now (the windows allowing)."""
        n = self.room()
        if stream == RECORDS and self.record_confirmation == "ack":
            n = min(n, self.ack_window - self._records_outstanding())
        return max(0, n)

    def want(self, stream: str) -> int:
        """How many rows of ``stream`` may be fetched and published now (0: none)."""
        return 0 if self.drained[stream] else self.room_for(stream)

    def take(self, stream: str, rows: list[Row], asked: int) -> list[Row]:
        """Rows fetched after ``cursor[stream]`` in id order; returns those to publish now."""
        if len(rows) < asked:
            self.drained[stream] = True
        if rows:
            self.cursor[stream] = max(self.cursor[stream], rows[-1].id)
        return rows

    def sent(self, row: Row, mid: int, now: float) -> None:
        self.inflight[mid] = _Inflight(row, now)
        self._by_msg[row.msg_id].add(mid)
        if row.id in self._ever_sent:
            self.counters.republished += 1
        else:
            self._ever_sent.add(row.id)
            if len(self._ever_sent) > 200000:  # only a statistic; do not grow without bound
                self._ever_sent.clear()
        self.counters.published += 1

    def on_puback(self, mid: int, ok: bool, now: float) -> int | None:
        """The broker answered ``mid``. Returns the row id now confirmed (to delete), if any."""
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return None
        row = entry.row
        mids = self._by_msg.get(row.msg_id)
        if mids is not None:
            mids.discard(mid)
            if not mids:
                del self._by_msg[row.msg_id]
        if not ok:
            self.counters.refused += 1
            self.waiting[row.id] = _Waiting(row, now, refused=True)
            return None
        if row.kind == "record" and self.record_confirmation == "ack":
            if entry.acked:
                return None  # the collector confirmed it already; its row is gone
            self.waiting[row.id] = _Waiting(row, now)
            return None
        self.counters.confirmed_puback += 1
        return row.id

    def on_record_ack(self, acks: list[tuple[str, int]]) -> int:
        """The collector confirmed these (record_id, rev). Returns how many we were waiting for.

        The caller deletes ``kind='record' AND msg_id=? AND rev<=?`` from the outbox whatever
        this returns (the ack may answer a publish from an earlier connection).
        """
        best: dict[str, int] = {}
        for rid, rev in acks:
            best[rid] = max(rev, best.get(rid, 0))
        hit = 0
        for row_id, w in list(self.waiting.items()):
            rev = best.get(w.row.msg_id)
            if rev is not None and w.row.kind == "record" and (w.row.rev or 1) <= rev:
                del self.waiting[row_id]
                hit += 1
        for rid, rev in best.items():
            for mid in self._by_msg.get(rid, ()):
                e = self.inflight[mid]
                if e.row.kind == "record" and (e.row.rev or 1) <= rev and not e.acked:
                    e.acked = True
                    hit += 1
        self.counters.confirmed_ack += hit
        return hit

    def due_retries(self, now: float, limit: int | None = None) -> list[Row]:
        """Rows to publish again: no collector ack (or a refusal) for ``ack_timeout``."""
        room = self.room() if limit is None else min(limit, self.room())
        out: list[Row] = []
        for row_id, w in sorted(self.waiting.items()):
            if len(out) >= room:
                break
            if now - w.since >= self.ack_timeout:
                del self.waiting[row_id]
                out.append(w.row)
        self.counters.retried += len(out)
        return out

    def next_retry_at(self) -> float | None:
        if not self.waiting:
            return None
        return min(w.since for w in self.waiting.values()) + self.ack_timeout

    def snapshot(self) -> dict[str, int]:
        return {
            "inflight": len(self.inflight),
            "awaiting_ack": sum(1 for w in self.waiting.values() if not w.refused),
            "refused_pending": sum(1 for w in self.waiting.values() if w.refused),
            "window": self.window,
            **self.counters.__dict__,
        }
