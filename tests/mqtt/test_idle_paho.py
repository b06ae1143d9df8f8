"""paho's network thread sleeps until traffic (or a quarter of the keepalive) instead of every
second, and still pings in time, sends a publish from another thread at once, and stops at once.
Against a real Mosquitto on a free loopback port."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.mqtt.conn import MAX_NETWORK_WAIT_S, network_wait, new_client
from agent.cli.county.broker import PrivateBroker

pytestmark = pytest.mark.mosquitto_only("paho's idle thread against a Mosquitto of its own")


def switches(thread: threading.Thread) -> int | None:
    try:
        text = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    except OSError:
        return None
    return sum(int(line.split()[1]) for line in text.splitlines() if "ctxt_switches" in line)


class Connected:
    """A client from ``new_client`` on its ``loop_start()`` thread, connected to the broker."""

    def __init__(self, broker: PrivateBroker, keepalive: int, name: str) -> None:
        self.client, kwargs = new_client(
            MqttConfig(host=broker.host, port=broker.port, keepalive=keepalive), name
        )
        self.up = threading.Event()
        self.down = threading.Event()
        self.messages: list[tuple[float, bytes]] = []
        self.client.on_connect = lambda *_a: self.up.set()
        self.client.on_disconnect = lambda *_a: self.down.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.append(
            (time.monotonic(), msg.payload)
        )
        self.client.connect(broker.host, broker.port, keepalive, **kwargs)
        self.client.loop_start()
        assert self.up.wait(10), "no CONNACK"

    @property
    def thread(self) -> threading.Thread:
        (thread,) = [t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")]
        return thread

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = PrivateBroker(tmp_path / "broker").start()
    yield b
    b.stop()


def test_network_wait_is_a_quarter_of_the_keepalive_within_bounds() -> None:
    assert network_wait(60) == 15.0
    assert network_wait(4) == 1.0
    assert network_wait(2) == 1.0
    assert network_wait(3600) == MAX_NETWORK_WAIT_S
    assert network_wait(0) == MAX_NETWORK_WAIT_S


def test_an_idle_connection_does_not_wake_every_second(broker: PrivateBroker) -> None:
    c = Connected(broker, keepalive=40, name="idle")  # sleeps up to 10 s
    try:
        time.sleep(0.5)
        before = switches(c.thread)
        time.sleep(3.0)
        after = switches(c.thread)
    finally:
        c.close()
    if before is None or after is None:
        pytest.skip("no per-thread switch counts here")
    assert after - before <= 1, (before, after)  # paho's own loop: about 3 in 3 s


def test_a_publish_from_another_thread_goes_out_at_once(broker: PrivateBroker) -> None:
    sub = Connected(broker, keepalive=40, name="sub")
    pub = Connected(broker, keepalive=40, name="pub")
    try:
        got = threading.Event()
        sub.client.on_subscribe = lambda *_a: got.set()
        sub.client.subscribe("idle/test", 0)
        assert got.wait(5)
        time.sleep(1.0)  # both network threads are asleep in select() now
        t0 = time.monotonic()
        pub.client.publish("idle/test", b"x", 0)  # from this thread, not paho's
        deadline = time.monotonic() + 5
        while not sub.messages and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        pub.close()
        sub.close()
    assert sub.messages, "the message never arrived"
    assert sub.messages[0][0] - t0 < 0.5


def test_keepalive_pings_still_keep_an_idle_connection(broker: PrivateBroker) -> None:
    # The broker drops a client it hears nothing from for 1.5 x keepalive (12 s); no traffic
    # but paho's PINGREQs for 14 s, and the connection is still there.
    c = Connected(broker, keepalive=8, name="ping")
    try:
        assert not c.down.wait(14.0), "the broker dropped the idle connection"
        assert c.client.is_connected()
    finally:
        c.close()


def test_loop_stop_wakes_the_sleeping_network_thread(broker: PrivateBroker) -> None:
    c = Connected(broker, keepalive=120, name="stop")  # sleeps up to 30 s
    time.sleep(0.5)
    thread = c.thread
    t0 = time.monotonic()
    c.client.loop_stop()  # no disconnect() first: nothing else would wake it
    assert time.monotonic() - t0 < 1.0
    assert not thread.is_alive()
    c.client.disconnect()


def test_the_client_is_still_a_paho_client() -> None:
    client, _ = new_client(MqttConfig(host="127.0.0.1", keepalive=60), "plain")
    assert isinstance(client, mqtt.Client)
    assert client.network_wait_s == 15.0  # type: ignore[attr-defined]
