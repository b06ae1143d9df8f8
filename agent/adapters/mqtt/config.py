"""The ``mqtt:`` section of the agent config. Without it the agent runs offline.

Defaults are for a village terminal on a slow, flaky link talking to a county broker of any
make: ``protocol: auto`` (MQTT 5 where the broker has it, else 3.1.1; ``version``), a heartbeat a minute, records confirmed by the county collector (not just by the broker), and a
reconnect delay drawn at random from a window that starts at 10 s and doubles: measured with 500
terminals and a broker restart, 10 s halves the peak of returning connections (64/s instead of
125/s with 5 s) for a few more seconds until the last is back (see docs/performance.md).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.domain.schema import between

HOST_MAX = 253


def check_host(value: str) -> str | None:
    if not value or len(value) > HOST_MAX or any(ch.isspace() for ch in value) or "/" in value:
        return "must be a host name or an IP address"
    return None


def check_client_id(value: str) -> str | None:
    if not 1 <= len(value) <= 64 or any(ch in value for ch in "+#/") or not value.isprintable():
        return "must be 1-64 printable characters without '+', '#' or '/'"
    return None


def secret_file_problem(path: Path, what: str) -> str | None:
    """A key or password file must exist and must not be readable by other users."""
    try:
        st = path.stat()
    except OSError as exc:
        return f"{what} {path} cannot be read: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{what} {path} is not a regular file"
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        return (
            f"{what} {path} is readable or writable by other users "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod o-rwx {path}"
        )
    if not os.access(path, os.R_OK):
        return f"{what} {path} is not readable by this user"
    return None


@dataclass
class TlsConfig:
    """TLS to the broker. With no ``ca_file`` the system's CA store is used."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Skips the host name check only (the chain is still verified). For brokers reached by IP.
    insecure: bool = False

    def _validate(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if (self.cert_file is None) != (self.key_file is None):
            problems.append(("cert_file", "cert_file and key_file go together"))
        for name in ("ca_file", "cert_file"):
            p = getattr(self, name)
            if p is not None and not p.is_file():
                problems.append((name, f"{p} does not exist"))
        if self.key_file is not None:
            problem = secret_file_problem(self.key_file, "key file")
            if problem:
                problems.append(("key_file", problem))
        return problems


@dataclass
class MqttConfig:
    host: str = field(metadata={"check": check_host})
    # Default: 8883 with TLS, 1883 without.
    port: int | None = field(default=None, metadata={"check": between(1, 65535)})
    # "auto": MQTT 5, or 3.1.1 when the broker refuses 5 (the answer is remembered).
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive: int = field(default=60, metadata={"check": between(2, 3600)})
    # Defaults to the terminal id (which is also the username and the certificate's CN).
    client_id: str | None = field(default=None, metadata={"check": check_client_id})
    tls: TlsConfig | None = None
    username: str | None = None
    password_file: Path | None = None
    connect_timeout_seconds: float = field(default=10.0, metadata={"check": between(1, 120)})
    heartbeat_seconds: float = field(default=60.0, metadata={"check": between(1, 86400)})
    status_on_connect: bool = True
    # "ack": a record leaves the outbox when the county collector confirms it on record/ack.
    # "puback": when the broker has it (only with a durable subscriber at the broker).
    record_confirmation: Literal["ack", "puback"] = "ack"
    # A record with no record/ack this long after its PUBACK is sent again.
    ack_timeout_seconds: float = field(default=300.0, metadata={"check": between(1, 86400)})
    # Records published and not yet confirmed by the collector, at most (back-pressure when the
    # collector is away, so the broker's queue for it is not flooded).
    ack_window: int = field(default=1000, metadata={"check": between(1, 100000)})
    # QoS 1 messages published and not yet PUBACKed, at most.
    inflight_window: int = field(default=100, metadata={"check": between(1, 65535)})
    backoff_min_seconds: float = field(default=10.0, metadata={"check": between(0.05, 3600)})
    backoff_max_seconds: float = field(default=300.0, metadata={"check": between(0.1, 86400)})
    # A connection must stay up this long before the reconnect delay starts from the bottom again
    # (two terminals with the same id, or a broker that drops us after CONNACK, back off).
    stable_after_seconds: float = field(default=30.0, metadata={"check": between(0, 86400)})
    # The outbox alarm: raised when this many messages wait, or the state folder's file system
    # has less than this many MB free; cleared below 80 % of the count / above 1.25x the space.
    outbox_alarm_messages: int = field(default=20000, metadata={"check": between(1, 10**9)})
    outbox_alarm_free_mb: float = field(default=200.0, metadata={"check": between(0, 10**7)})

    def _validate(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.backoff_max_seconds < self.backoff_min_seconds:
            problems.append(("backoff_max_seconds", "must not be less than backoff_min_seconds"))
        if self.password_file is not None:
            problem = secret_file_problem(self.password_file, "password file")
            if problem:
                problems.append(("password_file", problem))
        return problems

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883

    def read_password(self) -> str | None:
        if self.password_file is None:
            return None
        return self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
