"""An agent without an agent, for the MQTT link: an in-memory outbox, counters, canned answers.

``MemoryBridge`` has the methods of ``agent.adapters.mqtt.bridge.RuntimeBridge`` and is used
where the link is exercised alone: ``scripts/bench/mqtt_storm.py`` runs hundreds of links in one
process, and the link's own tests drive it against a real broker with no runtime behind it.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

from agent import __version__
from agent.adapters.manifest_files import parse_untrusted_manifest
from agent.adapters.mqtt.bridge import CommandResult, ScheduleOutcome
from agent.adapters.schedule_files import read_untrusted
from agent.domain.manifest import ManifestRejected
from agent.domain.outbox import Row
from agent.domain.records import utc_now_text
from agent.domain.schedule import ScheduleRejected


class MemoryBridge:
    """An agent without an agent: an in-memory outbox, counters and canned answers.

    Used where the link is exercised alone (``scripts/bench/mqtt_storm.py`` runs hundreds of
    links in one process). Same methods as ``RuntimeBridge``; thread-safe.
    """

    def __init__(self, terminal: str, county: str) -> None:
        self.terminal = terminal
        self.county = county
        self.boot_id = "memory"
        self.lock = threading.Lock()
        self.session = 0
        self.rows: dict[int, Row] = {}
        self.ids = itertools.count(1)
        self.commands: dict[str, dict[str, Any]] = {}
        self.replies: list[dict[str, Any]] = []
        self.acks: list[ScheduleOutcome] = []
        self.wake: Callable[[], None] = lambda: None
        self.versions: dict[str, int | None] = {"terminal": None, "county": None}
        self.library_versions: dict[str, int | None] = {"terminal": None, "county": None}
        self.status_stale = False  # nothing here changes the status behind the link's back

    def attach(self, wake: Callable[[], None], status: Callable[[], dict[str, Any]]) -> None:
        self.wake = wake

    def enqueue(self, kind: str, msg_id: str, topic: str, payload: dict[str, Any] | str) -> int:
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        rev = json.loads(text).get("rev", 1) if kind == "record" else None
        with self.lock:
            if kind == "record":
                for rid in [i for i, r in self.rows.items() if r.msg_id == msg_id]:
                    del self.rows[rid]
            row_id = next(self.ids)
            self.rows[row_id] = Row(row_id, msg_id, kind, topic, text, 1, False, rev)
        self.wake()
        return row_id

    def next_session(self) -> tuple[int, str]:
        with self.lock:
            self.session += 1
            return self.session, "unsynced"

    def fetch(self, stream: str, after: int, limit: int) -> list[Row]:
        with self.lock:
            rows = sorted(
                (r for r in self.rows.values() if r.id > after and r.stream == stream),
                key=lambda r: r.id,
            )
        return rows[:limit]

    def fetch_ids(self, ids: list[int]) -> list[Row]:
        with self.lock:
            return [self.rows[i] for i in sorted(ids) if i in self.rows]

    def confirm(
        self, row_ids: list[int], record_acks: list[tuple[str, int]], retried: list[int]
    ) -> int:
        n = 0
        with self.lock:
            for i in row_ids:
                n += self.rows.pop(i, None) is not None
            for rid, rev in record_acks:
                for i in [
                    i
                    for i, r in self.rows.items()
                    if r.kind == "record" and r.msg_id == rid and (r.rev or 1) <= rev
                ]:
                    del self.rows[i]
                    n += 1
        return n

    def depth(self) -> int:
        with self.lock:
            return len(self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "uptime_s": 0.0,
            "playing": None,
            "schedule_versions": {k: v for k, v in self.versions.items() if v},
            "clock": "unsynced",
            "outbox": self.depth(),
        }

    def status(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "terminal": self.terminal,
            "county": self.county,
            "started_at": utc_now_text(),
            "boot_id": self.boot_id,
            "timezone": "Asia/Shanghai",
            "upcoming": [],
            "open_records": 0,
            "records_unsent": self.depth(),
            "agent_version": __version__,
        }

    def clock(self) -> str:
        return "unsynced"

    def apply_schedule(
        self, data: bytes, layer: str, source: str, retained: bool, build_ack: Callable[..., Any]
    ) -> ScheduleOutcome:
        doc = read_untrusted(data, source)
        return self._apply(doc, self.versions, layer, retained, build_ack, "schedule")

    def apply_library(
        self, data: bytes, layer: str, source: str, retained: bool, build_ack: Callable[..., Any]
    ) -> ScheduleOutcome:
        try:
            doc: Any = parse_untrusted_manifest(data, source)
        except ManifestRejected as exc:
            doc = exc
        return self._apply(doc, self.library_versions, layer, retained, build_ack, "library")

    def _apply(
        self,
        doc: Any,
        versions: dict[str, int | None],
        layer: str,
        retained: bool,
        build_ack: Callable[..., Any],
        kind: str,
    ) -> ScheduleOutcome:
        if isinstance(doc, ScheduleRejected | ManifestRejected):
            out = ScheduleOutcome(
                layer, doc.version, "rejected", doc.problems, None, dict(versions), "unsynced"
            )
        else:
            prev = versions.get(layer)
            if prev is not None and doc.version <= prev:
                out = ScheduleOutcome(
                    layer, doc.version, "stale", ["not newer"], prev, {}, "unsynced"
                )
                out.silent = retained
            else:
                versions[layer] = doc.version
                out = ScheduleOutcome(
                    layer, doc.version, "applied", [], prev, dict(versions), "unsynced"
                )
        self.acks.append(out)
        if not out.silent:
            self.enqueue(
                f"{kind}_ack", f"{kind}:{layer}:{out.version}", f"{kind}/ack", build_ack(out)
            )
        return out

    def on_layer_unreadable(self, callback: Callable[[str], None]) -> None:
        """Nothing is stored here, so no layer ever becomes unreadable."""

    def command_begin(self, cmd_id: str, cmd: str | None) -> dict[str, Any] | None:
        with self.lock:
            if cmd_id in self.commands:
                return self.commands[cmd_id]
            self.commands[cmd_id] = {"cmd": cmd, "status": "executing", "reply": None}
        return None

    def command_finish(self, cmd_id: str | None, status: str, reply: dict[str, Any]) -> None:
        with self.lock:
            if cmd_id is not None:
                self.commands[cmd_id] = {"cmd": reply.get("cmd"), "status": status, "reply": reply}
            self.replies.append(reply)
        self.enqueue("reply", f"reply:{cmd_id}", "cmd/reply", reply)

    def play(self, args: dict[str, Any]) -> CommandResult:
        return CommandResult(True, f"playing {args.get('course_id')}", {})

    def stop(self) -> CommandResult:
        return CommandResult(True, "nothing was playing", {"stopped": None})

    def reload(self) -> CommandResult:
        return CommandResult(True, "schedules reloaded", {})
