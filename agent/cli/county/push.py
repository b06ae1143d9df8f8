"""``countyctl push-schedule`` and ``push-library``: validate locally, publish retained, collect
the terminals' acks.

The document is checked with the agent's own parser first, so a malformed schedule or course
manifest never leaves the county. Terminal layer: ``rde/v1/{county}/{terminal}/schedule`` (or
``.../library``); without ``--terminal`` the county layer, ``rde/v1/{county}/all/schedule`` (or
``.../all/library``), and the terminals expected to answer are those named with ``--expect`` plus
every terminal whose retained state is "online". Who is online is read from each terminal's own
``state`` topic when a roster names the county's terminals (``--roster``): RabbitMQ does not
deliver retained messages through a wildcard, so without a roster it finds nobody online there.
With a signer (``--key``) the checked document
is published inside its signed envelope (``docs/trust.md``), which is what terminals that
require signatures take.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.adapters.manifest_files import parse_manifest
from agent.adapters.mqtt.config import MqttConfig
from agent.adapters.schedule_files import parse_schedule
from agent.cli.county.client import CountyClient, ToolError
from agent.cli.county.roster import exact_filters, subscribe_all
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.manifest import ManifestRejected
from agent.domain.schedule import ScheduleRejected


@dataclass(frozen=True)
class Pushed:
    """One kind of layered document: how it is checked, where it goes, how it is answered."""

    name: str  # "schedule" | "course manifest"
    parse: Callable[[bytes, str], Any]
    rejected: type[Exception]
    suffix: str
    ack_suffix: str
    ack_kind: str


SCHEDULE = Pushed(
    "schedule", parse_schedule, ScheduleRejected, t.SCHEDULE, t.SCHEDULE_ACK, "schedule_ack"
)
LIBRARY = Pushed(
    "course manifest", parse_manifest, ManifestRejected, t.LIBRARY, t.LIBRARY_ACK, "library_ack"
)


@dataclass
class PushResult:
    layer: str
    version: int
    kind: Pushed = SCHEDULE
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # terminal -> ack
    expected: set[str] = field(default_factory=set)
    roster: list[str] | None = None  # the county's terminals, when a roster was given
    offline: set[str] = field(default_factory=set)  # roster terminals whose state is offline

    @property
    def silent(self) -> list[str]:
        return sorted(self.expected - set(self.answers))

    def ok(self) -> bool:
        return not self.silent and all(a["status"] == "applied" for a in self.answers.values())

    def lines(self) -> list[str]:
        out = [f"{self.kind.name} {self.layer} layer v{self.version}:"]
        for term in sorted(self.answers):
            a = self.answers[term]
            line = f"  {term}: {a['status']}"
            if a.get("reasons"):
                line += " — " + "; ".join(a["reasons"])
            out.append(line)
        for term in self.silent:
            out.append(f"  {term}: no answer")
        for term in self.unseen:
            why = "offline" if term in self.offline else "no state (never connected?)"
            out.append(f"  {term}: {why}; it takes the {self.kind.name} when it connects")
        if not self.answers and not self.expected:
            out.append("  (no terminal is online and none was named with --expect)")
            if self.roster is None:
                out.append(
                    "  (some brokers, e.g. RabbitMQ, send no retained state through a wildcard:"
                    " name the county's terminals with --roster FILE)"
                )
        return out

    @property
    def unseen(self) -> list[str]:
        """Roster terminals neither expected nor answering (offline or never seen)."""
        known = self.expected | set(self.answers)
        return sorted(set(self.roster or ()) - known)


def check_document(data: bytes, county: str, terminal: str | None, kind: Pushed = SCHEDULE) -> Any:
    """The agent's own validation plus the layer rules; raises ToolError with every problem."""
    try:
        doc = kind.parse(data, kind.name)
    except kind.rejected as exc:
        problems = getattr(exc, "problems", [str(exc)])
        raise ToolError(f"the {kind.name} is not valid:\n" + "\n".join(problems)) from None
    problems = []
    layer = "terminal" if terminal else "county"
    if doc.layer is not None and doc.layer != layer:
        problems.append(f"the document says layer {doc.layer!r} but is pushed as {layer!r}")
    if doc.county is not None and doc.county != county:
        problems.append(f"the document is for county {doc.county!r}, not {county!r}")
    if terminal and doc.terminal is not None and doc.terminal != terminal:
        problems.append(f"the document is for terminal {doc.terminal!r}, not {terminal!r}")
    if not terminal and doc.terminal is not None:
        problems.append(f"a county-layer {kind.name} must not name a terminal (use --terminal)")
    if len(data) > p.MAX_SCHEDULE_BYTES:
        problems.append(f"the document is larger than {p.MAX_SCHEDULE_BYTES} bytes")
    if problems:
        raise ToolError(f"the {kind.name} cannot be pushed:\n" + "\n".join(problems))
    return doc


def push_schedule(
    m: MqttConfig,
    data: bytes,
    *,
    county: str,
    terminal: str | None = None,
    expect: list[str] | None = None,
    wait: float = 30.0,
    client_id: str | None = None,
    kind: Pushed = SCHEDULE,
    signer: tuple[Any, dict[str, Any]] | None = None,
    roster: list[str] | None = None,
) -> PushResult:
    doc = check_document(data, county, terminal, kind)
    if signer is not None:
        from agent.cli.county.sign import sign_bytes

        key, cert = signer
        doc_kind = "manifest" if kind is LIBRARY else "schedule"
        data = sign_bytes(data, key, cert, kind=doc_kind, county=county, terminal=terminal)
        if len(data) > p.MAX_INCOMING_PACKET:
            raise ToolError(f"the signed {kind.name} is larger than {p.MAX_INCOMING_PACKET} bytes")
    layer = "terminal" if terminal else "county"
    result = PushResult(layer, doc.version, kind, expected=set(expect or []), roster=roster)
    if terminal:
        result.expected.add(terminal)
    cc = CountyClient(m, client_id or f"countyctl-push-{time.time_ns() % 10**9}")
    cc.connect()
    try:
        who = terminal or "+"
        cc.subscribe([t.topic(county, who, kind.ack_suffix)])
        if terminal or not roster:
            cc.subscribe([t.topic(county, who, t.STATE)])
        else:  # exact topics: their retained states come on every broker
            subscribe_all(cc, exact_filters(county, roster, [t.STATE]))
        # Retained states arrive right after the subscription: who is online now.
        settle = time.monotonic() + 0.5
        pending: list[Any] = []
        while time.monotonic() < settle:
            try:
                pending.append(cc.messages.get(timeout=0.05))
            except queue.Empty:
                pass
        target = t.topic(county, terminal or t.ALL, kind.suffix)
        # Only acks for this version count; older retained ones are ignored below.
        for msg in pending:
            _take(msg, result, county, terminal, expect_online=True)
        cc.publish(target, data, qos=1, retain=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if result.expected and not result.silent:
                break
            try:
                msg = cc.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            _take(msg, result, county, terminal, expect_online=True)
    finally:
        cc.close()
    return result


def _take(
    msg: Any, result: PushResult, county: str, terminal: str | None, expect_online: bool
) -> None:
    parsed = t.parse(msg.topic)
    if parsed is None or parsed.county != county or parsed.terminal == t.ALL:
        return
    if terminal and parsed.terminal != terminal:
        return
    try:
        obj = p.decode(msg.payload, p.MAX_ACK_BYTES, msg.topic)
    except p.ProtocolError:
        return
    if parsed.suffix == t.STATE:
        if expect_online and isinstance(obj, dict) and obj.get("state") == "online":
            result.expected.add(parsed.terminal)
            result.offline.discard(parsed.terminal)
        elif isinstance(obj, dict) and obj.get("state") == "offline":
            result.offline.add(parsed.terminal)
        return
    if parsed.suffix != result.kind.ack_suffix or p.validate(result.kind.ack_kind, obj):
        return
    if obj["layer"] == result.layer and obj["version"] == result.version:
        result.answers[parsed.terminal] = obj
