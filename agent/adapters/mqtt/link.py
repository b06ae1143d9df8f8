"""The paho adapter: one connection to the county broker, driven by the link's own worker thread.

Threads
- paho's network thread (``loop_start``), one per connection. Its callbacks only put an event on
  the link's queue; they never call paho or the agent (several paho deadlocks come from publishing
  inside callbacks). It sleeps until traffic or a quarter of the keepalive
  (``agent.adapters.mqtt.conn.Client``), not every second as paho's own loop does.
- the link's worker thread ("mqtt-link"): connects, subscribes on every new connection, publishes
  from the outbox, sends heartbeats, applies schedules and runs commands. It touches the agent only
  through the bridge, which hops to the core thread; so a slow DNS lookup or TLS handshake blocks
  this thread, never the core.

The jobs live in their own modules, all driven from this worker: ``connection`` (opening, losing
and closing the connection, back-off), ``sending`` (outbox, confirmations, heartbeat, status) and
``receiving`` (schedules, commands, record acks). ``MqttLink`` is the public face (start, stop,
wake, status) and the worker's event loop.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.adapters.mqtt.bridge import BridgeClosed, RuntimeBridge
from agent.adapters.mqtt.commands import CommandProcessor
from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.connection import Connection, Event, quietly
from agent.adapters.mqtt.receiving import Receiver
from agent.adapters.mqtt.sending import Sender, with_msg_id
from agent.adapters.mqtt.version import MEMORY_FILE
from agent.domain import topics as t
from agent.domain.backoff import Backoff
from agent.domain.outbox import OutboxPolicy

__all__ = ["MqttLink", "start_link", "with_msg_id"]

log = logging.getLogger("agent.adapters.mqtt")

IDLE_WAIT_S = 60.0  # the longest sleep with nothing due (stop, PUBACKs, messages arrive as events)
DRAIN_MAX = 5000  # events taken per wake-up before the timed work runs (PUBACKs come in bursts)


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
        self.client_id = self.m.client_id or self.terminal
        self.events: queue.Queue[Event] = queue.Queue()
        self.thread: threading.Thread | None = None
        state_dir = getattr(cfg, "state_dir", None)
        self.conn = Connection(
            self.m,
            terminal=self.terminal,
            county=self.county,
            client_id=self.client_id,
            bridge=self.bridge,
            events=self.events,
            backoff=self.backoff,
            mono=mono,
            protocol_memory=None if state_dir is None else state_dir / MEMORY_FILE,
        )
        self.sender = Sender(
            self.conn, self.m, self.bridge, self.policy, link_status=self.status_dict, mono=mono
        )
        self.commands = CommandProcessor(
            self.bridge, self.terminal, on_status=self.sender.publish_status, now=mono
        )
        self.receiver = Receiver(self.conn, self.bridge, self.sender, self.commands)
        self._public: dict[str, Any] = {"state": "idle"}
        self._stop_requested = threading.Event()

    # -- the connection's figures, read by benches and tests ---------------------------------------

    @property
    def state(self) -> str:
        return self.conn.state

    @property
    def session(self) -> int:
        return self.conn.session

    @property
    def connects(self) -> int:
        return self.conn.connects

    @property
    def reconnects(self) -> int:
        return self.conn.reconnects

    @property
    def last_error(self) -> str | None:
        return self.conn.last_error

    @property
    def hint(self) -> str | None:
        """A likely cause for repeated trouble (a duplicate client id, an ACL), or None."""
        return self.conn.hint

    @property
    def on_state(self) -> Callable[[str], None] | None:
        """Called with "connected" or "waiting" on each change (benches and tests)."""
        return self.conn.on_state

    @on_state.setter
    def on_state(self, fn: Callable[[str], None] | None) -> None:
        self.conn.on_state = fn

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

    # -- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        self.conn.begin()
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
                for _ in range(DRAIN_MAX):  # take what queued up meanwhile
                    try:
                        ev = self.events.get_nowait()
                    except queue.Empty:
                        break
                    if ev[0] == "stop":
                        self.events.put(ev)
                        break
                    self._handle(ev)
                self._periodic()
                if self.conn.connected:
                    self.sender.pump()
                self.sender.flush()
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
        state = self.conn.state
        if state == "waiting":
            due.append(self.conn.connect_due)
        if state == "connecting":
            due.append(self.conn.connack_deadline())
        if self.sender.flush_due is not None:
            due.append(self.sender.flush_due)
        if state == "connected":
            due += self.sender.due_times()
        return max(0.0, min(due) - now)

    def _handle(self, ev: Event) -> None:
        kind = ev[0]
        if kind == "wake":
            self.policy.wake()
            return
        if kind == "resubscribe":
            self.receiver.resubscribe(ev[1])
            return
        if ev[1] != self.conn.gen:
            return  # from a connection we already gave up on
        if kind == "puback":
            self.sender.on_puback(ev[2], ev[3])
        elif kind == "message":
            self.receiver.on_message(ev[2], ev[3], ev[4])
        elif kind == "oversize":
            self.receiver.on_oversize(ev[2], ev[3])
        elif kind == "connack":
            self._on_connack(ev[2], ev[3])
        elif kind == "disconnect":
            self.conn.on_disconnect(ev[2])
        elif kind == "suback":
            self.conn.on_suback(ev[3])

    def _periodic(self) -> None:
        conn = self.conn
        now = self.mono()
        if (
            conn.state == "waiting"
            and now >= conn.connect_due
            and not self._stop_requested.is_set()
        ):
            conn.connect()
        elif conn.state == "connecting" and now > conn.connack_deadline():
            conn.lost("no CONNACK from the broker in time")
        elif conn.connected:
            if conn.client is not None and not conn.client.is_connected():
                # paho gave up on the socket without telling us (belt and braces)
                conn.lost("the connection is gone")
                return
            self.sender.tick(now)

    def _on_connack(self, rc: Any, props: Any) -> None:
        now = self.conn.on_connack(rc, props)
        if now is None:
            return
        if self.m.status_on_connect:
            self.sender.publish_status(None)
        self.sender.on_connected(now, self.conn.receive_maximum)
        if self.conn.on_state:
            self.conn.on_state("connected")

    def _shutdown(self) -> None:
        self._stop_requested.set()
        self.conn.close(self._handle)
        # The core may be gone already: what was not deleted is simply sent again next time.
        quietly(lambda: self.sender.flush(force=True), "deleting the last confirmed outbox rows")
        self._publish_public()
        log.info("mqtt link stopped")

    # -- what the link tells about itself -----------------------------------------------------------

    def _publish_public(self) -> None:
        conn = self.conn
        self._public = {
            "state": conn.state,
            "broker": f"{self.m.host}:{self.m.effective_port}",
            **conn.version.status(),
            "client_id": self.client_id,
            "session": conn.session,
            "connected_since": conn.connected_wall if conn.connected else None,
            "connects": conn.connects,
            "reconnects": conn.reconnects,
            "last_error": conn.last_error,
            "hint": conn.hint,
            "heartbeat_seq": self.sender.heartbeat_seq,
            "oversize_dropped": self.receiver.oversize_dropped,
            "record_confirmation": self.m.record_confirmation,
            "outbox": self.policy.snapshot(),
        }


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
