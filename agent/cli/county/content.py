"""``countyctl content``: which course files each terminal of a county still lacks, for which
slot, and how far their downloads are.

Read from the terminals' retained ``status`` messages (their ``content`` section, see
``agent.runtime.content_state``), gathered for a short window after subscribing: the broker hands
over every retained status at once, so no terminal needs to be online. A status is as fresh as
its ``ts``; ``countyctl cmd T status`` asks a terminal for a new one. With a roster (``--roster``)
each terminal's status topic is subscribed exactly (RabbitMQ sends no retained message through a
wildcard) and a listed terminal without any status is named. The exit status answers
"will every slot in the next ``--hours`` have its video?": 1 when some terminal has a file not
ready whose slot is that near (or reports a missing file that near, or is on the roster without
any status), else 0.
"""

from __future__ import annotations

import datetime as dt
import queue
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.cli.county.roster import exact_filters, subscribe_all
from agent.domain import protocol as p
from agent.domain import topics as t


@dataclass
class TerminalContent:
    """One terminal's content as its last status told it."""

    terminal: str
    status_ts: str | None = None
    readiness: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    files_total: int = 0
    has_section: bool = False
    seen: bool = True  # False: a roster terminal that has no status at the broker

    def due(self, now: float, hours: float) -> list[dict[str, Any]]:
        """Files not ready whose slot starts within ``hours`` (or passed not long ago)."""
        limit = now + hours * 3600
        out = []
        for f in self.files:
            slot = _ts(f.get("slot"))
            if f.get("status") != "ready" and slot is not None and slot <= limit:
                out.append(f)
        return out

    def late(self, now: float, hours: float) -> bool:
        """Whether a slot within ``hours`` lacks its file (also one the list did not show); a
        roster terminal without any status counts, as nothing says its files are there."""
        if not self.seen or self.due(now, hours):
            return True
        soonest = _ts((self.readiness or {}).get("soonest_missing"))
        return soonest is not None and soonest <= now + hours * 3600

    def to_json(self, now: float, hours: float) -> dict[str, Any]:
        return {
            "terminal": self.terminal,
            "seen": self.seen,
            "status_ts": self.status_ts,
            "has_content": self.has_section,
            "readiness": self.readiness,
            "files_not_ready": [f for f in self.files if f.get("status") != "ready"],
            "files_total": self.files_total,
            "due": [f.get("path") for f in self.due(now, hours)],
            "late": self.late(now, hours),
        }


def _ts(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def from_status(terminal: str, status: Mapping[str, Any]) -> TerminalContent:
    """A terminal's content from its status snapshot (the ``content`` section may be absent:
    an agent without the content service)."""
    view = TerminalContent(
        terminal, status_ts=status.get("ts") if isinstance(status.get("ts"), str) else None
    )
    section = status.get("content")
    if not isinstance(section, Mapping):
        return view
    view.has_section = True
    ready = section.get("readiness")
    view.readiness = dict(ready) if isinstance(ready, Mapping) else None
    rows = section.get("files")
    view.files = [dict(f) for f in rows if isinstance(f, Mapping)] if isinstance(rows, list) else []
    total = section.get("files_total")
    view.files_total = total if isinstance(total, int) else len(view.files)
    return view


def gather(
    cc: Any, county: str, wait: float, roster: list[str] | None = None
) -> dict[str, TerminalContent]:
    """Subscribe to the county's statuses and take what arrives within ``wait`` seconds; with a
    roster, every listed terminal has an entry (``seen`` False when no status came)."""
    if roster:
        subscribe_all(cc, exact_filters(county, roster, [t.STATUS]))
    else:
        cc.subscribe([t.fleet(county, t.STATUS)])
    found: dict[str, TerminalContent] = {}
    end = time.monotonic() + wait
    while (left := end - time.monotonic()) > 0:
        try:
            msg = cc.messages.get(timeout=min(left, 0.2))
        except queue.Empty:
            continue
        parsed = t.parse(msg.topic)
        if parsed is None or parsed.suffix != t.STATUS or parsed.terminal == t.ALL:
            continue
        if not msg.payload:
            found.pop(parsed.terminal, None)  # retained status cleared: a terminal taken away
            continue
        try:
            obj = p.decode(msg.payload, p.MAX_SCHEDULE_BYTES, msg.topic)
        except p.ProtocolError:
            continue
        if isinstance(obj, dict):
            found[parsed.terminal] = from_status(parsed.terminal, obj)
    for terminal in roster or ():
        found.setdefault(terminal, TerminalContent(terminal, seen=False))
    return found


def _mb(n: Any) -> str:
    return f"{n / 1e6:.1f} MB" if isinstance(n, int | float) else "?"


def _when(text: Any, now: float) -> str:
    ts = _ts(text)
    if ts is None:
        return "library"
    delta = ts - now
    span = f"{abs(delta) / 3600:.1f} h"
    return f"{text} ({'in ' + span if delta >= 0 else span + ' ago'})"


def file_line(f: Mapping[str, Any], now: float) -> str:
    status = str(f.get("status"))
    size, done = f.get("size"), f.get("done") or 0
    if status == "fetching" and isinstance(size, int) and size > 0:
        progress = f"{100 * done // size}% of {_mb(size)}"
    else:
        progress = f"{_mb(done)} of {_mb(size)}"
    line = f"    {status:<8}  {f.get('path')}  slot {_when(f.get('slot'), now)}  {progress}"
    if f.get("reason"):
        line += f"  ({str(f['reason'])[:120]}"
        line += f", {f['tries']} tries)" if f.get("tries") else ")"
    return line


def render(
    views: Mapping[str, TerminalContent], county: str, now: float, hours: float
) -> list[str]:
    if not views:
        return [f"no status from any terminal of county {county}"]
    lines = []
    if not any(v.seen for v in views.values()):
        lines.append(f"no status from any terminal of county {county}")
    for name in sorted(views):
        v = views[name]
        head = f"{name}: status of {v.status_ts or '?'}"
        if not v.seen:
            lines.append(f"{name}: no status at the broker (never connected?)")
            continue
        if not v.has_section:
            lines.append(f"{head}: no content section (an agent without the content pipeline)")
            continue
        r = v.readiness or {}
        head += (
            f": {r.get('ready', '?')}/{r.get('needed', '?')} ready, {r.get('fetching', 0)} "
            f"fetching, {r.get('failed', 0)} failed, {_mb(r.get('bytes_left'))} left"
        )
        if r.get("soonest_missing"):
            head += f", soonest missing slot {_when(r['soonest_missing'], now)}"
        if v.late(now, hours):
            head += f"  [NOT READY within {hours:g} h]"
        lines.append(head)
        for f in v.files:
            if f.get("status") != "ready":
                lines.append(file_line(f, now))
        hidden = v.files_total - len(v.files)
        if hidden > 0:
            lines.append(f"    ... {hidden} more file(s) not listed in the status")
    return lines
