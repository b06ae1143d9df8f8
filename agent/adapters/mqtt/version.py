"""Which MQTT version to speak to the broker: ``protocol: auto`` tries 5 and falls back to 3.1.1.

Brokers that lack MQTT 5 say so in two ways (docs/protocol.md § 9): NATS answers CONNACK 0x84
(unsupported protocol version), RabbitMQ 3.10 closes the socket without any CONNACK. Either answer
to an MQTT 5 attempt makes the next attempt 3.1.1 at once (no back-off: nothing failed yet); the
fallback is believed only when 3.1.1 is then accepted, so a connection that was merely cut during
the handshake does not downgrade a terminal for good. The answer is remembered in a small file in
the state folder, so a restarted agent does not probe again, and re-checked occasionally: after a
lost connection (a broker restart may bring an upgraded broker) once the answer is older than
``REPROBE_AFTER_S``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.runtime.files import atomic_write

log = logging.getLogger("agent.adapters.mqtt")

MEMORY_FILE = "mqtt-protocol.json"
REPROBE_AFTER_S = 6 * 3600.0
UNSUPPORTED_VERSION = 0x84  # CONNACK reason: unsupported protocol version
VERSIONS = ("5", "3.1.1")


class ProtocolChoice:
    """The version for the next attempt, and why (for ``status.mqtt``)."""

    def __init__(
        self,
        configured: str,
        memory: Path | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.configured = configured
        self.memory = memory
        self.wall = wall
        self.answer: str | None = None  # the version the broker last accepted under "auto"
        self.why = "configured" if configured != "auto" else "not connected yet: trying MQTT 5"
        self.probed_at: float | None = None  # wall time of that answer
        self._fallback: str | None = None  # why the next attempt is 3.1.1 (unconfirmed)
        self._reprobe = False
        if configured == "auto":
            self._load()

    @property
    def auto(self) -> bool:
        return self.configured == "auto"

    def next(self) -> str:
        """The version of the next connection attempt."""
        if not self.auto:
            return self.configured
        if self._fallback is not None:
            return "3.1.1"
        if self._reprobe or self.answer is None:
            return "5"
        return self.answer

    def accepted(self, version: str) -> None:
        """CONNACK success with ``version``: that is the answer (remembered when it changes)."""
        if not self.auto:
            return
        fallback, self._fallback, self._reprobe = self._fallback, None, False
        if version == self.answer and fallback is None:
            return  # the remembered answer, used again: nothing was probed
        if version == "5":
            why = "MQTT 5 accepted"
        else:
            why = f"{fallback or 'MQTT 5 was refused'}; 3.1.1 accepted"
        self.answer, self.why, self.probed_at = version, why, self.wall()
        log.info("mqtt protocol: %s", why)
        self._save()

    def refused(self, version: str, rc: Any) -> bool:
        """CONNACK with a failure code. True: try again at once with the other version."""
        if not self.auto:
            return False
        if version == "5" and _code(rc) == UNSUPPORTED_VERSION:
            return self._fall_back(
                "the broker refused MQTT 5 (CONNACK 0x84, unsupported protocol version)"
            )
        return False

    def closed_before_connack(self, version: str) -> bool:
        """The broker closed the socket before any CONNACK. True: try 3.1.1 at once."""
        if not self.auto:
            return False
        if version == "5":
            return self._fall_back("the broker closed the connection before CONNACK with MQTT 5")
        return False

    def failed(self, version: str) -> None:
        """An attempt failed for another reason (no answer, refused, cut): an unconfirmed
        fallback is dropped, so the next attempt asks for MQTT 5 again."""
        if version == "3.1.1":
            self._fallback = None

    def lost_after_connect(self) -> None:
        """A connection that was up is gone (maybe a broker restart): with an old enough 3.1.1
        answer, the next attempt asks for MQTT 5 again."""
        if not self.auto or self.answer != "3.1.1" or self.probed_at is None:
            return
        if self.wall() - self.probed_at >= REPROBE_AFTER_S:
            self._reprobe = True

    def status(self) -> dict[str, Any]:
        return {
            "protocol": self.answer if self.auto and self.answer else self.next(),
            "protocol_setting": self.configured,
            "protocol_why": self.why,
        }

    # -- memory --------------------------------------------------------------------------------

    def _fall_back(self, why: str) -> bool:
        self._fallback = why
        self._reprobe = False
        log.warning("mqtt protocol: %s; trying MQTT 3.1.1", why)
        return True

    def _load(self) -> None:
        if self.memory is None:
            return
        try:
            data = json.loads(self.memory.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("mqtt protocol memory %s unreadable (%s): probing again", self.memory, exc)
            return
        if not isinstance(data, dict) or data.get("protocol") not in VERSIONS:
            log.warning("mqtt protocol memory %s has no valid answer: probing again", self.memory)
            return
        at = data.get("probed_at")
        self.answer = data["protocol"]
        self.probed_at = float(at) if isinstance(at, int | float) else 0.0
        self.why = f"remembered: {data.get('why') or 'accepted earlier'}"

    def _save(self) -> None:
        if self.memory is None:
            return
        body = {"protocol": self.answer, "why": self.why, "probed_at": self.probed_at}
        try:
            atomic_write(self.memory, json.dumps(body).encode() + b"\n")
        except OSError as exc:
            log.warning("cannot remember the mqtt protocol in %s: %s", self.memory, exc)


def _code(rc: Any) -> int:
    value = getattr(rc, "value", rc)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
