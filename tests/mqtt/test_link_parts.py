"""The link's parts without a broker: the connection's bookkeeping on loss (back-off, the
short-lived hint, stale generations) and the sender's batched deletion of confirmed rows."""

from __future__ import annotations

import queue

from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.connection import Connection
from agent.adapters.mqtt.sending import FLUSH_S, Sender
from agent.domain.backoff import Backoff
from agent.domain.outbox import OutboxPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Bridge:
    boot_id = "b"

    def __init__(self) -> None:
        self.confirmed: list[tuple[list[int], list[tuple[str, int]], list[int]]] = []

    def confirm(self, ids, acks, retried) -> None:
        self.confirmed.append((ids, acks, retried))


def make_conn(clock: Clock, **kw) -> Connection:
    m = MqttConfig(host="127.0.0.1", **kw)
    return Connection(
        m,
        terminal="t-1",
        county="c-1",
        client_id="t-1",
        bridge=Bridge(),
        events=queue.Queue(),
        backoff=Backoff(m.backoff_min_seconds, m.backoff_max_seconds, lambda: 1.0),
        mono=clock,
    )


def test_lost_moves_to_waiting_and_ignores_the_old_generation():
    clock = Clock()
    conn = make_conn(clock)
    conn.begin()
    assert conn.state == "waiting" and conn.connect_due == clock.now
    gen = conn.gen
    conn.state = "connected"
    conn.connected_at = clock.now
    seen: list[str] = []
    conn.on_state = seen.append
    conn.lost("gone")
    assert conn.state == "waiting"
    assert conn.gen == gen + 1
    assert conn.reconnects == 1
    assert conn.last_error == "gone"
    assert conn.connect_due > clock.now
    assert seen == ["waiting"]


def test_three_short_lived_connections_give_a_hint_and_a_stable_one_clears_it():
    clock = Clock()
    conn = make_conn(clock, stable_after_seconds=30)
    conn.begin()
    for _ in range(3):
        conn.state = "connected"
        conn.connected_at = clock.now
        clock.now += 0.5
        conn.lost("dropped")
    assert conn.hint is not None and "client id" in conn.hint
    conn.state = "connected"
    conn.connected_at = clock.now
    clock.now += 31
    conn.lost("dropped")
    assert conn.hint is None
    assert conn.short_lived == 0
    assert conn.good_until == clock.now


def test_sender_deletes_confirmed_rows_in_batches():
    clock = Clock()
    conn = make_conn(clock)
    bridge = Bridge()
    policy = OutboxPolicy(
        record_confirmation="puback", inflight_window=10, ack_window=10, ack_timeout=30
    )
    sender = Sender(conn, conn.m, bridge, policy, link_status=dict, mono=clock)
    sender.on_record_acks([("r", 1)])
    sender.flush()
    assert bridge.confirmed == []  # not yet: batched for FLUSH_S
    clock.now += FLUSH_S
    sender.flush()
    assert bridge.confirmed == [([], [("r", 1)], [])]
    sender.flush(force=True)
    assert len(bridge.confirmed) == 1  # nothing pending: no empty transaction
    assert sender.flush_due is None
