"""The durable record collector: the county's end of store-and-forward.

- Storage is SQLite (a file, the default) or PostgreSQL (a ``postgresql://`` URL), behind one
  interface (:mod:`agent.cli.county.storage`); what it does with a batch is described there.
- Alone, the collector keeps a persistent session (clean_session/clean_start off, a week's session
  expiry) under a fixed client id: while it is away, the broker keeps its subscription and queues
  records.
- Several at once (``shared``): MQTT 5 shared subscriptions (``$share/{group}/...``); the broker
  hands each message to one collector of the group. Each has its own client id and a clean
  session, so a collector that dies takes no queue with it: the broker forgets its subscription
  at once and sends the rest to the others; what it had received but not acknowledged the
  terminals send again (they keep a record until its ``record/ack``).
- Manual PUBACK: a message is acknowledged to the broker only after the batch is committed.
  After the commit, ``record/ack`` goes to each terminal with the ``(record_id, rev)`` pairs it
  stored: only then does the terminal delete them from its outbox.
- Besides records and events it keeps link summaries, heartbeats (per hour), state changes and
  content readiness: what the county report needs for online days and missing courses.
- A message belongs to the terminal whose topic it came on (the broker's ACL lets each terminal
  publish only under its own root): its payload must name that terminal. Anything that fails
  validation or belongs elsewhere is kept in ``rejected`` with the reason (PUBACKed, never
  ``record/ack``ed): nothing is lost, and a malformed message cannot block the queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from agent.adapters.mqtt.config import MqttConfig
from agent.cli.county.client import CountyClient, Message, ToolError
from agent.cli.county.storage import Item, Storage, open_storage
from agent.cli.county.storage.sqlite import SqliteStorage
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.backoff import Backoff
from agent.domain.records import utc_now_text

log = logging.getLogger("county.collector")
LULL_S = 0.001  # no message for this long ends a batch early

KEPT = (t.RECORD, t.EVENT, t.LINK_SUMMARY, t.STATE, t.HEARTBEAT, t.STATUS)
KINDS = {suffix: p.KIND_BY_SUFFIX[suffix] for suffix in KEPT}
RETAINED = (t.STATE, t.STATUS)  # an empty retained message only clears the broker's copy


def classify(msg: Message, county: str | None) -> Item:
    """What one incoming message is, checked against its topic and the protocol."""
    parsed = t.parse(msg.topic)
    if parsed is None or parsed.suffix not in KINDS:
        return Item("rejected", "", "", msg.topic, payload=msg.payload, reason="unexpected topic")
    where = (parsed.county, parsed.terminal, msg.topic)
    if county is not None and parsed.county != county:
        return Item("rejected", *where, payload=msg.payload, reason="another county")
    if not msg.payload and parsed.suffix in RETAINED:
        return Item("ignored", *where)
    kind = KINDS[parsed.suffix]
    try:
        obj = p.decode(msg.payload, p.MAX_SCHEDULE_BYTES)
    except p.ProtocolError as exc:
        return Item("rejected", *where, payload=msg.payload, reason=exc.message)
    problems = p.validate(kind, obj)
    if not problems and (
        obj["terminal"] != parsed.terminal or obj.get("county", parsed.county) != parsed.county
    ):
        problems = [
            f"the message names terminal {obj.get('terminal')!r} (county "
            f"{obj.get('county', parsed.county)!r}) but came on the topic of terminal "
            f"{parsed.terminal!r} (county {parsed.county!r})"
        ]
    if problems:
        reason = "; ".join(problems)[:2000]
        return Item("rejected", *where, payload=msg.payload, reason=reason)
    return Item(kind, *where, obj=obj, payload=p.dumps(obj))


class CollectorDb:
    """The SQLite storage driven by ``(kind, terminal, topic, object)`` tuples and answering
    with a dict: the shape of the tests that check the storage rules without a broker."""

    def __init__(self, path: Path) -> None:
        self.storage = SqliteStorage(path)
        self.db = self.storage.db

    def store(self, batch: list[tuple[str, str, str, Any]]) -> dict[str, Any]:
        items = []
        for kind, terminal, topic, obj in batch:
            if kind == "rejected":
                payload, reason = obj
                items.append(Item(kind, "", terminal, topic, payload=payload, reason=reason))
            else:
                items.append(Item(kind, obj["county"], terminal, topic, obj, p.dumps(obj)))
                if obj.get("terminal") != terminal:
                    items[-1] = Item(
                        "rejected",
                        obj["county"],
                        terminal,
                        topic,
                        payload=p.dumps(obj),
                        reason=f"the message names terminal {obj.get('terminal')!r} but came "
                        f"on the topic of terminal {terminal!r}",
                    )
        r = self.storage.store(items, "collector")
        return {
            "new": r.new,
            "duplicates": r.duplicates,
            "rejected": r.rejected,
            "acks": dict(r.acks),
        }

    def count(self) -> int:
        return self.storage.count()

    def export_csv(self, out: TextIO) -> int:
        return self.storage.export_csv(out)

    def close(self) -> None:
        self.storage.close()


class Collector:
    def __init__(
        self,
        m: MqttConfig,
        db: Path | str | Storage,
        *,
        county: str | None = None,
        client_id: str | None = None,
        shared: str | None = None,
        batch_max: int = 500,
        linger: float = 0.05,
        retry_max: float = 30.0,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.m = m
        self.db: Storage = db if hasattr(db, "store") else open_storage(db)  # type: ignore[assignment]
        self.county = county
        self.shared = shared
        default_id = f"county-collector-{county or 'all'}"
        if shared:
            default_id += f"-{time.time_ns() % 10**9}"
        self.client_id = client_id or default_id
        self.batch_max = batch_max
        self.linger = linger
        self.retry_max = retry_max
        self.on_line = on_line or (lambda line: None)
        self.stored = 0
        self.duplicates = 0
        self.acks_sent = 0
        self.ready = threading.Event()

    def filters(self) -> list[str]:
        out = []
        for suffix in KINDS:
            f = t.fleet(self.county, suffix) if self.county else t.all_counties(suffix)
            out.append(f"$share/{self.shared}/{f}" if self.shared else f)
        return out

    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        end = None if duration is None else time.monotonic() + duration
        backoff = Backoff(min(0.5, self.retry_max), self.retry_max)
        good_until = time.monotonic()  # the collector is one client: no fleet to spread out
        cc: CountyClient | None = None
        try:
            while not stop.is_set() and (end is None or time.monotonic() < end):
                if cc is None:
                    cc = CountyClient(
                        self.m, self.client_id, persistent=not self.shared, manual_ack=True
                    )
                    try:
                        cc.connect()
                        cc.subscribe(self.filters())
                    except ToolError as exc:
                        cc.close(disconnect=False)
                        cc = None
                        delay = backoff.next_delay(time.monotonic() - good_until)
                        log.warning("collector: %s; retrying in %.1f s", exc, delay)
                        stop.wait(delay)
                        continue
                    backoff.reset()
                    self.ready.set()
                    self.on_line(
                        f"collector {self.client_id} connected "
                        f"(session {'resumed' if cc.session_present else 'new'}"
                        f"{', shared group ' + self.shared if self.shared else ''})"
                    )
                batch = self._take(cc)
                if batch:
                    self._commit_and_ack(cc, batch)
                if cc.lost.is_set():
                    cc.close(disconnect=False)
                    # What arrived but was not acknowledged comes again (session or terminals).
                    _drain(cc.messages)
                    cc = None
                    good_until = time.monotonic()
                    self.ready.clear()
                    self.on_line("collector lost the broker; reconnecting")
        finally:
            if cc is not None:
                cc.close()
            self.db.close()

    def _take(self, cc: CountyClient) -> list[Message]:
        """A batch: what arrives until a short lull, ``linger`` at most, ``batch_max`` at most
        (one commit and one ack message per terminal for the lot)."""
        batch: list[Message] = []
        try:
            batch.append(cc.messages.get(timeout=0.2))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.linger
        while len(batch) < self.batch_max:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(cc.messages.get(timeout=min(left, LULL_S)))
            except queue.Empty:
                break
        return batch

    def _commit_and_ack(self, cc: CountyClient, batch: list[Message]) -> None:
        items = [classify(msg, self.county) for msg in batch]
        result = self.db.store([i for i in items if i.kind != "ignored"], self.client_id)
        self.stored += result.new
        self.duplicates += result.duplicates
        for (county, terminal), pairs in result.acks.items():
            for i in range(0, len(pairs), p.MAX_ACK_RECORDS):
                chunk = pairs[i : i + p.MAX_ACK_RECORDS]
                payload = p.record_ack(ts=utc_now_text(), collector=self.client_id, records=chunk)
                try:
                    cc.publish(t.topic(county, terminal, t.RECORD_ACK), p.dumps(payload), wait=None)
                except ToolError as exc:
                    log.warning("record/ack not sent (the terminal will send again): %s", exc)
                self.acks_sent += len(chunk)
            self.on_line(f"stored {len(pairs)} record(s) from {terminal}; record/ack sent")
        for topic, reason in result.rejected:
            self.on_line(f"rejected a message on {topic}: {reason[:200]}")
        for msg in batch:
            cc.ack(msg)


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
