"""A private Mosquitto on a free loopback port, with its own config in its own folder.

For the demo, the tests and the benches: never the system broker on 1883. Variants: TLS (server
certificate, optional client certificates), password file + ACL, persistence.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class BrokerTls:
    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False  # client certificates; CN becomes the username


@dataclass
class PrivateBroker:
    # What the tests ask of any private broker (agent.testing.brokers has NATS and RabbitMQ).
    kind = "mosquitto"
    has_mqtt5 = True
    retained_through_wildcard = True

    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    tls: BrokerTls | None = None
    password_file: Path | None = None
    acl_file: Path | None = None
    persistence: bool = False
    max_queued_messages: int = 100000
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def write_conf(self) -> Path:
        lines = [
            "per_listener_settings false",
            # Started as root, Mosquitto drops to the "mosquitto" user and then cannot read its
            # own folder (a private temp dir); a private test broker keeps the caller's user.
            *(["user root"] if os.geteuid() == 0 else []),
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"max_queued_messages {self.max_queued_messages}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"allow_anonymous {'false' if self.password_file or (self.tls and self.tls.require_certificate) else 'true'}",
        ]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        lines.append(f"listener {self.port} {self.host}")
        if self.tls:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
            ]
            if self.tls.require_certificate:
                lines += ["require_certificate true", "use_identity_as_username true"]
        lines += self.extra
        self.conf_path.write_text("\n".join(lines) + "\n")
        return self.conf_path

    def start(self, timeout: float = 10.0) -> PrivateBroker:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.write_conf()
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.stderr", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.workdir / "mosquitto.stderr").read_text(errors="replace")
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err[-2000:]}")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> PrivateBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
