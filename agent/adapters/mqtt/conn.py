"""Building a paho client from an ``MqttConfig``: the agent and the county tools share this, so
TLS, credentials and protocol choices behave the same on both ends."""

from __future__ import annotations

import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.adapters.mqtt.config import MqttConfig

PERSISTENT_SESSION_S = 7 * 24 * 3600  # a durable subscriber's session outlives a week away
MAX_NETWORK_WAIT_S = 30.0  # the longest sleep of paho's network thread with no traffic


def network_wait(keepalive: float) -> float:
    """How long paho's network thread may sleep in ``select()`` with no traffic.

    paho looks at its keepalive only when ``select()`` returns, so a PINGREQ may go out up to this
    much late; a quarter of the keepalive keeps it well inside the broker's 1.5 x keepalive.
    Traffic (incoming bytes, or a publish from another thread through paho's socket pair) wakes
    the thread at once either way; only the idle wake-ups change (paho's own: every second).
    """
    if keepalive <= 0:
        return MAX_NETWORK_WAIT_S
    return max(1.0, min(MAX_NETWORK_WAIT_S, keepalive / 4.0))


class Client(mqtt.Client):
    """paho's client, whose ``loop_start()`` thread sleeps until traffic or ``network_wait``
    instead of waking every second; ``loop_stop()`` wakes it so it still returns at once."""

    network_wait_s = 1.0

    def _thread_main(self) -> None:
        # paho's own, but with our select() timeout (it passes the default of 1 s).
        try:
            self.loop_forever(timeout=self.network_wait_s, retry_first_connection=True)
        finally:
            self._thread = None

    def loop_stop(self) -> mqtt.MQTTErrorCode:
        self._thread_terminate = True  # seen by the network thread when its select() returns
        wake = self._sockpairW
        if wake is not None:
            try:
                wake.send(b"0")
            except OSError:
                pass
        return super().loop_stop()


def concrete(protocol: str) -> str:
    """The version a first attempt speaks: ``auto`` starts with MQTT 5."""
    return "5" if protocol == "auto" else protocol


def tls_context(m: MqttConfig) -> ssl.SSLContext | None:
    tls = m.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None
    )
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.insecure:
        ctx.check_hostname = False
    return ctx


def new_client(
    m: MqttConfig,
    client_id: str,
    *,
    default_username: str | None = None,
    persistent: bool = False,
    manual_ack: bool = False,
    max_packet: int | None = None,
    protocol: str | None = None,
) -> tuple[mqtt.Client, dict[str, Any]]:
    """A configured client and the keyword arguments for its ``connect()``.

    ``persistent``: the broker keeps the session (subscriptions and queued QoS 1 messages) while
    the client is away: clean_session=False (3.1.1) / clean_start=False with a session expiry (5).
    ``max_packet``: the largest packet this client accepts (MQTT 5 Maximum-Packet-Size); the
    broker drops a bigger message for this client instead of sending it, so megabytes never reach
    a small terminal's memory. MQTT 3.1.1 has no such property: there the broker's own limit
    (Mosquitto ``max_packet_size``) is the only guard before the bytes arrive.
    ``protocol``: the version of this attempt ("5" or "3.1.1"); by default the configured one,
    and MQTT 5 for ``auto`` (the caller that probes passes the version it is trying).
    Paho's own reconnect is off; the caller decides when to try again. The network thread of
    ``loop_start()`` sleeps up to ``network_wait(m.keepalive)`` with no traffic.
    """
    v5 = (protocol or concrete(m.protocol)) == "5"
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else not persistent,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        reconnect_on_failure=False,
        manual_ack=manual_ack,
    )
    client.max_inflight_messages_set(0)  # callers keep their own window
    client.max_queued_messages_set(0)
    client.connect_timeout = m.connect_timeout_seconds
    client.network_wait_s = network_wait(m.keepalive)
    username = m.username
    password = m.read_password()
    if username is None and password is not None:
        username = default_username or client_id
    if username is not None:
        client.username_pw_set(username, password)
    ctx = tls_context(m)
    if ctx is not None:
        client.tls_set_context(ctx)
    kwargs: dict[str, Any] = {}
    if v5:
        kwargs["clean_start"] = not persistent
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = PERSISTENT_SESSION_S
        if max_packet is not None:
            props.MaximumPacketSize = max_packet
        if not props.isEmpty():
            kwargs["properties"] = props
    return client, kwargs


def code(rc: Any) -> int:
    value = getattr(rc, "value", rc)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def failed(rc: Any) -> bool:
    if hasattr(rc, "is_failure"):
        return bool(rc.is_failure)
    return code(rc) >= 0x80
