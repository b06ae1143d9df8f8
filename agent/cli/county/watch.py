"""What the county sees of its terminals: a live table, and one-line descriptions of messages.

Online/offline comes from the retained ``state``. Each terminal's session counter only grows, so an
"offline" carrying an older session than the newest "online" seen is a late Last Will from a
connection that was already replaced: it is ignored.

With a roster (``--roster``) every listed terminal has a row from the start, and the retained
topics (``state``, ``status``, ``schedule/ack``) are subscribed per terminal: RabbitMQ does not
deliver retained messages through a wildcard, so without a roster it never shows an offline
terminal. Heartbeats are never retained and come through the wildcard on every broker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from agent.cli.county.client import ToolError
from agent.cli.county.roster import exact_filters
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.trust import looks_signed


@dataclass
class TerminalView:
    terminal: str
    county: str
    online: bool | None = None
    session: int = 0
    state_ts: str | None = None
    state_reason: str | None = None
    last_heartbeat: float | None = None  # monotonic, when it arrived here
    heartbeat: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    schedule_ack: dict[str, Any] = field(default_factory=dict)

    def row(self, now: float) -> dict[str, Any]:
        src = self.heartbeat or self.status
        playing = src.get("playing") or None
        link = src.get("link")
        versions = src.get("schedule_versions") or (self.schedule_ack.get("applied") or {})
        return {
            "terminal": self.terminal,
            "online": self.online,
            "session": self.session,
            "heartbeat_age_s": None
            if self.last_heartbeat is None
            else round(now - self.last_heartbeat, 1),
            "link": _link_text(link),
            "playing": None
            if not playing
            else f"{playing.get('course_id')} {playing.get('position', 0):.0f}/{playing.get('length', 0):.0f}s",
            "schedule_versions": {k: v for k, v in versions.items() if v is not None},
            "outbox": src.get("outbox"),
            "clock": src.get("clock"),
        }


def _link_text(link: Any) -> str | None:
    if not isinstance(link, dict):
        return None
    for key in ("state", "status", "mode"):
        if isinstance(link.get(key), str):
            return link[key]
    return json.dumps(link, ensure_ascii=False)[:24]


class Fleet:
    def __init__(self, county: str | None = None, roster: list[str] | None = None) -> None:
        self.terminals: dict[tuple[str, str], TerminalView] = {}
        if county is not None:
            for terminal in roster or ():
                self.view(county, terminal)

    def view(self, county: str, terminal: str) -> TerminalView:
        key = (county, terminal)
        if key not in self.terminals:
            self.terminals[key] = TerminalView(terminal, county)
        return self.terminals[key]

    def update(self, topic: str, payload: bytes, now: float | None = None) -> str | None:
        """Take one message; returns a line describing a change worth printing, if any."""
        now = time.monotonic() if now is None else now
        parsed = t.parse(topic)
        if parsed is None or parsed.terminal == t.ALL or not payload:
            return None
        try:
            obj = p.decode(payload, p.MAX_SCHEDULE_BYTES, topic)
        except p.ProtocolError:
            return f"{parsed.terminal}: unreadable {parsed.suffix} message"
        if not isinstance(obj, dict):
            return None
        v = self.view(parsed.county, parsed.terminal)
        if parsed.suffix == t.STATE:
            session = obj.get("session") if isinstance(obj.get("session"), int) else 0
            online = obj.get("state") == "online"
            if not online and session < v.session:
                return f"{v.terminal}: late will of session {session} ignored (session {v.session} is newer)"
            changed = v.online != online or session != v.session
            v.online, v.session = online, max(session, v.session)
            v.state_ts, v.state_reason = obj.get("ts"), obj.get("reason")
            if changed:
                return f"{v.terminal}: {'ONLINE' if online else 'OFFLINE'} (session {session}, {obj.get('reason')})"
        elif parsed.suffix == t.HEARTBEAT:
            v.heartbeat, v.last_heartbeat = obj, now
        elif parsed.suffix == t.STATUS:
            v.status = obj
        elif parsed.suffix == t.SCHEDULE_ACK:
            v.schedule_ack = obj
        return None

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.monotonic() if now is None else now
        return [self.terminals[k].row(now) for k in sorted(self.terminals)]

    def table(self, now: float | None = None) -> str:
        rows = self.rows(now)
        head = ["terminal", "online", "hb age", "link", "playing", "schedules", "outbox", "clock"]
        lines = [head]
        for r in rows:
            versions = " ".join(f"{k[0]}{v}" for k, v in sorted(r["schedule_versions"].items()))
            lines.append(
                [
                    r["terminal"],
                    {True: "yes", False: "NO", None: "?"}[r["online"]],
                    "-" if r["heartbeat_age_s"] is None else f"{r['heartbeat_age_s']:.0f}s",
                    r["link"] or "-",
                    r["playing"] or "-",
                    versions or "-",
                    "-" if r["outbox"] is None else str(r["outbox"]),
                    r["clock"] or "-",
                ]
            )
        widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
        return "\n".join(
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in lines
        )


WATCH_SUFFIXES = (t.STATE, t.HEARTBEAT, t.STATUS, t.SCHEDULE_ACK)
RETAINED_SUFFIXES = (t.STATE, t.STATUS, t.SCHEDULE_ACK)


def watch_filters(county: str | None, roster: list[str] | None = None) -> list[str]:
    """The subscriptions of ``countyctl watch``; with a roster, exact topics for what is
    retained (one per terminal and suffix) and the wildcard only for heartbeats."""
    if roster:
        if not county:
            raise ToolError("a roster belongs to one county: --roster needs --county")
        return [t.fleet(county, t.HEARTBEAT), *exact_filters(county, roster, RETAINED_SUFFIXES)]
    if county:
        return [t.fleet(county, s) for s in WATCH_SUFFIXES]
    return [t.all_counties(s) for s in WATCH_SUFFIXES]


def _unsealed(envelope: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The document inside a signed envelope and who says they signed it (for display only)."""
    from agent.runtime.documents import parse_document

    try:
        inner = parse_document(str(envelope.get("payload") or ""), "envelope").plain()
    except Exception:  # a payload that does not read is shown as such; terminals reject it
        inner = None
    signer = f", signed by key {envelope.get('key_id')}"
    return (inner if isinstance(inner, dict) else {}), signer


def describe(topic: str, payload: bytes) -> str | None:
    """A one-line account of any protocol message (the demo prints these as ``[county] ...``)."""
    parsed = t.parse(topic)
    if parsed is None:
        return None
    who = parsed.terminal
    if not payload:
        return f"{who} {parsed.suffix}: (retained message cleared)"
    try:
        obj = p.decode(payload, p.MAX_SCHEDULE_BYTES, topic)
    except p.ProtocolError as exc:
        return f"{who} {parsed.suffix}: unreadable ({exc.message})"
    if not isinstance(obj, dict):
        return f"{who} {parsed.suffix}: not an object"
    s = parsed.suffix
    if s == t.STATE:
        return (
            f"{who} state: {obj.get('state')} (session {obj.get('session')}, {obj.get('reason')})"
        )
    if s == t.HEARTBEAT:
        playing = obj.get("playing")
        what = (
            f"playing {playing.get('course_id')} at {playing.get('position', 0):.0f}s"
            if playing
            else "idle"
        )
        content = obj.get("content") or {}
        ready = (
            f", content {content.get('ready')}/{content.get('needed')} ready"
            f" ({content.get('bytes_left', 0) / 1e6:.1f} MB left)"
            if isinstance(content, dict) and content.get("needed")
            else ""
        )
        return (
            f"{who} heartbeat #{obj.get('seq')}: {what}, schedules {obj.get('schedule_versions')},"
            f" outbox {obj.get('outbox')}{ready}, {len(payload)} B"
        )
    if s == t.STATUS:
        return (
            f"{who} status: {len(obj.get('upcoming') or [])} upcoming, outbox {obj.get('outbox')}"
        )
    if s == t.RECORD:
        return (
            f"{who} record {str(obj.get('record_id'))[:8]} rev {obj.get('rev')}: "
            f"{obj.get('course_id')} {obj.get('outcome')} "
            f"({obj.get('played_seconds', 0):.1f}s, {100 * (obj.get('completion') or 0):.0f}%)"
        )
    if s == t.RECORD_ACK:
        ids = [str(r.get("record_id"))[:8] for r in obj.get("records") or [] if isinstance(r, dict)]
        return f"record/ack to {who}: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}"
    signer = ""
    if s in (t.SCHEDULE, t.LIBRARY) and looks_signed(obj):
        obj, signer = _unsealed(obj)  # shown, not verified: the terminals verify
    if s == t.SCHEDULE:
        layer = "county" if who == t.ALL else "terminal"
        return f"schedule ({layer} layer) v{obj.get('version')} for {who}{signer}"
    if s == t.LIBRARY:
        layer = "county" if who == t.ALL else "terminal"
        count = len(obj.get("courses") or [])
        return (
            f"course manifest ({layer} layer) v{obj.get('version')} for {who}: "
            f"{count} course(s){signer}"
        )
    if s in (t.SCHEDULE_ACK, t.LIBRARY_ACK):
        reasons = "; ".join(obj.get("reasons") or [])[:200]
        return f"{who} {s}: {obj.get('layer')} v{obj.get('version')} {obj.get('status')}" + (
            f" ({reasons})" if reasons else ""
        )
    if s == t.EVENT:
        return f"{who} event: {obj.get('name')} {obj.get('state')} ({obj.get('severity')})"
    if s == t.CMD:
        return f"cmd to {who}: {obj.get('cmd')} id={obj.get('id')}"
    if s == t.CMD_REPLY:
        return f"{who} cmd/reply id={obj.get('id')}: {obj.get('status')} {obj.get('message')}"
    return f"{who} {s}: {len(payload)} B"
