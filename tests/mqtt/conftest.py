"""Fixtures for the MQTT tests: a real broker on a free loopback port (its own config and data in a
temp folder, never the machine's shared brokers), agent configs pointed at it, and a spy that
records every message under ``rde/`` with its arrival time.

The broker is Mosquitto unless ``RDE_TEST_BROKER`` says ``nats`` or ``rabbitmq``
(``agent.testing.brokers``; ``scripts/test-brokers`` runs the end-to-end subset on both). Tests
marked ``mosquitto_only`` (TLS and ACL files, Mosquitto's log, a Mosquitto of their own) skip with
the reason on the others; a test parametrized with ``protocol="5"`` skips on a broker without
MQTT 5.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.adapters.mqtt.config import MqttConfig
from agent.cli.county.broker import PrivateBroker
from agent.cli.county.client import CountyClient
from agent.testing.brokers import BROKER_CLASSES, broker_kind, make_broker
from tests.helpers import ROOT, start_agent, write_config

TERMINAL, COUNTY = "t-001", "c-01"
COUNTYCTL = str(ROOT / "scripts" / "countyctl")


ROSTER_COMMANDS = ("push-schedule", "push-library", "watch", "content")


def countyctl(broker, *args: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    """Run countyctl against ``broker``. On a broker that sends no retained message through a
    wildcard (RabbitMQ) the fleet views get the county's roster, as a county there must: the
    test's terminals (``TERMINAL``, or those of a ``roster`` marker)."""
    env = {**os.environ, "COUNTYCTL_PYTHON": sys.executable}
    extra: list[str] = []
    if (
        args
        and args[0] in ROSTER_COMMANDS
        and "--roster" not in args
        and not getattr(broker, "retained_through_wildcard", True)
    ):
        roster = Path(broker.workdir) / "roster.txt"
        names = getattr(broker, "roster", None) or [TERMINAL]
        roster.write_text("# the test county\n" + "".join(f"{n}\n" for n in names))
        extra = ["--roster", str(roster)]
    return subprocess.run(
        [COUNTYCTL, *args, *extra, "--host", broker.host, "--port", str(broker.port)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def start_collector(broker, db: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COUNTYCTL_PYTHON": sys.executable}
    return subprocess.Popen(
        [COUNTYCTL, "collect", "--db", str(db), "--county", COUNTY]
        + ["--host", broker.host, "--port", str(broker.port), "--retry-max", "1", *extra],
        stdout=open(log, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        env=env,
    )


def db_rows(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def wait_rows(path: Path, sql: str, n: int, timeout: float) -> list[tuple]:
    deadline = time.monotonic() + timeout
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        rows = db_rows(path, sql)
        if len(rows) >= n:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"wanted {n} rows from {sql!r}, have {len(rows)}")


def fast_mqtt(broker: PrivateBroker, **extra: Any) -> dict[str, Any]:
    """An mqtt: section with short timers, for tests."""
    out: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "keepalive": 4,
        "heartbeat_seconds": 2,
        "backoff_min_seconds": 0.2,
        "backoff_max_seconds": 1.0,
        "stable_after_seconds": 1,
        "ack_timeout_seconds": 6,
        "connect_timeout_seconds": 3,
    }
    out.update(extra)
    return out


def county_cfg(broker: PrivateBroker, **extra: Any) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, keepalive=10, **extra)


MOSQUITTO_ONLY = "mosquitto_only"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kind = broker_kind()
    if kind == "mosquitto":
        return
    for item in items:
        if not str(item.fspath).startswith(str(Path(__file__).parent)):
            continue
        mark = item.get_closest_marker(MOSQUITTO_ONLY)
        if mark is not None:
            why = mark.args[0] if mark.args else "needs Mosquitto"
            item.add_marker(pytest.mark.skip(reason=f"Mosquitto only ({why}); broker: {kind}"))
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("protocol") == "5" and not BROKER_CLASSES[kind].has_mqtt5:
            item.add_marker(pytest.mark.skip(reason=f"{kind} has no MQTT 5"))


@pytest.fixture
def broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PrivateBroker]:
    """A private broker of the kind ``RDE_TEST_BROKER`` names (default Mosquitto)."""
    b = make_broker(tmp_path / "broker")
    mark = request.node.get_closest_marker("roster")
    b.roster = list(mark.args) if mark else [TERMINAL]  # type: ignore[attr-defined]
    b.start()
    yield b  # type: ignore[misc]
    b.stop()


@dataclass
class Seen:
    at: float
    topic: str
    payload: bytes
    retain: bool

    @property
    def obj(self) -> Any:
        return json.loads(self.payload) if self.payload else None

    @property
    def suffix(self) -> str:
        return self.topic.split("/", 4)[4]


class Spy:
    """Subscribes to everything under rde/ and keeps what it sees, in order."""

    def __init__(self, broker: PrivateBroker, name: str = "spy") -> None:
        self.cc = CountyClient(county_cfg(broker), f"{name}-{time.time_ns() % 10**9}")
        self.cc.connect()
        self.cc.subscribe(["rde/#"])
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                m = self.cc.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            with self.lock:
                self.seen.append(Seen(time.monotonic(), m.topic, m.payload, m.retain))

    def messages(self, suffix: str | None = None, terminal: str | None = None) -> list[Seen]:
        with self.lock:
            out = list(self.seen)
        if suffix is not None:
            out = [s for s in out if s.suffix == suffix]
        if terminal is not None:
            out = [s for s in out if s.topic.split("/")[3] == terminal]
        return out

    def wait(
        self, pred: Callable[[Seen], bool], timeout: float, what: str, suffix: str | None = None
    ) -> Seen:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.messages(suffix):
                try:
                    if pred(s):
                        return s
                except (ValueError, KeyError, TypeError):
                    pass
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def close(self) -> None:
        self.stop_flag.set()
        self.thread.join(2)
        self.cc.close()


@pytest.fixture
def spy(broker: PrivateBroker) -> Iterator[Spy]:
    s = Spy(broker)
    yield s
    s.close()


def agent_config(tmp_path: Path, broker: PrivateBroker, **mqtt_extra: Any) -> Path:
    return write_config(tmp_path, mqtt=fast_mqtt(broker, **mqtt_extra))


class Agent:
    """A real agent process (real VLC with dummy outputs) with its log in the test folder."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> Agent:
        self.proc = start_agent(self.config, *extra, log=self.log)
        return self

    def stop(self, timeout: float = 15) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.proc = None
        return proc.returncode

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    made: list[Agent] = []

    def make(config: Path, name: str = "agent") -> Agent:
        a = Agent(config, tmp_path / f"{name}.log")
        made.append(a)
        return a

    yield make
    for a in made:
        if a.proc is not None and a.proc.poll() is None:
            try:
                a.proc.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
        a.stop(timeout=5)


def online(spy: Spy, terminal: str = TERMINAL, after: float = 0.0, timeout: float = 15) -> Seen:
    return spy.wait(
        lambda s: (
            s.topic.split("/")[3] == terminal and s.obj["state"] == "online" and s.at >= after
        ),
        timeout,
        f"{terminal} online",
        suffix="state",
    )


def enqueue_records(state_dir: Path, n: int, start_seq: int = 1, prefix: str = "S") -> list[str]:
    """Put ``n`` finished viewing records in an agent's store and outbox, the way the runtime
    does (works while the agent runs: SQLite WAL, the agent sees the new rows)."""
    import uuid

    from agent.adapters.sqlite.store import Store
    from agent.domain.records import Record
    from agent.runtime.loop import record_message

    store = Store(state_dir / "agent.db")
    ids = []
    try:
        with store.transaction() as conn:
            for i in range(n):
                rec = Record(
                    record_id=str(uuid.uuid4()),
                    seq=start_seq + i,
                    terminal=TERMINAL,
                    course_id=f"{prefix}-{start_seq + i}",
                    title=f"Synthetic {start_seq + i}",
                    media="synthetic.wav",
                    trigger="schedule",
                    clock_state="unsynced",
                    boot_id="test",
                    outcome="completed",
                    played_seconds=1.0,
                    completion=1.0,
                )
                store.insert_record(rec, conn)
                store.enqueue(
                    "record",
                    rec.record_id,
                    "record",
                    record_message(rec, COUNTY),
                    replace=True,
                    conn=conn,
                )
                ids.append(rec.record_id)
    finally:
        store.close()
    return ids


def outbox_count(state_dir: Path, kind: str = "record") -> int:
    rows = db_rows(state_dir / "agent.db", "SELECT COUNT(*) FROM outbox WHERE kind=?", (kind,))
    return rows[0][0] if rows else -1


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1, client certificates for t-001 and spy."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=test county CA",
             cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", TERMINAL, "spy"):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={'localhost' if name == 'server' else name}", cwd=d)  # fmt: skip
        extra = ["-extfile", "san.cnf"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "30", *extra, cwd=d)  # fmt: skip
        (d / f"{name}.key").chmod(0o600)
    return {p.stem + p.suffix.replace(".", "_"): p for p in d.iterdir()}
