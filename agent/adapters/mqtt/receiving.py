"""What the link receives: schedules, manifests, trust updates, commands and record acknowledgements, each sorted by topic
and handed on, plus asking the broker for a retained schedule again.

Runs on the link's worker thread only; the agent is reached through the bridge, whose answers
(a schedule ack, a command reply) land in the outbox, so each handler wakes the outbox policy.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.adapters.mqtt.commands import CommandProcessor
from agent.adapters.mqtt.connection import Connection
from agent.adapters.mqtt.sending import Sender
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.records import utc_now_text

log = logging.getLogger("agent.adapters.mqtt")


class Receiver:
    """Dispatches incoming messages by topic for the connection of ``conn``."""

    def __init__(
        self, conn: Connection, bridge: Any, sender: Sender, commands: CommandProcessor
    ) -> None:
        self.conn = conn
        self.bridge = bridge
        self.sender = sender
        self.policy = sender.policy
        self.commands = commands
        self.oversize_dropped = 0  # messages over MAX_INCOMING_PACKET that reached us anyway

    def on_oversize(self, name: str, size: int) -> None:
        self.oversize_dropped += 1
        log.warning(
            "a %d-byte message on %r was dropped unread: the limit is %d bytes; set the "
            "broker's max_packet_size (see docs/protocol.md)",
            size,
            name,
            p.MAX_INCOMING_PACKET,
        )

    def on_message(self, name: str, payload: bytes, retained: bool) -> None:
        conn = self.conn
        parsed = t.parse(name)
        if parsed is None or parsed.county != conn.county:
            log.warning("message on an unexpected topic %r ignored", name)
            return
        if parsed.suffix == t.SCHEDULE and parsed.terminal in (conn.terminal, t.ALL):
            self._on_schedule(name, parsed.terminal, payload, retained)
        elif parsed.suffix == t.LIBRARY and parsed.terminal in (conn.terminal, t.ALL):
            self._on_library(name, parsed.terminal, payload, retained)
        elif parsed.suffix == t.TRUST and parsed.terminal == t.ALL:
            self._on_trust(name, payload, retained)
        elif parsed.terminal != conn.terminal:
            log.warning("message for another terminal on %r ignored", name)
        elif parsed.suffix == t.CMD:
            self.commands.handle(payload)
            self.policy.wake()  # the reply is in the outbox now
        elif parsed.suffix == t.RECORD_ACK:
            self._on_record_ack(name, payload)
        else:
            log.warning("message on %r ignored", name)

    def _on_schedule(self, name: str, terminal: str, payload: bytes, retained: bool) -> None:
        layer = "county" if terminal == t.ALL else "terminal"
        self._on_document("schedule", self.bridge.apply_schedule, name, layer, payload, retained)

    def _on_library(self, name: str, terminal: str, payload: bytes, retained: bool) -> None:
        layer = "county" if terminal == t.ALL else "terminal"
        self._on_document("manifest", self.bridge.apply_library, name, layer, payload, retained)

    def _on_trust(self, name: str, payload: bytes, retained: bool) -> None:
        apply = getattr(self.bridge, "apply_trust", None)
        if apply is None:
            log.warning("trust update on %r ignored: this agent cannot apply one", name)
            return
        self._on_document(
            "revocation list",
            lambda data, _layer, source, kept, ack: apply(data, source, kept, ack),
            name,
            "county",
            payload,
            retained,
        )

    def _on_document(
        self,
        what: str,
        apply: Any,
        name: str,
        layer: str,
        payload: bytes,
        retained: bool,
    ) -> None:
        """A layered document: applied (and acked) through the bridge, the verdict logged."""
        if not payload:
            return  # a retained document being cleared: keep what is in force
        out = apply(payload, layer, f"mqtt:{name}", retained, self.schedule_ack)
        self.conn.clock = out.clock
        self.policy.wake()  # the ack is in the outbox now
        if not out.silent:
            level = logging.INFO if out.status == "applied" else logging.WARNING
            version = "without a valid version" if out.version is None else f"v{out.version}"
            log.log(level, "%s %s %s: %s %s", what, layer, version, out.status, out.reasons[:3])

    def _on_record_ack(self, name: str, payload: bytes) -> None:
        try:
            msg = p.decode(payload, p.MAX_ACK_BYTES, name)
            problems = p.validate("record_ack", msg)
            if problems:
                raise p.ProtocolError("malformed", "; ".join(problems))
        except p.ProtocolError as exc:
            log.warning("bad record/ack ignored: %s", exc.message)
            return
        self.sender.on_record_acks([(item["record_id"], item["rev"]) for item in msg["records"]])

    def resubscribe(self, layer: str) -> None:
        """Subscribe to the layer's schedule topic again: the broker then sends its retained
        copy (MQTT 3.1.1 and 5 alike), as on a new connection. Not connected: the next
        connection subscribes anyway."""
        conn = self.conn
        client = conn.client
        if client is None or not conn.connected:
            return
        name = (
            t.county_schedule(conn.county)
            if layer == "county"
            else t.topic(conn.county, conn.terminal, t.SCHEDULE)
        )
        log.warning("asking the county for the %s schedule again (subscribing to %s)", layer, name)
        client.subscribe(name, 1)

    def schedule_ack(self, out: Any) -> dict[str, Any]:
        """The ``schedule/ack`` (or ``library/ack``: the same fields) payload for the bridge's
        outcome ``out`` (built on the core's side, queued in the outbox with the result)."""
        conn = self.conn
        return p.schedule_ack(
            ts=utc_now_text(),
            terminal=conn.terminal,
            county=conn.county,
            layer=out.layer,
            version=out.version,
            status=out.status,
            reasons=out.reasons,
            previous_version=out.previous_version,
            applied=out.applied,
            clock=out.clock,
        )
