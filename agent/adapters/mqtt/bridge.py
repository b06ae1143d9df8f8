"""What the link needs from the rest of the agent, behind one small interface.

``RuntimeBridge`` runs every operation on the core thread (``Runtime.call``): the store, the
schedules and the core stay single-threaded, as the design asks; the link's own thread only waits
for the answers. It holds the runtime's store and schedule files only as the ports
``agent.runtime.ports.LinkStore`` and ``ScheduleFiles``: the outbox queries and the command
ledger are the SQLite adapter's (``store.outbox``, ``store.commands``), not this module's.
``agent.testing.bridge.MemoryBridge`` is an in-memory stand-in with the same methods, for
benches (hundreds of simulated terminals in one process) and tests of the link alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from agent.adapters.mqtt.documents import (
    LIBRARY_DOCS,
    SCHEDULE_DOCS,
    TRUST_DOCS,
    DocKind,
)
from agent.domain.outbox import Row
from agent.domain.schedule import (
    LAYERS,
    ApplyResult,
    unreadable_alarm,
)
from agent.runtime.play_check import media_problem, play_target
from agent.runtime.ports import LinkStore

SESSION_KEY = "mqtt.session"

REPLY_TIMEOUT_S = 120.0  # queuing a command's reply waits out a busy core this long


class BridgeClosed(Exception):
    """The agent's core has stopped; nothing more can be asked of it."""


@dataclass
class ScheduleOutcome:
    layer: str
    version: int | None  # None: the document had no valid version
    status: str  # applied | rejected | stale
    reasons: list[str]
    previous_version: int | None
    applied: dict[str, int | None]
    clock: str
    silent: bool = False  # a retained re-delivery already answered: publish nothing


@dataclass
class CommandResult:
    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class RuntimeBridge:
    """The link's view of a running ``agent.runtime.loop.Runtime`` (every call hops to the core)."""

    def __init__(self, runtime: Any, timeout: float = 15.0) -> None:
        self.runtime = runtime
        self.cfg = runtime.cfg
        self.timeout = timeout
        self.terminal = self.cfg.terminal
        self.county = self.cfg.county
        self.boot_id = runtime.boot
        self.status_stale = False

    # -- plumbing ----------------------------------------------------------------------------

    def _closed(self) -> bool:
        return self.runtime.store is None

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``fn`` on the core thread; BridgeClosed once the core loop has ended.

        ``TimeoutError`` means ``fn`` did not run and never will: a call the core thread has not
        begun when the wait ends is cancelled; one it has begun is waited for to the end.
        """
        if self._closed():
            raise BridgeClosed("the agent core has stopped")
        claim: Future[None] = Future()

        def once() -> Any:
            if not claim.set_running_or_notify_cancel():
                return None  # the caller gave up before the core thread got here
            return fn()

        fut: Future[Any] = self.runtime.call(once, timeout=None)
        limit = self.timeout if timeout is None else timeout
        start = time.monotonic()
        stop_seen: float | None = None
        while True:
            try:
                return fut.result(0.2)
            except FutureTimeout:
                pass  # not done yet: look at the core's state, then wait again
            now = time.monotonic()
            if self._closed():
                claim.cancel()
                raise BridgeClosed("the agent core has stopped")
            if self.runtime.stop_requested.is_set():
                stop_seen = stop_seen or now
                if now - stop_seen > 1.0:
                    claim.cancel()
                    raise BridgeClosed("the agent is stopping")
            if now - start > limit and claim.cancel():
                raise TimeoutError(
                    f"the core thread did not take the call within {limit:.0f} s; nothing was done"
                )

    def attach(self, wake: Callable[[], None], status: Callable[[], dict[str, Any]]) -> None:
        """Wake the link when the outbox grows; put the link's state into the status snapshot."""
        last = {"id": -1}

        def on_tick() -> None:
            store = self.runtime.store
            if store is None:
                return
            now_id = store.outbox.last_id()
            if now_id != last["id"]:
                last["id"] = now_id
                wake()

        def on_event(kind: str, _payload: Any) -> None:
            if kind == "record":
                wake()
            elif kind == "content_changed":
                self.status_stale = True  # the retained status is republished by the link
                wake()

        self.runtime.hooks_per_tick.append(on_tick)
        self.runtime.listeners.append(on_event)
        self.runtime.status_providers["mqtt"] = status

    def _store(self) -> LinkStore:
        store = self.runtime.store
        if store is None:
            raise BridgeClosed("the store is closed")
        return store

    def _clock(self) -> str:
        return self.runtime.core.clock_state()

    # -- session, outbox ---------------------------------------------------------------------

    def next_session(self) -> tuple[int, str]:
        return self.call(lambda: (self._store().bump_counter(SESSION_KEY), self._clock()))

    def fetch(self, stream: str, after: int, limit: int) -> list[Row]:
        return self.call(lambda: self._store().outbox.fetch(stream, after, limit))

    def fetch_ids(self, ids: list[int]) -> list[Row]:
        return self.call(lambda: self._store().outbox.fetch_ids(ids))

    def confirm(
        self, row_ids: list[int], record_acks: list[tuple[str, int]], retried: list[int]
    ) -> int:
        return self.call(lambda: self._store().outbox.confirm(row_ids, record_acks, retried))

    # -- what the terminal says about itself ---------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return self.call(self.runtime.summary)

    def status(self) -> dict[str, Any]:
        return self.call(self.runtime.status_snapshot)

    def clock(self) -> str:
        return self.call(self._clock)

    # -- schedules -----------------------------------------------------------------------------

    def apply_schedule(
        self, data: bytes, layer: str, source: str, retained: bool, build_ack: Callable[..., Any]
    ) -> ScheduleOutcome:
        """Read the document here, on the link's thread, then apply it and queue the ack on the
        core thread (no ack when it would repeat the last one for a retained copy).

        The signature is checked first (``agent.runtime.trust``), then reading is bounded
        (``parse_untrusted``: depth, values, time); both happen before the hop, so a hostile
        document costs the link a moment and the core thread nothing.
        """
        parsed = self.runtime.schedule_files.read(data, source, layer)
        return self.call(
            lambda: self._apply(SCHEDULE_DOCS, data, layer, source, retained, build_ack, parsed)
        )

    def apply_library(
        self, data: bytes, layer: str, source: str, retained: bool, build_ack: Callable[..., Any]
    ) -> ScheduleOutcome:
        """A course manifest, read and answered exactly like a schedule (``library/ack``)."""
        parsed = self.runtime.library.read(data, source, layer)
        return self.call(
            lambda: self._apply(LIBRARY_DOCS, data, layer, source, retained, build_ack, parsed)
        )

    def apply_trust(
        self, data: bytes, source: str, retained: bool, build_ack: Callable[..., Any]
    ) -> ScheduleOutcome:
        """A root-signed revocation list from the county's trust topic, verified here and
        applied on the core thread; answered on ``trust/ack`` like a schedule."""
        update = self.runtime.schedule_files.trust.read_trust(data)
        return self.call(
            lambda: self._apply(TRUST_DOCS, data, "county", source, retained, build_ack, update)
        )

    def open_command(self, payload: bytes) -> bytes:
        """The command to run from a (signed) ``cmd`` payload, on the link's thread; raises
        ``agent.domain.trust.TrustRejected`` with the reason when it may not run."""
        return self.runtime.schedule_files.trust.open_command(payload)

    def _apply(
        self,
        docs: DocKind,
        data: bytes,
        layer: str,
        source: str,
        retained: bool,
        build_ack: Callable[..., Any],
        parsed: Any,
    ) -> ScheduleOutcome:
        store = self._store()
        current = docs.same_as_applied(self.runtime, parsed, layer) if retained else None
        if current is not None:
            # The retained document we already run, re-delivered on every connect: it *is* the
            # applied version. Say so (once), never apply it again, log nothing.
            res = ApplyResult(layer, current, "applied", [], current)
        else:
            res = docs.apply(self.runtime, data, source, layer, parsed)
        applied: dict[str, int | None] = {k: None for k in ("terminal", "county")}
        applied.update(docs.versions(self.runtime))
        status, reasons = res.status, list(res.reasons)
        outcome = ScheduleOutcome(
            res.layer, res.version, status, reasons, res.previous_version, applied, self._clock()
        )
        key = docs.ack_key.format(layer=layer)
        said = f"{res.version}:{status}"
        if retained and store.get(key) == said:
            outcome.silent = True
            return outcome
        payload = build_ack(outcome)
        with store.transaction() as conn:
            store.enqueue(
                docs.ack_kind,
                f"{docs.ack_kind}:{layer}:{_version_id(res.version)}:{status}",
                docs.ack_topic,
                payload,
                retain=True,
                conn=conn,
            )
            store.put(key, said, conn)
        return outcome

    def on_layer_unreadable(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(layer)`` (on the core thread) when the stored document of a schedule
        layer is found unreadable, so that the link asks the county for that layer again."""

        def listener(kind: str, change: Any) -> None:
            if kind != "alarm" or change.action != "raised":
                return
            layer = (change.detail or {}).get("layer")
            if layer in LAYERS and change.name == unreadable_alarm(layer):
                callback(layer)

        self.runtime.listeners.append(listener)

    # -- commands ------------------------------------------------------------------------------

    def command_begin(self, cmd_id: str, cmd: str | None) -> dict[str, Any] | None:
        return self.call(lambda: self._store().commands.begin(cmd_id, cmd))

    def command_finish(self, cmd_id: str | None, status: str, reply: dict[str, Any]) -> None:
        def run() -> None:
            store = self._store()
            ledger = store.commands  # made before the transaction: its first use adds a table
            with store.transaction() as conn:
                ledger.finish(cmd_id, status, reply, conn)
                msg_id = f"reply:{cmd_id}" if cmd_id else f"reply:anon:{time.time_ns()}"
                store.enqueue("reply", msg_id, "cmd/reply", reply, conn=conn)

        self.call(run, timeout=max(self.timeout, REPLY_TIMEOUT_S))

    def play(self, args: dict[str, Any]) -> CommandResult:
        """Check the media on this (the link's) thread the way the player will, then play.

        A file the player would refuse (outside the content folder, missing, unreadable) is
        answered ``bad_media`` here, so the county is never told "playing" for a course that
        then ends as ``skipped``.
        """
        from agent.domain.core import PlayCommand

        course_id, media = args.get("course_id"), args.get("media")
        target = self.call(lambda: play_target(self.runtime.core, course_id, media))
        problem = media_problem(self.cfg.content_dir, target)
        if problem is not None:
            return CommandResult(
                False,
                f"{problem.message}; nothing was played",
                {"reason": problem.reason, "media": target},
                "bad_media",
            )
        cmd = PlayCommand(
            course_id=args.get("course_id"),
            media=args.get("media"),
            title=args.get("title"),
            trigger="remote",
            priority=args.get("priority"),
        )
        return _reply_result(self.runtime.submit(cmd, timeout=self.timeout))

    def stop(self) -> CommandResult:
        from agent.domain.core import StopCommand

        return _reply_result(
            self.runtime.submit(StopCommand(trigger="remote"), timeout=self.timeout)
        )

    def reload(self) -> CommandResult:
        def run() -> dict[str, Any]:
            self.runtime.reload_schedules("reload command from the county")
            return self.runtime.schedule_versions()

        versions = self.call(run)
        return CommandResult(True, "schedules reloaded", {"schedule_versions": versions})


def _reply_result(actions: list[Any]) -> CommandResult:
    from agent.domain.core import Reply

    for action in actions:
        if isinstance(action, Reply):
            data = dict(action.data)
            error = data.get("error") if not action.ok else None
            return CommandResult(action.ok, action.message, data, error)
    return CommandResult(False, "the core gave no answer", {}, "failed")


def _version_id(version: int | None) -> str:
    """The version as it appears in an ack's ``msg_id``: ``none`` for a document without one."""
    return "none" if version is None else str(version)
