"""One connection to the county broker at a time: opening it, its state, losing it, closing it.

A fresh paho client per connection, with paho's own reconnect off (``reconnect_on_failure``):
paho would resend its in-memory messages and reconnect on its own unjittered schedule. Here the
SQLite outbox is the only memory of what is unsent, and the delay before each attempt comes from
``Backoff`` (exponential, full jitter) so a fleet spreads out after a broker restart.

Clean sessions: whatever is unconfirmed is sent again from the outbox after a reconnect, and the
retained ``schedule`` topics bring the schedules back. The Last Will (retained ``state``
"offline") carries the session counter kept on disk, so a late will is recognisable.

Everything here runs on the link's worker thread, except the paho callbacks installed by
``install_callbacks``: those run on paho's network thread and only put an event on the queue.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent import __version__
from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.conn import code as _code
from agent.adapters.mqtt.conn import failed as _failed
from agent.adapters.mqtt.conn import new_client
from agent.adapters.mqtt.version import ProtocolChoice
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.backoff import Backoff
from agent.domain.records import utc_now_text

log = logging.getLogger("agent.adapters.mqtt")

SESSION_TAKEN_OVER = 142  # MQTT 5 reason code 0x8E
CONNACK_GRACE_S = 2.0  # beyond paho's own connect timeout, before the attempt counts as failed
SHORT_LIVED_S = 2.0  # a connection dropped sooner than this right after CONNACK is suspicious
SHORT_LIVED_HINT_AFTER = 3  # ... and this many in a row earn a hint in the status
OFFLINE_PUBACK_WAIT_S = 3.0  # how long shutdown waits for the broker to confirm "offline"

Event = tuple[Any, ...]


class Connection:
    """The connection's state machine: idle -> waiting -> connecting -> connected -> waiting ...
    -> stopped. ``gen`` tags every paho event so events from a client already given up on are
    recognised and dropped by the link."""

    def __init__(
        self,
        m: MqttConfig,
        *,
        terminal: str,
        county: str,
        client_id: str,
        bridge: Any,
        events: queue.Queue[Event],
        backoff: Backoff,
        mono: Callable[[], float],
        protocol_memory: Path | None = None,
    ) -> None:
        self.m = m
        self.terminal = terminal
        self.county = county
        self.client_id = client_id
        self.bridge = bridge
        self.events = events
        self.backoff = backoff
        self.mono = mono
        self.topic_state = t.topic(county, terminal, t.STATE)
        self.client: mqtt.Client | None = None
        self.gen = 0  # connection generation: events from an older client are ignored
        self.state = "idle"  # idle | connecting | connected | waiting | stopped
        self.session = 0
        self.clock = "unsynced"
        self.connect_due = 0.0
        self.good_until = 0.0  # when the link was last known good (see Backoff)
        self.connecting_since = 0.0
        self.connected_at: float | None = None
        self.connected_wall: str | None = None
        self.receive_maximum: int | None = None  # the broker's window, from the last CONNACK
        self.reconnects = 0
        self.connects = 0
        self.last_error: str | None = None
        self.hint: str | None = None  # a likely cause for repeated trouble, for the status
        self.short_lived = 0
        self.version = ProtocolChoice(m.protocol, protocol_memory)
        self.attempt_version = self.version.next()  # the MQTT version of the current attempt
        self.on_state: Callable[[str], None] | None = None  # for benches and tests

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def begin(self) -> None:
        """The worker starts: the first attempt is due at once."""
        self.connect_due = self.good_until = self.mono()
        self.state = "waiting"

    def connack_deadline(self) -> float:
        return self.connecting_since + self.m.connect_timeout_seconds + CONNACK_GRACE_S

    # -- paho callbacks: hand over, nothing else ---------------------------------------------------

    def install_callbacks(self, client: mqtt.Client, gen: int) -> None:
        put = self.events.put

        def on_connect(_c: Any, _u: Any, flags: Any, rc: Any, props: Any) -> None:
            put(("connack", gen, rc, props))

        def on_disconnect(_c: Any, _u: Any, _flags: Any, rc: Any, _props: Any) -> None:
            put(("disconnect", gen, rc))

        def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _props: Any) -> None:
            put(("puback", gen, mid, rc))

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if len(msg.payload) > p.MAX_INCOMING_PACKET:
                # A broker that ignores our Maximum-Packet-Size (or MQTT 3.1.1, which has none):
                # let go of the bytes now rather than queue them for parsers that refuse them.
                put(("oversize", gen, msg.topic, len(msg.payload)))
                return
            put(("message", gen, msg.topic, msg.payload, bool(msg.retain)))

        def on_subscribe(_c: Any, _u: Any, mid: int, codes: Any, _props: Any) -> None:
            put(("suback", gen, mid, codes))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        client.on_subscribe = on_subscribe

    # -- opening -------------------------------------------------------------------------------------

    def state_payload(self, online: bool, reason: str) -> bytes:
        return p.dumps(
            p.state(
                ts=utc_now_text(),
                terminal=self.terminal,
                county=self.county,
                online=online,
                session=max(self.session, 1),
                boot_id=self.bridge.boot_id,
                agent_version=__version__,
                protocol=self.attempt_version,
                reason=reason,
                clock=self.clock,
            )
        )

    def connect(self) -> None:
        self.session, self.clock = self.bridge.next_session()
        self.gen += 1
        gen = self.gen
        self.connects += 1
        self.attempt_version = version = self.version.next()
        try:
            client, kwargs = new_client(
                self.m,
                self.client_id,
                default_username=self.terminal,
                max_packet=p.MAX_INCOMING_PACKET,
                protocol=version,
            )
            self.install_callbacks(client, gen)
            client.will_set(self.topic_state, self.state_payload(False, "will"), 1, True)
            log.info(
                "connecting to %s:%d (MQTT %s, session %d)",
                self.m.host,
                self.m.effective_port,
                version,
                self.session,
            )
            self.state = "connecting"
            self.connecting_since = self.mono()
            self.client = client
            client.connect(self.m.host, self.m.effective_port, self.m.keepalive, **kwargs)
            client.loop_start()
        except Exception as exc:  # OSError, ssl.SSLError, DNS failures, bad TLS files...
            self.lost(f"cannot connect: {exc}")

    def on_connack(self, rc: Any, props: Any) -> float | None:
        """Accepted: subscribe and announce "online" (retained), and return when (monotonic);
        the link then resets what belongs to one connection (windows, buffers, timers). None when
        refused or stale."""
        client = self.client
        if client is None:
            return None
        if _failed(rc):
            again = self.version.refused(self.attempt_version, rc)
            if not again:
                log.error("broker refused the connection: %s", rc)
            self.lost(f"connection refused: {rc}", retry_now=again)
            return None
        self.version.accepted(self.attempt_version)
        now = self.mono()
        self.state = "connected"
        self.connected_at = now
        self.connected_wall = utc_now_text()
        self.last_error = None
        window = getattr(props, "ReceiveMaximum", None) if props is not None else None
        self.receive_maximum = window
        log.info(
            "connected to %s:%d (session %d%s)",
            self.m.host,
            self.m.effective_port,
            self.session,
            f", broker receive maximum {window}" if window else "",
        )
        if self.attempt_version != "5":
            log.info("speaking MQTT %s (%s)", self.attempt_version, self.version.why)
        client.subscribe(
            [(name, 1) for name in t.terminal_subscriptions(self.county, self.terminal)]
        )
        client.publish(self.topic_state, self.state_payload(True, "connect"), 1, True)
        return now

    def on_suback(self, codes: Any) -> None:
        bad = [str(c) for c in codes if _failed(c)]
        if bad:
            log.error("broker refused subscriptions: %s", ", ".join(bad))
            self.last_error = "subscription refused: " + ", ".join(bad)

    # -- losing ----------------------------------------------------------------------------------------

    def on_disconnect(self, rc: Any) -> None:
        if _code(rc) == SESSION_TAKEN_OVER:
            log.error(
                "broker says another client took over client id %r: terminal ids must be unique",
                self.client_id,
            )
        if self.state == "connecting":
            again = self.version.closed_before_connack(self.attempt_version)
            if not again:  # as suspicious as a drop right after CONNACK (NATS, a taken id)
                self._short_lived()
            self.lost(f"closed before CONNACK: {rc}", retry_now=again)
            return
        self.lost(f"disconnected: {rc}")

    def lost(self, why: str, *, retry_now: bool = False) -> None:
        """Drop the client and schedule the next attempt after a back-off delay; a connection
        that lasted ``stable_after_seconds`` resets the back-off. ``retry_now``: the broker
        asked for another MQTT version, which is tried at once (nothing failed yet)."""
        client, self.client = self.client, None
        was_connected = self.state == "connected"
        if was_connected:
            self.version.lost_after_connect()
        elif not retry_now:
            self.version.failed(self.attempt_version)
        self.gen += 1  # late events from that client are ignored
        if client is not None:
            quietly(client.disconnect, "disconnect of the lost connection")
            quietly(client.loop_stop, "stopping paho's thread of the lost connection")
        now = self.mono()
        if self.connected_at is not None:
            self._judge_lifetime(now, now - self.connected_at)
        self.connected_at = None
        delay = 0.0 if retry_now else self.backoff.next_delay(now - self.good_until)
        self.connect_due = now + delay
        self.state = "waiting"
        self.last_error = why
        if was_connected:
            self.reconnects += 1
            log.warning("mqtt link lost (%s); reconnecting in %.1f s", why, delay)
        else:
            log.warning("%s; next attempt in %.1f s", why, delay)
        if self.on_state:
            self.on_state("waiting")

    def _judge_lifetime(self, now: float, lasted: float) -> None:
        if lasted >= self.m.stable_after_seconds:
            self.backoff.reset()
            self.good_until = now  # the trouble starts now
            self.short_lived = 0
            self.hint = None
        elif lasted < SHORT_LIVED_S:
            self._short_lived()

    def _short_lived(self) -> None:
        self.short_lived += 1
        if self.short_lived == SHORT_LIVED_HINT_AFTER:
            self.hint = (
                "the broker drops each connection right after accepting it: another "
                f"client may be using the client id {self.client_id!r}, or the ACL "
                "refuses this terminal"
            )
            log.error("%s", self.hint)

    # -- closing ---------------------------------------------------------------------------------------

    def close(self, handle: Callable[[Event], None]) -> None:
        """Publish "offline" (retained) and wait briefly for its PUBACK, passing the PUBACKs that
        arrive meanwhile to ``handle``; then disconnect and stop paho's thread."""
        client = self.client
        if client is not None and self.state == "connected":
            try:
                info = client.publish(
                    self.topic_state, self.state_payload(False, "shutdown"), 1, True
                )
                deadline = self.mono() + OFFLINE_PUBACK_WAIT_S
                while self.mono() < deadline and not info.is_published():
                    try:
                        ev = self.events.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    if ev[0] == "puback":
                        handle(ev)
                if not info.is_published():
                    log.warning("no PUBACK for the offline state before shutdown")
                client.disconnect()
            except Exception:
                log.exception("clean disconnect failed")
        if client is not None:
            quietly(client.loop_stop, "stopping paho's thread at shutdown")
        self.client = None
        self.state = "stopped"


def quietly(fn: Callable[[], Any], what: str) -> None:
    """Run a best-effort clean-up step; a failure is logged (with what failed), not raised."""
    try:
        fn()
    except Exception as exc:
        log.warning("mqtt link: %s failed: %s: %s", what, type(exc).__name__, exc)
