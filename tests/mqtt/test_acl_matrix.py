"""The shipped county broker config (config/mosquitto/) against a real Mosquitto: TLS client
certificates made by ``countyctl broker-acl --make-certs``, the ACL it writes, MQTT 5 and 3.1.1.

Terminal A (t-001) must not publish under B's (t-002) root nor on any schedule, library, trust or
cmd topic, must not subscribe to B's down topics, and must not take B's client id; the county
tools may do all of it. A refused publish is seen as PUBACK 0x87 (MQTT 5) and, for both
protocols, as a message the county-wide subscriber never gets although a later marker from the
same client arrives. The matrix is printed (``-s``) and is the assertion message.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.cli.county.broker import PrivateBroker
from agent.cli.county.broker_acl import DEFAULT_TOOLS, make_roster, render_acl
from tests.helpers import ROOT

pytestmark = pytest.mark.mosquitto_only("Mosquitto ACL and password files, its log")

COUNTY, A, B = "c-01", "t-001", "t-002"
TOOL, COLLECTOR = "countyctl", "county-collector"
CONF = ROOT / "config" / "mosquitto"
BASE = f"rde/v1/{COUNTY}"
PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}
UP = ["state", "heartbeat", "status", "record", "event", "link/summary", "schedule/ack",
      "library/ack", "cmd/reply", "trust/ack"]  # fmt: skip
DOWN = ["schedule", "library", "cmd", "record/ack", "trust"]


class ShippedBroker(PrivateBroker):
    """A private Mosquitto running a file from config/mosquitto/ with the paths and the port
    substituted (and a log file, no persistence); ``drop`` removes option lines to compare."""

    def __init__(self, workdir: Path, conf: str, files: Path, drop: tuple[str, ...] = ()):
        super().__init__(workdir)
        self.shipped, self.files, self.drop = conf, files, drop

    def write_conf(self) -> Path:
        text = (CONF / self.shipped).read_text()
        assert "listener 8883\n" in text and "/etc/mosquitto/rde/" in text
        text = text.replace("/etc/mosquitto/rde/", f"{self.files}/")
        text = text.replace("listener 8883\n", f"listener {self.port} {self.host}\n")
        lines = [ln for ln in text.splitlines() if not ln.startswith(self.drop or ("\0",))]
        head = [*(["user root"] if os.geteuid() == 0 else []), "persistence false",
                f"log_dest file {self.log_path}", "log_type all", "connection_messages true"]  # fmt: skip
        self.conf_path.write_text("\n".join(head + lines) + "\n")
        return self.conf_path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ACL, password file and certificates made by the command, as a county would."""
    d = tmp_path_factory.mktemp("rde")
    (d / "roster.yaml").write_text(f"- {A}\n- {B}\n")
    env = {**os.environ, "COUNTYCTL_PYTHON": sys.executable}
    r = subprocess.run(
        [str(ROOT / "scripts" / "countyctl"), "broker-acl", "--county", COUNTY, "--roster",
         str(d / "roster.yaml"), "--out", str(d), "--passwords", "--make-certs", str(d),
         "--server-name", "127.0.0.1", "--days", "2"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def tls_broker(files: Path, tmp_path_factory: pytest.TempPathFactory):
    b = ShippedBroker(tmp_path_factory.mktemp("b"), "rde-county.conf", files).start()
    yield b
    b.stop()


@dataclass
class Client:
    """A paho client whose callbacks only fill queues and dicts the test reads."""

    ident: str
    c: mqtt.Client
    connack: queue.Queue = field(default_factory=queue.Queue)
    gone: queue.Queue = field(default_factory=queue.Queue)
    msgs: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, int] = field(default_factory=dict)
    subacks: dict[int, list[int]] = field(default_factory=dict)

    def wait(self, pred: Any, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, f"{self.ident}: timed out waiting for {what}"
            time.sleep(0.02)

    def publish(self, topic: str, payload: str) -> int | None:
        """PUBACK reason code (MQTT 5; 3.1.1 always says 0)."""
        mid = self.c.publish(topic, payload, qos=1).mid
        self.wait(lambda: mid in self.pubacks, f"PUBACK {topic}")
        return self.pubacks[mid]

    def subscribe(self, topic: str) -> int:
        _, mid = self.c.subscribe(topic, qos=1)
        self.wait(lambda: mid in self.subacks, f"SUBACK {topic}")
        return self.subacks[mid][0]

    def got(self, payload: str) -> bool:
        return any(p == payload.encode() for _, p in list(self.msgs))

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def connect(
    broker: PrivateBroker, files: Path, ident: str, proto: str, client_id: str | None = None,
    password: bool = False,
) -> tuple[Client, int]:  # fmt: skip
    """Connect as ``ident`` (its certificate, or its password) with ``client_id``; returns the
    client and the CONNACK reason code."""
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or ident, protocol=PROTOCOLS[proto]
    )
    cl = Client(ident, c)
    if password:
        c.tls_set(ca_certs=str(files / "ca.crt"))
        c.username_pw_set(ident, (files / "credentials" / f"{ident}.pass").read_text().strip())
    else:
        c.tls_set(str(files / "ca.crt"), str(files / f"{ident}.crt"), str(files / f"{ident}.key"))
    c.on_connect = lambda _c, _u, _f, rc, _p: cl.connack.put(rc.value)
    c.on_disconnect = lambda _c, _u, _f, rc, _p: cl.gone.put(rc.value)
    c.on_message = lambda _c, _u, m: cl.msgs.append((m.topic, m.payload))
    c.on_publish = lambda _c, _u, mid, rc, _p: cl.pubacks.__setitem__(mid, rc.value)
    c.on_subscribe = lambda _c, _u, mid, rcs, _p: cl.subacks.__setitem__(
        mid, [r.value for r in rcs]
    )
    c.reconnect_delay_set(30, 30)
    c.connect(broker.host, broker.port, keepalive=30)
    c.loop_start()
    try:
        rc = cl.connack.get(timeout=10)
    except queue.Empty:
        rc = -1  # the TLS handshake or the broker dropped the connection
    if rc != 0:
        cl.close()
    return cl, rc


@dataclass
class Matrix:
    rows: list[tuple[str, ...]] = field(default_factory=list)
    bad: int = 0

    def add(self, actor: str, action: str, topic: str, want: str, got: str) -> None:
        ok = want == got
        self.bad += not ok
        self.rows.append((actor, action, topic, want, got, "ok" if ok else "WRONG"))

    def info(self, actor: str, action: str, topic: str, got: str) -> None:
        self.rows.append((actor, action, topic, "(not checked)", got, "info"))

    def text(self, title: str) -> str:
        head = ("actor", "action", "topic", "expected", "observed", "")
        w = [max(len(r[i]) for r in [head, *self.rows]) for i in range(6)]
        out = [title] + [
            "  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in [head, *self.rows]
        ]
        return "\n".join(out)


def check_publishes(
    m: Matrix, pub: Client, watcher: Client, proto: str, cases: list[tuple[str, bool]],
    marker_topic: str,
) -> None:  # fmt: skip
    """Publish each case, then a marker the watcher must get: anything refused and not seen by
    then was not delivered (one publisher, one subscriber, QoS 1 keep their order)."""
    tag = f"{pub.ident}-{proto}-{time.monotonic_ns()}"
    codes = {}
    for i, (topic, _) in enumerate(cases):
        codes[i] = pub.publish(topic, f"{tag}-{i}")
    marker = f"{tag}-marker"
    assert pub.publish(marker_topic, marker) == 0
    watcher.wait(lambda: watcher.got(marker), f"marker on {marker_topic}")
    for i, (topic, allowed) in enumerate(cases):
        seen = watcher.got(f"{tag}-{i}")
        got = "delivered" if seen else "dropped"
        if proto == "5":
            got += f" 0x{codes[i]:02x}"
        want = ("delivered" if allowed else "dropped") + (
            "" if proto != "5" else " 0x00" if allowed else " 0x87"
        )
        m.add(pub.ident, "publish", topic, want, got)


@pytest.mark.parametrize("proto", ["5", "3.1.1"])
def test_acl_matrix(tls_broker: PrivateBroker, files: Path, proto: str) -> None:
    m = Matrix()
    watcher, rc = connect(tls_broker, files, COLLECTOR, "5")
    assert rc == 0
    a, rc_a = connect(tls_broker, files, A, proto)
    b, rc_b = connect(tls_broker, files, B, proto)
    tool, rc_t = connect(tls_broker, files, TOOL, proto)
    assert (rc_a, rc_b, rc_t) == (0, 0, 0)
    try:
        code = watcher.subscribe(f"{BASE}/#")
        m.add(
            COLLECTOR, "subscribe", f"{BASE}/#", "granted", "granted" if code < 0x80 else "refused"
        )

        # Terminal A subscribes: its own down topics and the county-wide layers, nothing else.
        own = [f"{BASE}/{A}/{s}" for s in DOWN if s != "trust"]
        own += [f"{BASE}/all/{s}" for s in ("schedule", "library", "trust")]
        foreign = [f"{BASE}/{B}/cmd", f"{BASE}/{B}/schedule", f"{BASE}/+/cmd", f"{BASE}/#", "rde/#"]
        for topic in own:
            code = a.subscribe(topic)
            m.add(A, "subscribe", topic, "granted", "granted" if code < 0x80 else "refused")
        for topic in foreign:
            # Mosquitto 2.0's acl_file grants every SUBACK ("FIXME - implement ACL subscription
            # strings" in security_default.c); it checks read access per delivered message,
            # which the "receive" rows below prove. Recorded, not asserted.
            code = a.subscribe(topic)
            m.info(A, "subscribe", topic, "granted" if code < 0x80 else "refused")
        for topic in (f"{BASE}/{B}/{s}" for s in ("schedule", "cmd", "library", "record/ack")):
            b.subscribe(topic)

        # Terminal A publishes: its own up topics only.
        cases = [(f"{BASE}/{A}/{s}", True) for s in UP]
        cases += [(f"{BASE}/{B}/{s}", False) for s in ("state", "record", "cmd/reply")]
        cases += [(f"{BASE}/{who}/{s}", False) for who in (A, B, "all") for s in DOWN]
        check_publishes(m, a, watcher, proto, cases, f"{BASE}/{A}/heartbeat")

        # County tools: schedules, libraries, trust and commands, seen by the terminal.
        tool_cases = [(f"{BASE}/all/{s}", True) for s in ("schedule", "library", "trust")]
        tool_cases += [
            (f"{BASE}/{B}/{s}", True) for s in ("schedule", "library", "cmd", "record/ack")
        ]
        check_publishes(m, tool, watcher, proto, tool_cases, f"{BASE}/{B}/cmd")
        for topic in (t for t, _ in tool_cases if f"/{B}/" in t):
            b.wait(lambda t=topic: any(x == t for x, _ in list(b.msgs)), f"{B} gets {topic}")
            m.add(B, "receive", topic, "delivered", "delivered")
        # A subscribed to rde/# and B's topics: once a later county-wide message reaches A,
        # anything of B's it was going to get has arrived.
        final = f"final-{proto}-{time.monotonic_ns()}"
        assert tool.publish(f"{BASE}/all/schedule", final) == 0
        a.wait(lambda: a.got(final), "the county-wide marker at A")
        got_a = {x for x, _ in list(a.msgs)}
        for topic, _ in tool_cases:
            want = "delivered" if "/all/" in topic else "not delivered"
            m.add(A, "receive", topic, want, "delivered" if topic in got_a else "not delivered")

        # A takes B's client id: refused, or A's own id is forced; B stays connected.
        thief, rc = connect(tls_broker, files, A, proto, client_id=B)
        time.sleep(1.5)
        b_up = b.gone.empty() and b.c.is_connected()
        m.add(A, "connect", f"client id {B}", "B stays", "B stays" if b_up else "B knocked off")
        if rc == 0:
            # Connected: it is t-001 to the broker (its ACL, not t-002's).
            seen = "own root" if thief.publish(f"{BASE}/{A}/event", "x") == 0 else "refused"
            m.add(A, "as " + B, f"{BASE}/{A}/event", "own root", seen)
            as_b = f"as {B} (p{'5' if proto == '5' else '2'}, c1, k30, u'{A}')"
            m.add(
                A,
                "as " + B,
                "broker log",
                "not t-002",
                "t-002" if as_b in tls_broker.log_text() else "not t-002",
            )
            thief.close()
    finally:
        for cl in (a, b, tool, watcher):
            cl.close()
    report = m.text(f"ACL matrix, MQTT {proto}, {tls_broker.conf_path}")
    print("\n" + report)
    assert m.bad == 0, report


def test_client_id_needs_use_username_as_clientid(files: Path, tmp_path: Path) -> None:
    """The control: the shipped config without ``use_username_as_clientid`` lets A's
    certificate take B's client id and knock B off (what the field test found)."""
    broker = ShippedBroker(tmp_path, "rde-county.conf", files, drop=("use_username_as_clientid",))
    broker.start()
    try:
        b, rc_b = connect(broker, files, B, "5")
        thief, rc = connect(broker, files, A, "5", client_id=B)
        assert (rc_b, rc) == (0, 0)
        b.wait(lambda: not b.gone.empty(), f"{B} knocked off by {A} using its client id")
        assert f"as {B} (p5, c1, k30, u'{A}')" in broker.log_text()
        thief.close()
        b.close()
    finally:
        broker.stop()


def test_password_variant(files: Path, tmp_path: Path) -> None:
    """The password-file config: same ACL, the username is the client id, a wrong password
    is refused."""
    broker = ShippedBroker(tmp_path, "rde-county-password.conf", files).start()
    try:
        b, rc_b = connect(broker, files, B, "5", password=True)
        a, rc_a = connect(broker, files, A, "5", client_id=B, password=True)
        assert (rc_b, rc_a) == (0, 0)
        assert a.publish(f"{BASE}/all/schedule", "x") == 0x87
        assert a.publish(f"{BASE}/{B}/state", "x") == 0x87
        assert a.publish(f"{BASE}/{A}/state", "x") in (0, 0x10)  # 0x10: no subscribers
        time.sleep(1.0)
        assert b.gone.empty() and b.c.is_connected(), f"{B} was knocked off"
        a.close()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=A, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(files / "ca.crt"))
        c.username_pw_set(A, "wrong")
        codes: queue.Queue = queue.Queue()
        c.on_connect = lambda _c, _u, _f, rc, _p: codes.put(rc.value)
        c.connect(broker.host, broker.port)
        c.loop_start()
        assert codes.get(timeout=10) in (0x86, 0x87)  # bad user name or password / not authorized
        c.loop_stop()
        b.close()
    finally:
        broker.stop()


def test_shipped_acl_example_is_the_generated_one() -> None:
    roster = make_roster(["t-001", "t-002", "t-003"], list(DEFAULT_TOOLS))
    assert (CONF / "acl.example").read_text() == render_acl("c-01", roster)
