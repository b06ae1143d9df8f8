"""The paho adapter: one connection to the county broker, driven by the link's own worker thread.

Threads
- paho's network thread (``loop_start``), one per connection. Its callbacks only put an event on
  the link's queue; they never call paho or the agent (several paho deadlocks come from publishing
  inside callbacks).
- the link's worker thread ("mqtt-link"): connects, subscribes on every new connection, publishes
  from the outbox, sends heartbeats, applies schedules and runs commands. It touches the agent only
  through the bridge, which hops to the core thread; so a slow DNS lookup or TLS handshake blocks
  this thread, never the core.

Connections
- A fresh paho client per connection, with paho's own reconnect off (``reconnect_on_failure``):
  paho would resend its in-memory messages and reconnect on its own unjittered schedule. Here the
  SQLite outbox is the only memory of what is unsent, and the delay before each attempt comes from
  ``Backoff`` (exponential, full jitter) so a fleet spreads out after a broker restart.
- Clean sessions: whatever is unconfirmed is sent again from the outbox after a reconnect, and the
  retained ``schedule`` topics bring the schedules back. The Last Will (retained ``state``
  "offline") carries the session counter kept on disk, so a late will is recognisable.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from agent import __version__
from agent.adapters.mqtt.bridge import BridgeClosed, RuntimeBridge
from agent.adapters.mqtt.commands import CommandProcessor
from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.conn import code as _code
from agent.adapters.mqtt.conn import failed as _failed
from agent.adapters.mqtt.conn import new_client
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.backoff import Backoff
from agent.domain.outbox import OTHER, RECORDS, OutboxPolicy, Row
from agent.domain.records import utc_now_text

log = logging.getLogger("agent.adapters.mqtt")

FETCH_MAX = 500  # rows per outbox read
FLUSH_ROWS = 500  # confirmed rows deleted per transaction, at most
FLUSH_S = 0.05  # ... or after this long
RECHECK_S = 5.0  # look at the outbox (and paho's socket state) this often even without a wake-up
IDLE_WAIT_S = 60.0  # the longest sleep with nothing due (stop, PUBACKs, messages arrive as events)
SESSION_TAKEN_OVER = 142  # MQTT 5 reason code 0x8E


class MqttLink:
    """The terminal's MQTT link. ``start()`` once, ``stop()`` on the way out."""

    def __init__(
        self,
        cfg: Any,
        runtime: Any = None,
        *,
        bridge: Any = None,
        rand: Callable[[], float] | None = None,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        if cfg.mqtt is None:
            raise ValueError("the config has no mqtt section")
        if cfg.terminal == t.ALL:
            raise ValueError(f"the terminal id {t.ALL!r} is reserved for the county schedule")
        self.cfg = cfg
        self.m: MqttConfig = cfg.mqtt
        self.terminal = cfg.terminal
        self.county = cfg.county
        self.bridge = bridge if bridge is not None else RuntimeBridge(runtime)
        self.mono = mono
        self.rand = rand or random.SystemRandom().random
        self.backoff = Backoff(self.m.backoff_min_seconds, self.m.backoff_max_seconds, self.rand)
        self.policy = OutboxPolicy(
            record_confirmation=self.m.record_confirmation,
            inflight_window=self.m.inflight_window,
            ack_window=self.m.ack_window,
            ack_timeout=self.m.ack_timeout_seconds,
        )
        self.commands = CommandProcessor(
            self.bridge, self.terminal, on_status=self._publish_status, now=mono
        )
        self.client_id = self.m.client_id or self.terminal
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.thread: threading.Thread | None = None
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
        self.next_heartbeat = 0.0
        self.heartbeat_seq = 0
        self.next_recheck = 0.0
        self.reconnects = 0
        self.connects = 0
        self.last_error: str | None = None
        self.hint: str | None = None  # a likely cause for repeated trouble, for the status
        self.short_lived = 0
        self.oversize_dropped = 0  # messages over MAX_INCOMING_PACKET that reached us anyway
        self._confirm_ids: list[int] = []
        self._acks: list[tuple[str, int]] = []
        self._retried: list[int] = []
        self._flush_due: float | None = None
        self._buffer: dict[str, deque[Row]] = {OTHER: deque(), RECORDS: deque()}
        self._public: dict[str, Any] = {"state": "idle"}
        self._stop_requested = threading.Event()
        self.topic_state = t.topic(self.county, self.terminal, t.STATE)
        self.on_state: Callable[[str], None] | None = None  # for benches and tests

    # -- lifecycle (any thread) ---------------------------------------------------------------

    def start(self) -> None:
        self.bridge.attach(self.wake, self.status_dict)
        self.bridge.on_layer_unreadable(self.ask_for_layer)
        self.thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish "offline" (retained), disconnect cleanly, end the worker."""
        self._stop_requested.set()
        self.events.put(("stop",))
        if self.thread is not None:
            self.thread.join(timeout)

    def wake(self) -> None:
        self.events.put(("wake",))

    def ask_for_layer(self, layer: str) -> None:
        """Have the county's retained schedule of ``layer`` delivered again (any thread)."""
        self.events.put(("resubscribe", layer))

    def status_dict(self) -> dict[str, Any]:
        return dict(self._public)

    # -- paho callbacks: hand over, nothing else -------------------------------------------------

    def _callbacks(self, client: mqtt.Client, gen: int) -> None:
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

    # -- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        self.connect_due = self.good_until = self.mono()
        self.state = "waiting"
        while True:
            try:
                ev = self.events.get(timeout=self._wait_time())
            except queue.Empty:
                ev = None
            try:
                if ev is not None and ev[0] == "stop":
                    self._shutdown()
                    return
                if ev is not None:
                    self._handle(ev)
                for _ in range(5000):  # take what queued up meanwhile (PUBACKs come in bursts)
                    try:
                        ev = self.events.get_nowait()
                    except queue.Empty:
                        break
                    if ev[0] == "stop":
                        self.events.put(ev)
                        break
                    self._handle(ev)
                self._periodic()
                if self.state == "connected":
                    self._pump()
                self._flush()
            except BridgeClosed:
                if self._stop_requested.is_set():
                    continue
                time.sleep(0.2)
            except Exception:
                log.exception("mqtt link: unexpected error (continuing)")
                time.sleep(0.5)
            self._publish_public()

    def _wait_time(self) -> float:
        """Until the next thing that is due: the link sleeps when nothing is (events wake it)."""
        now = self.mono()
        due = [now + IDLE_WAIT_S]
        if self.state == "waiting":
            due.append(self.connect_due)
        if self.state == "connecting":
            due.append(self.connecting_since + self.m.connect_timeout_seconds + 2)
        if self._flush_due is not None:
            due.append(self._flush_due)
        if self.state == "connected":
            due += [self.next_heartbeat, self.next_recheck]
            retry = self.policy.next_retry_at()
            if retry is not None:
                due.append(retry)
        return max(0.0, min(due) - now)

    def _handle(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        if kind == "wake":
            self.policy.wake()
            return
        if kind == "resubscribe":
            self._resubscribe(ev[1])
            return
        if ev[1] != self.gen:
            return  # from a connection we already gave up on
        if kind == "puback":
            _, _, mid, rc = ev
            row_id = self.policy.on_puback(mid, not _failed(rc), self.mono())
            if _failed(rc):
                log.warning("broker refused message mid=%s: %s", mid, rc)
            if row_id is not None:
                self._confirm_ids.append(row_id)
        elif kind == "message":
            self._on_message(ev[2], ev[3], ev[4])
        elif kind == "oversize":
            self.oversize_dropped += 1
            log.warning(
                "a %d-byte message on %r was dropped unread: the limit is %d bytes; set the "
                "broker's max_packet_size (see docs/protocol.md)",
                ev[3],
                ev[2],
                p.MAX_INCOMING_PACKET,
            )
        elif kind == "connack":
            self._on_connack(ev[2], ev[3])
        elif kind == "disconnect":
            rc = ev[2]
            if _code(rc) == SESSION_TAKEN_OVER:
                log.error(
                    "broker says another client took over client id %r: terminal ids must be unique",
                    self.client_id,
                )
            self._lost(f"disconnected: {rc}")
        elif kind == "suback":
            codes = ev[3]
            bad = [str(c) for c in codes if _failed(c)]
            if bad:
                log.error("broker refused subscriptions: %s", ", ".join(bad))
                self.last_error = "subscription refused: " + ", ".join(bad)

    def _periodic(self) -> None:
        now = self.mono()
        if (
            self.state == "waiting"
            and now >= self.connect_due
            and not self._stop_requested.is_set()
        ):
            self._connect()
        elif self.state == "connecting" and now - self.connecting_since > (
            self.m.connect_timeout_seconds + 2
        ):
            self._lost("no CONNACK from the broker in time")
        elif self.state == "connected":
            if self.client is not None and not self.client.is_connected():
                # paho gave up on the socket without telling us (belt and braces)
                self._lost("the connection is gone")
                return
            if now >= self.next_heartbeat:
                self.next_heartbeat = now + self.m.heartbeat_seconds
                self._heartbeat()
            if now >= self.next_recheck:
                self.next_recheck = now + RECHECK_S
                self.policy.wake()
            retry = self.policy.next_retry_at()
            if retry is not None and now >= retry:
                self._retry(now)

    # -- connecting --------------------------------------------------------------------------------

    def _state_payload(self, online: bool, reason: str) -> bytes:
        return p.dumps(
            p.state(
                ts=utc_now_text(),
                terminal=self.terminal,
                county=self.county,
                online=online,
                session=max(self.session, 1),
                boot_id=self.bridge.boot_id,
                agent_version=__version__,
                protocol=self.m.protocol,
                reason=reason,
                clock=self.clock,
            )
        )

    def _connect(self) -> None:
        self.session, self.clock = self.bridge.next_session()
        self.gen += 1
        gen = self.gen
        self.connects += 1
        try:
            client, kwargs = new_client(
                self.m,
                self.client_id,
                default_username=self.terminal,
                max_packet=p.MAX_INCOMING_PACKET,
            )
            self._callbacks(client, gen)
            client.will_set(self.topic_state, self._state_payload(False, "will"), 1, True)
            log.info(
                "connecting to %s:%d (MQTT %s, session %d)",
                self.m.host,
                self.m.effective_port,
                self.m.protocol,
                self.session,
            )
            self.state = "connecting"
            self.connecting_since = self.mono()
            self.client = client
            client.connect(self.m.host, self.m.effective_port, self.m.keepalive, **kwargs)
            client.loop_start()
        except Exception as exc:  # OSError, ssl.SSLError, DNS failures, bad TLS files...
            self._lost(f"cannot connect: {exc}")

    def _on_connack(self, rc: Any, props: Any) -> None:
        client = self.client
        if client is None:
            return
        if _failed(rc):
            log.error("broker refused the connection: %s", rc)
            self._lost(f"connection refused: {rc}")
            return
        now = self.mono()
        self.state = "connected"
        self.connected_at = now
        self.connected_wall = utc_now_text()
        self.last_error = None
        window = getattr(props, "ReceiveMaximum", None) if props is not None else None
        log.info(
            "connected to %s:%d (session %d%s)",
            self.m.host,
            self.m.effective_port,
            self.session,
            f", broker receive maximum {window}" if window else "",
        )
        client.subscribe(
            [(name, 1) for name in t.terminal_subscriptions(self.county, self.terminal)]
        )
        client.publish(self.topic_state, self._state_payload(True, "connect"), 1, True)
        if self.m.status_on_connect:
            self._publish_status(None)
        self._flush(force=True)  # what the last connection confirmed must not go out again
        self.policy.reset(window)
        for buf in self._buffer.values():
            buf.clear()
        self.next_heartbeat = now + self.m.heartbeat_seconds
        self.next_recheck = now + RECHECK_S
        if self.on_state:
            self.on_state("connected")

    def _lost(self, why: str) -> None:
        client, self.client = self.client, None
        was_connected = self.state == "connected"
        self.gen += 1  # late events from that client are ignored
        if client is not None:
            _quietly(client.disconnect, "disconnect of the lost connection")
            _quietly(client.loop_stop, "stopping paho's thread of the lost connection")
        now = self.mono()
        if self.connected_at is not None:
            lasted = now - self.connected_at
            if lasted >= self.m.stable_after_seconds:
                self.backoff.reset()
                self.good_until = now  # the trouble starts now
                self.short_lived = 0
                self.hint = None
            elif lasted < 2.0:
                self.short_lived += 1
                if self.short_lived == 3:
                    self.hint = (
                        "the broker drops each connection right after accepting it: another "
                        f"client may be using the client id {self.client_id!r}, or the ACL "
                        "refuses this terminal"
                    )
                    log.error("%s", self.hint)
        self.connected_at = None
        delay = self.backoff.next_delay(now - self.good_until)
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

    def _shutdown(self) -> None:
        self._stop_requested.set()
        client = self.client
        if client is not None and self.state == "connected":
            try:
                info = client.publish(
                    self.topic_state, self._state_payload(False, "shutdown"), 1, True
                )
                deadline = self.mono() + 3.0
                while self.mono() < deadline and not info.is_published():
                    try:
                        ev = self.events.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    if ev[0] == "puback":
                        self._handle(ev)
                if not info.is_published():
                    log.warning("no PUBACK for the offline state before shutdown")
                client.disconnect()
            except Exception:
                log.exception("clean disconnect failed")
        if client is not None:
            _quietly(client.loop_stop, "stopping paho's thread at shutdown")
        self.client = None
        self.state = "stopped"
        # The core may be gone already: what was not deleted is simply sent again next time.
        _quietly(lambda: self._flush(force=True), "deleting the last confirmed outbox rows")
        self._publish_public()
        log.info("mqtt link stopped")

    # -- sending ------------------------------------------------------------------------------------

    def _publish_row(self, row: Row) -> bool:
        client = self.client
        if client is None:
            return False
        info = client.publish(
            t.topic(self.county, self.terminal, row.topic),
            with_msg_id(row.payload, row.msg_id),
            row.qos,
            row.retain,
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self.policy.sent(row, info.mid, self.mono())
        return True

    def _pump(self) -> None:
        """Publish what the windows allow, in order, reading the outbox in big slices."""
        for stream in (OTHER, RECORDS):
            buf = self._buffer[stream]
            while self.state == "connected":
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
                    if not self._publish_row(buf.popleft()):
                        return

    def _retry(self, now: float) -> None:
        due = self.policy.due_retries(now)
        if not due:
            return
        current = {r.id: r for r in self.bridge.fetch_ids([r.id for r in due])}
        for row in due:
            fresh = current.get(row.id)
            if fresh is None:
                continue  # confirmed or replaced meanwhile
            if self._publish_row(fresh):
                self._retried.append(fresh.id)
        log.info(
            "re-sent %d message(s) with no confirmation after %.0f s",
            len(current),
            self.m.ack_timeout_seconds,
        )

    def _flush(self, force: bool = False) -> None:
        """Delete confirmed rows, batched: one transaction (one fsync) per FLUSH_ROWS rows or
        FLUSH_S seconds, whichever comes first."""
        pending = len(self._confirm_ids) + len(self._acks) + len(self._retried)
        if not pending:
            self._flush_due = None
            return
        now = self.mono()
        if self._flush_due is None:
            self._flush_due = now + FLUSH_S
        if not force and pending < FLUSH_ROWS and now < self._flush_due:
            return
        ids, acks, retried = self._confirm_ids, self._acks, self._retried
        self._confirm_ids, self._acks, self._retried = [], [], []
        self._flush_due = None
        try:
            self.bridge.confirm(ids, acks, retried)
        except BridgeClosed:
            raise
        except Exception:
            # Keep them: deleting later is harmless, deleting never only costs a duplicate.
            self._confirm_ids.extend(ids)
            self._acks.extend(acks)
            raise

    def _heartbeat(self) -> None:
        client = self.client
        if client is None:
            return
        summary = self.bridge.summary()
        self.clock = summary.get("clock", self.clock)
        self.heartbeat_seq += 1
        payload = p.heartbeat(
            ts=utc_now_text(),
            terminal=self.terminal,
            seq=self.heartbeat_seq,
            session=self.session,
            agent_version=__version__,
            summary=summary,
        )
        info = client.publish(
            t.topic(self.county, self.terminal, t.HEARTBEAT), p.dumps(payload), 0, False
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._lost(f"heartbeat not sent: {mqtt.error_string(info.rc)}")

    def _publish_status(self, snapshot: dict[str, Any] | None) -> None:
        client = self.client
        if client is None or self.state != "connected":
            return
        if snapshot is None:
            snapshot = self.bridge.status()
        self.clock = snapshot.get("clock", self.clock)
        payload = p.status(
            ts=utc_now_text(),
            session=self.session,
            agent_version=__version__,
            snapshot=snapshot,
            link=self.status_dict(),
        )
        client.publish(t.topic(self.county, self.terminal, t.STATUS), p.dumps(payload), 1, True)

    # -- receiving ----------------------------------------------------------------------------------

    def _on_message(self, name: str, payload: bytes, retained: bool) -> None:
        parsed = t.parse(name)
        if parsed is None or parsed.county != self.county:
            log.warning("message on an unexpected topic %r ignored", name)
            return
        if parsed.suffix == t.SCHEDULE and parsed.terminal in (self.terminal, t.ALL):
            if not payload:
                return  # a retained schedule being cleared: keep running what we have
            layer = "county" if parsed.terminal == t.ALL else "terminal"
            out = self.bridge.apply_schedule(
                payload, layer, f"mqtt:{name}", retained, self._schedule_ack
            )
            self.clock = out.clock
            self.policy.wake()  # the ack is in the outbox now
            if not out.silent:
                level = logging.INFO if out.status == "applied" else logging.WARNING
                version = "without a valid version" if out.version is None else f"v{out.version}"
                log.log(level, "schedule %s %s: %s %s", layer, version, out.status, out.reasons[:3])
        elif parsed.terminal != self.terminal:
            log.warning("message for another terminal on %r ignored", name)
        elif parsed.suffix == t.CMD:
            self.commands.handle(payload)
            self.policy.wake()  # the reply is in the outbox now
        elif parsed.suffix == t.RECORD_ACK:
            try:
                msg = p.decode(payload, p.MAX_ACK_BYTES, name)
                problems = p.validate("record_ack", msg)
                if problems:
                    raise p.ProtocolError("malformed", "; ".join(problems))
            except p.ProtocolError as exc:
                log.warning("bad record/ack ignored: %s", exc.message)
                return
            pairs = [(item["record_id"], item["rev"]) for item in msg["records"]]
            self.policy.on_record_ack(pairs)
            self._acks.extend(pairs)
        else:
            log.warning("message on %r ignored", name)

    def _resubscribe(self, layer: str) -> None:
        """Subscribe to the layer's schedule topic again: the broker then sends its retained
        copy (MQTT 3.1.1 and 5 alike), as on a new connection. Not connected: the next
        connection subscribes anyway."""
        client = self.client
        if client is None or self.state != "connected":
            return
        name = (
            t.county_schedule(self.county)
            if layer == "county"
            else t.topic(self.county, self.terminal, t.SCHEDULE)
        )
        log.warning("asking the county for the %s schedule again (subscribing to %s)", layer, name)
        client.subscribe(name, 1)

    def _schedule_ack(self, out: Any) -> dict[str, Any]:
        return p.schedule_ack(
            ts=utc_now_text(),
            terminal=self.terminal,
            county=self.county,
            layer=out.layer,
            version=out.version,
            status=out.status,
            reasons=out.reasons,
            previous_version=out.previous_version,
            applied=out.applied,
            clock=out.clock,
        )

    # -- what the link tells about itself -----------------------------------------------------------

    def _publish_public(self) -> None:
        self._public = {
            "state": self.state,
            "broker": f"{self.m.host}:{self.m.effective_port}",
            "protocol": self.m.protocol,
            "client_id": self.client_id,
            "session": self.session,
            "connected_since": self.connected_wall if self.state == "connected" else None,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "hint": self.hint,
            "heartbeat_seq": self.heartbeat_seq,
            "oversize_dropped": self.oversize_dropped,
            "record_confirmation": self.m.record_confirmation,
            "outbox": self.policy.snapshot(),
        }


def _quietly(fn: Callable[[], Any], what: str) -> None:
    """Run a best-effort clean-up step; a failure is logged (with what failed), not raised."""
    try:
        fn()
    except Exception as exc:
        log.warning("mqtt link: %s failed: %s: %s", what, type(exc).__name__, exc)


def with_msg_id(payload: str, msg_id: str) -> bytes:
    """The outbox row's stable id goes into the message as ``msg_id`` (the county drops
    duplicates by it); a cheap splice, the stored JSON is not parsed again."""
    if payload.startswith("{") and '"msg_id":' not in payload:
        head = '{"msg_id":' + json.dumps(msg_id, ensure_ascii=False)
        payload = head + ("}" if payload == "{}" else "," + payload[1:])
    return payload.encode("utf-8")


def start_link(cfg: Any, runtime: Any) -> MqttLink | None:
    """What the daemon calls: the outbox alarm always, the link when ``mqtt:`` is configured."""
    from agent.adapters.mqtt.alarm import install_outbox_alarm

    install_outbox_alarm(runtime, cfg.mqtt)
    if cfg.mqtt is None:
        log.info("no mqtt section in the config: running offline, everything stays in the outbox")
        return None
    link = MqttLink(cfg, runtime)
    link.start()
    return link
