"""One simulated terminal's MQTT connection: a paho client driven by the worker's selector loop
(``loop_read``/``loop_write``/``loop_misc``), never by a thread of its own.

Like the agent (``agent.adapters.mqtt.connection``): a new client per connection attempt, a clean
session, the Last Will (``state`` offline, reason ``will``, retained) set before every connect,
``online`` published retained right after the CONNACK with the retained ``status``, the
subscriptions again on every connect, and reconnects after a full-jitter wait
(:class:`agent.domain.backoff.Backoff`) whose window follows how long the link has been bad.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.cli.county.simulate.terminal import SimTerminal
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.backoff import Backoff
from agent.domain.outbox import Row

Schedule = Callable[[float, Callable[[], None]], None]  # (when, what): a timer of the loop


@dataclass
class LinkSettings:
    host: str
    port: int
    keepalive: int = 60
    backoff_min: float = 2.0
    backoff_max: float = 60.0
    stable_after: float = 5.0
    connack_timeout: float = 30.0


class Link:
    def __init__(
        self,
        term: SimTerminal,
        s: LinkSettings,
        sel: selectors.BaseSelector,
        schedule: Schedule,
        backoff: Backoff,
    ) -> None:
        self.term = term
        self.s = s
        self.sel = sel
        self.schedule = schedule
        self.backoff = backoff
        self.client: mqtt.Client | None = None
        self.sock: Any = None
        self.state = "down"  # down | connecting | up
        self.good_until = time.monotonic()
        self.connected_at = 0.0  # monotonic, of the newest CONNACK
        self.connects = 0
        self.attempts = 0
        self.flaps = 0
        self.last_error: str | None = None
        self.retry_at: float | None = None
        self.closing = False

    # -- connecting ---------------------------------------------------------------------------

    def connect(self) -> None:
        if self.state != "down" or self.closing:
            return
        self.attempts += 1
        term = self.term
        term.next_session()
        v5 = term.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=term.terminal,
            clean_session=None if v5 else True,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(0)  # the outbox policy keeps the window
        client.max_queued_messages_set(0)
        client.connect_timeout = 5.0
        client.will_set(term.topic(t.STATE), term.state(False, "will", time.time()), 1, True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_socket_close = self._on_socket_close
        kwargs: dict[str, Any] = {}
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.MaximumPacketSize = p.MAX_INCOMING_PACKET
            kwargs = {"clean_start": True, "properties": props}
        self.client = client
        self.state = "connecting"
        try:
            client.connect(self.s.host, self.s.port, self.s.keepalive, **kwargs)
        except OSError as exc:
            self._lost(f"cannot connect: {exc}")
            return
        self.sock = client.socket()
        self.sel.register(self.sock, selectors.EVENT_READ, self)
        self.flush()
        deadline = time.monotonic() + self.s.connack_timeout
        session = term.session
        self.schedule(deadline, lambda: self._connack_overdue(session))

    def _connack_overdue(self, session: int) -> None:
        if self.state == "connecting" and self.term.session == session:
            self.drop("no CONNACK in time")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if client is not self.client:
            return
        if getattr(rc, "is_failure", False) or (isinstance(rc, int) and rc != 0):
            self.last_error = f"refused: {rc}"
            return  # paho closes the socket; _on_disconnect follows
        now, wall = time.monotonic(), time.time()
        self.state = "up"
        self.connects += 1
        self.connected_at = now
        term = self.term
        client.subscribe([(f, 1) for f in term.subscriptions()])
        client.publish(term.topic(t.STATE), term.state(True, "connect", wall), 1, True)
        client.publish(term.topic(t.STATUS), term.status(now, wall, self.connects), 1, True)
        term.outbox.policy.reset()
        self.pump()

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if client is self.client:
            self._lost(f"connection lost: {rc}")

    def _on_socket_close(self, _c: Any, _u: Any, sock: Any) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        if sock is self.sock:
            self.sock = None

    def _lost(self, why: str) -> None:
        now = time.monotonic()
        was_up = self.state == "up"
        self.last_error = why
        client, self.client = self.client, None
        self.state = "down"
        sock = self.sock
        if client is not None and sock is not None:
            # paho did not close it (a drop, a missed CONNACK): the client is dropped, close it here
            self._on_socket_close(None, None, sock)
            try:
                sock.close()
            except OSError:
                pass
        if was_up and now - self.connected_at >= self.s.stable_after:
            self.good_until = now
            self.backoff.reset()
        if self.closing:
            return
        delay = self.backoff.next_delay(now - self.good_until)
        self.schedule(now + delay, self.connect)

    def drop(self, why: str) -> None:
        """The link breaks under the terminal (no DISCONNECT): the broker publishes the Will."""
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._lost(why)

    def flap(self) -> None:
        if self.state == "up":
            self.flaps += 1
            self.drop("link flap (simulated)")

    # -- traffic ------------------------------------------------------------------------------

    def on_ready(self, mask: int) -> None:
        client = self.client
        if client is None:
            return
        if mask & selectors.EVENT_READ:
            client.loop_read()
        if self.client is client and mask & selectors.EVENT_WRITE:
            client.loop_write()
        self.flush()

    def flush(self) -> None:
        """Write what paho queued (inside callbacks it only queues); wait for the socket if full."""
        client, sock = self.client, self.sock
        if client is None or sock is None:
            return
        if client.want_write():
            client.loop_write()
        if self.client is not client or self.sock is None:
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.want_write() else 0)
        if self.sel.get_key(sock).events != want:
            self.sel.modify(sock, want, self)

    def misc(self) -> None:
        if self.client is not None and self.state == "up":
            self.client.loop_misc()
            self.flush()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.term.on_message(msg.topic, bytes(msg.payload), time.monotonic(), time.time())
        self.pump()

    def _on_publish(self, client: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        if client is self.client:
            ok = not getattr(rc, "is_failure", False)
            self.term.outbox.on_puback(mid, ok, time.monotonic())
            self.pump()

    def publish_row(self, row: Row) -> int | None:
        client = self.client
        if client is None or self.state != "up":
            return None
        info = client.publish(self.term.topic(row.topic), row.payload, row.qos, row.retain)
        return info.mid if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def pump(self) -> None:
        """Send from the outbox what the windows allow; come back when a resend falls due."""
        if self.state != "up":
            return
        now = time.monotonic()
        self.term.pump(self.publish_row, now)
        due = self.term.outbox.policy.next_retry_at()
        if due is not None and (self.retry_at is None or due < self.retry_at):
            self.retry_at = due
            self.schedule(due + 0.01, self._retry)
        self.flush()

    def _retry(self) -> None:
        self.retry_at = None
        self.pump()

    def heartbeat(self) -> None:
        if self.client is not None and self.state == "up":
            now, wall = time.monotonic(), time.time()
            self.client.publish(self.term.topic(t.HEARTBEAT), self.term.heartbeat(now, wall), 0)
            self.flush()

    def close(self) -> None:
        """A clean stop: ``offline`` (reason shutdown, retained), then DISCONNECT (no Will)."""
        self.closing = True
        client = self.client
        if client is None or self.state != "up":
            return
        client.publish(
            self.term.topic(t.STATE), self.term.state(False, "shutdown", time.time()), 1, True
        )
        client.disconnect()
        self.flush()
