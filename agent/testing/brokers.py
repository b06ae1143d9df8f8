"""Private NATS and RabbitMQ brokers (their MQTT listeners) on free loopback ports, alongside
``agent.cli.county.broker.PrivateBroker`` (Mosquitto): the tests run the same end-to-end flow on
all three, chosen by ``RDE_TEST_BROKER`` (``make_broker``).

Each instance has its own folder, ports, data and (RabbitMQ) node name and Erlang cookie, so the
machine's shared NATS and RabbitMQ services are never touched. All three offer the same small
face: ``host``, ``port``, ``kind``, ``start()``, ``stop()``, ``kill()``, ``restart()``,
``log_text()``, and work as context managers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.cli.county.broker import PrivateBroker, free_port, port_open

KINDS = ("mosquitto", "nats", "rabbitmq")
ENV_VAR = "RDE_TEST_BROKER"

# RabbitMQ's MQTT plugin lets a subscriber have this many unacknowledged messages; its default
# (10) held the collector to 0.41 x Mosquitto's rate (docs/protocol.md § 9).
RABBIT_MQTT_PREFETCH = 500


class TestBroker(Protocol):
    host: str
    port: int
    workdir: Path
    kind: str
    has_mqtt5: bool  # False: it answers an MQTT 5 CONNECT with 0x84 or a closed socket
    retained_through_wildcard: bool  # False: a wildcard subscription gets no retained message

    def start(self, timeout: float = ...) -> Any: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def restart(self, down_seconds: float = 0.0) -> None: ...

    def log_text(self) -> str: ...


def broker_kind() -> str:
    """The broker the tests run against: ``RDE_TEST_BROKER`` (default ``mosquitto``)."""
    kind = os.environ.get(ENV_VAR, "mosquitto").strip().lower() or "mosquitto"
    if kind not in KINDS:
        raise ValueError(f"{ENV_VAR}={kind!r}: must be one of {', '.join(KINDS)}")
    return kind


def make_broker(workdir: Path, kind: str | None = None) -> TestBroker:
    """A private broker of ``kind`` (default: ``broker_kind()``), not yet started."""
    return BROKER_CLASSES[kind or broker_kind()](Path(workdir))  # type: ignore[no-any-return]


class _Process:
    """Start, wait for the MQTT port, stop: what the NATS and RabbitMQ instances share."""

    kind = ""
    host = "127.0.0.1"
    port = 0
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.kind}.stderr"

    def start(self, timeout: float = 90.0) -> Any:
        argv, env = self.command()
        self.proc = subprocess.Popen(
            argv,
            stdout=open(self.workdir / f"{self.kind}.stdout", "ab"),  # noqa: SIM115
            stderr=open(self.stderr_path, "ab"),  # noqa: SIM115
            env=env,
            cwd=self.workdir,
            start_new_session=True,  # its own process group: stop() ends the shell and the VM
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.stderr_path.read_text(errors="replace")[-2000:]
                out = self.log_text()[-2000:]
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode}: {err}\n{out}".rstrip()
                )
            if port_open(self.host, self.port):
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.kind} did not listen on {self.host}:{self.port} in {timeout} s")

    def _signal_group(self, sig: int) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(5)
        self._wait_port_closed()
        self.proc = None

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self._signal_group(signal.SIGKILL)
            proc.wait(5)
        self._wait_port_closed()
        self.proc = None

    def _wait_port_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and port_open(self.host, self.port):
            time.sleep(0.1)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(eq=False)
class PrivateNats(_Process):
    """``nats-server`` with JetStream (which its MQTT listener needs) and an ``mqtt`` block."""

    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    kind = "nats"
    has_mqtt5 = False
    retained_through_wildcard = True

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.client_port = free_port(self.host)
        self.proc = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "nats.log"

    def write_conf(self) -> Path:
        store = self.workdir / "jetstream"
        conf = self.workdir / "nats.conf"
        conf.write_text(
            f'server_name: "rde_test_{self.port}"\n'
            f'listen: "{self.host}:{self.client_port}"\n'
            f'log_file: "{self.log_path}"\n'
            f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, '
            f"max_file_store: 512MB }}\n"
            f'mqtt {{ listen: "{self.host}:{self.port}" }}\n'
        )
        return conf

    def command(self) -> tuple[list[str], dict[str, str]]:
        exe = shutil.which("nats-server") or "/usr/sbin/nats-server"
        return [exe, "-c", str(self.write_conf())], dict(os.environ)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


RABBIT_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@dataclass(eq=False)
class PrivateRabbit(_Process):
    """A RabbitMQ node of its own (node name, AMQP and distribution ports, data, logs, Erlang
    cookie) with the MQTT plugin on ``port``. Started with the package's own server script: the
    Debian wrapper (``/usr/sbin/rabbitmq-server``) drops the environment that makes it private."""

    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    prefetch: int = RABBIT_MQTT_PREFETCH
    kind = "rabbitmq"
    has_mqtt5 = False
    retained_through_wildcard = False

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.amqp_port = free_port(self.host)
        self.dist_port = free_port(self.host)
        self.node = f"rde-test-{self.port}@localhost"
        self.proc = None

    @property
    def log_dir(self) -> Path:
        return self.workdir / "log"

    def write_files(self) -> dict[str, str]:
        w = self.workdir
        self.log_dir.mkdir(exist_ok=True)
        (w / "mnesia").mkdir(exist_ok=True)
        cookie = w / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(f"RDETEST{os.getpid()}{self.port}{time.time_ns()}")
            cookie.chmod(0o400)
        (w / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (w / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = {self.host}:{self.amqp_port}",
                    "loopback_users = none",
                    f"mqtt.listeners.tcp.default = {self.host}:{self.port}",
                    "mqtt.allow_anonymous = true",
                    f"mqtt.prefetch = {self.prefetch}",
                    "log.file.level = info",
                    "",
                ]
            )
        )
        (w / "rabbitmq-env.conf").write_text("")  # not the machine's (it names the shared node)
        return {
            **os.environ,
            "HOME": str(w),  # the Erlang cookie lives here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(w / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # One scheduler that sleeps when idle: the default ones spin, and a test node shares
            # two cores with the agents and the other test worker.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def command(self) -> tuple[list[str], dict[str, str]]:
        if not RABBIT_SCRIPT.exists():
            raise RuntimeError(f"RabbitMQ is not installed here ({RABBIT_SCRIPT} is missing)")
        return [str(RABBIT_SCRIPT)], self.write_files()

    def log_text(self) -> str:
        parts = []
        for f in sorted(self.log_dir.glob("*.log")):
            try:
                parts.append(f.read_text(errors="replace"))
            except OSError:
                pass
        return "".join(parts)


BROKER_CLASSES: dict[str, Any] = {
    "mosquitto": PrivateBroker,
    "nats": PrivateNats,
    "rabbitmq": PrivateRabbit,
}
