"""A county tool's MQTT connection: the agent's client factory, a queue of events, blocking helpers.

Same rule as on the terminal: paho's callbacks only put events on a queue; the tool's own thread
calls paho (publish, subscribe, ack). Broker options (``--host``, ``--port``, TLS, credentials)
are the agent's ``mqtt:`` keys, checked the same way (a key file readable by others is refused).

``--protocol auto`` (the default) behaves as the agent's: MQTT 5 first, then 3.1.1 when the broker
answers CONNACK 0x84 (NATS) or closes the socket before any CONNACK (RabbitMQ 3.10). The answer is
kept for the process (a collector's reconnects do not probe again) and logged once.
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from agent.adapters.mqtt.config import MqttConfig, TlsConfig, secret_file_problem
from agent.adapters.mqtt.conn import code, concrete, failed, new_client
from agent.adapters.mqtt.version import UNSUPPORTED_VERSION

log = logging.getLogger("county.client")

# (host, port) -> (version, why): what "auto" found out in this process.
_LEARNED: dict[tuple[str, int], tuple[str, str]] = {}


class ToolError(Exception):
    """Something the technician must fix; printed without a traceback."""


def add_broker_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("broker (the same settings as the agent's mqtt: section)")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=None, help="default 1883, or 8883 with TLS")
    g.add_argument(
        "--protocol",
        choices=["auto", "5", "3.1.1"],
        default="auto",
        help="MQTT version; auto (default): 5, or 3.1.1 when the broker lacks 5",
    )
    g.add_argument("--keepalive", type=int, default=30)
    g.add_argument("--tls-ca", type=Path, default=None, help="CA file; turns TLS on")
    g.add_argument("--tls", action="store_true", help="TLS with the system's CA store")
    g.add_argument("--tls-cert", type=Path, default=None)
    g.add_argument("--tls-key", type=Path, default=None)
    g.add_argument("--tls-insecure", action="store_true", help="skip the host name check")
    g.add_argument("--username", default=None)
    g.add_argument("--password-file", type=Path, default=None)
    g.add_argument("--client-id", default=None)


def broker_config(args: argparse.Namespace) -> MqttConfig:
    tls = None
    if args.tls or args.tls_ca or args.tls_cert:
        tls = TlsConfig(args.tls_ca, args.tls_cert, args.tls_key, args.tls_insecure)
        problems = tls._validate()
        if problems:
            raise ToolError("; ".join(f"--tls-{k.split('_')[0]}: {m}" for k, m in problems))
    if args.password_file is not None:
        problem = secret_file_problem(args.password_file, "password file")
        if problem:
            raise ToolError(problem)
    return MqttConfig(
        host=args.host,
        port=args.port,
        protocol=args.protocol,
        keepalive=args.keepalive,
        tls=tls,
        username=args.username,
        password_file=args.password_file,
    )


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    mid: int


class CountyClient:
    """One connection; ``messages`` is the queue of what arrived."""

    def __init__(
        self,
        m: MqttConfig,
        client_id: str,
        *,
        persistent: bool = False,
        manual_ack: bool = False,
    ) -> None:
        self.m = m
        self.client_id = client_id
        self.persistent = persistent
        self.manual_ack = manual_ack
        self.messages: queue.Queue[Message] = queue.Queue()
        self.control: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.client: mqtt.Client | None = None
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.session_present = False
        self.protocol = concrete(m.protocol)  # the version of the last connection
        self.protocol_why = "configured" if m.protocol != "auto" else "MQTT 5 accepted"
        self._acks: dict[int, Any] = {}
        self._subacks: dict[int, Any] = {}
        self._lock = threading.Lock()

    def connect(self, timeout: float = 10.0) -> None:
        """Connect; with ``protocol: auto``, fall back to 3.1.1 when the broker lacks MQTT 5."""
        key = (self.m.host, self.m.effective_port)
        version = concrete(self.m.protocol)
        if self.m.protocol == "auto" and key in _LEARNED:
            version, self.protocol_why = _LEARNED[key]
        fallback = self._connect(version, timeout, probing=self.m.protocol == "auto")
        if fallback is not None:
            self._connect("3.1.1", timeout, probing=False)
            self.protocol_why = f"{fallback}; 3.1.1 accepted"
            log.info("%s: %s", self.client_id, self.protocol_why)
        if self.m.protocol == "auto":
            _LEARNED[key] = (self.protocol, self.protocol_why)

    def _connect(self, version: str, timeout: float, *, probing: bool) -> str | None:
        """One attempt. Returns why MQTT 5 is not spoken when the broker said so (``probing``
        an MQTT 5 attempt), else None; raises ToolError on every other failure."""
        self.protocol = version
        while not self.control.empty():  # what a refused attempt left behind
            self.control.get_nowait()
        client, kwargs = new_client(
            self.m,
            self.client_id,
            persistent=self.persistent,
            manual_ack=self.manual_ack,
            protocol=version,
        )

        def on_connect(_c: Any, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
            self.control.put(("connack", rc, bool(getattr(flags, "session_present", False))))

        def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.connected.clear()
            self.lost.set()
            self.control.put(("disconnect", rc))

        def on_publish(_c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
            with self._lock:
                if len(self._acks) > 10000:  # fire-and-forget publishes are never collected
                    self._acks.clear()
                self._acks[mid] = rc

        def on_subscribe(_c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
            with self._lock:
                self._subacks[mid] = codes

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            self.messages.put(
                Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, msg.mid)
            )

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        self.client = client
        self.lost.clear()
        try:
            client.connect(self.m.host, self.m.effective_port, self.m.keepalive, **kwargs)
        except Exception as exc:
            raise ToolError(
                f"cannot reach the broker at {self.m.host}:{self.m.effective_port}: {exc}"
            ) from None
        client.loop_start()
        try:
            ev = self.control.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise ToolError("the broker did not answer the connection in time") from None
        probing = probing and version == "5"
        if ev[0] == "disconnect" and probing:
            self.close(disconnect=False)
            return "the broker closed the connection before CONNACK with MQTT 5"
        if ev[0] == "connack" and failed(ev[1]) and probing and code(ev[1]) == UNSUPPORTED_VERSION:
            self.close(disconnect=False)
            return "the broker refused MQTT 5 (CONNACK 0x84, unsupported protocol version)"
        if ev[0] != "connack" or failed(ev[1]):
            self.close()
            raise ToolError(
                f"the broker refused the connection (MQTT {version}): "
                f"{ev[1] if len(ev) > 1 else ev}"
            )
        self.session_present = ev[2]
        self.connected.set()
        return None

    def subscribe(self, filters: list[str], timeout: float = 10.0) -> list[Any]:
        client = self._connected_client()
        rc, mid = client.subscribe([(f, 1) for f in filters])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise ToolError(f"subscribe failed: {mqtt.error_string(rc)}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if mid in self._subacks:
                    codes = self._subacks.pop(mid)
                    bad = [str(c) for c in codes if failed(c)]
                    if bad:
                        raise ToolError(f"the broker refused the subscription: {', '.join(bad)}")
                    return list(codes)
            time.sleep(0.01)
        raise ToolError("no answer to the subscription")

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        wait: float | None = 10.0,
    ) -> int:
        """Publish; with ``wait``, block until the PUBACK and fail on an MQTT 5 refusal."""
        info = self._connected_client().publish(topic, payload, qos, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ToolError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        if wait is None or qos == 0:
            return info.mid
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self._lock:
                if info.mid in self._acks:
                    rc = self._acks.pop(info.mid)
                    if failed(rc):
                        raise ToolError(f"the broker refused the message on {topic}: {rc}")
                    return info.mid
            time.sleep(0.005)
        raise ToolError(f"no PUBACK for {topic} within {wait:.0f} s")

    def _connected_client(self) -> mqtt.Client:
        if self.client is None:
            raise ToolError(f"{self.client_id}: not connected (call connect() first)")
        return self.client

    def ack(self, msg: Message) -> None:
        """Manual PUBACK (``manual_ack``): only after what the message said is safely stored."""
        if self.client is not None and msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)

    def puback_seen(self, mid: int) -> Any | None:
        with self._lock:
            return self._acks.pop(mid, None)

    def close(self, disconnect: bool = True) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        if disconnect:
            try:
                client.disconnect()
            except Exception as exc:
                log.warning("%s: clean disconnect failed: %s", self.client_id, exc)
        client.loop_stop()
        self.connected.clear()
