"""The runtime's ports: what it needs from its adapters, as typed ``Protocol``s.

The runtime drives adapters it does not import by name (a libvlc player, a test's recording
player, a fake clock); these Protocols say what each must offer, so a type checker catches an
adapter that drifts, and a newcomer reads the contract here rather than in the call sites.
Structural typing: an adapter satisfies a port by having the methods, with no base class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


class Clock(Protocol):
    """Wall time (seconds since the epoch) and monotonic time (durations, pacing)."""

    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


class Player(Protocol):
    """The media player the core's actions drive; every call returns at once.

    Commands are queued to the player's own worker: the core thread never waits on libvlc.
    ``busy_since`` is the monotonic time the worker entered a libvlc call that has not returned
    yet (None when it is not in one); the runtime reads it to notice a hung libvlc.
    """

    busy_since: float | None

    def preroll(self, token: str, mrl: str, start_at: float = 0.0) -> None: ...

    def play(self, token: str, mrl: str, start_at: float = 0.0) -> None: ...

    def start(self, token: str) -> None: ...

    def stop(self, token: str) -> None: ...

    def unload(self) -> None: ...

    def shutdown(self, timeout: float = 3.0) -> None: ...


@runtime_checkable
class StatusSection(Protocol):
    """A named provider of one section of the status snapshot (``status[name]``).

    Called on the core thread each time a snapshot is built; it must be quick and must not
    block (it reads state its adapter keeps, it does not go and measure).
    """

    name: str

    def section(self) -> Mapping[str, Any]: ...


# -- what adapters reach through the runtime: views of its store, its schedule files -------------
#
# An adapter never imports another adapter; the MQTT link, for one, holds the runtime's store
# and schedule files only as the Protocols below (``agent.adapters.sqlite.store.Store`` and
# ``agent.adapters.schedule_files.ScheduleStore`` satisfy them). Imports of this section are
# kept with it so that the section reads on its own.

from contextlib import AbstractContextManager  # noqa: E402
from sqlite3 import Connection  # noqa: E402

from agent.domain.outbox import Row  # noqa: E402
from agent.domain.schedule import ScheduleDoc, ScheduleRejected  # noqa: E402


class OutboxQueue(Protocol):
    """Reading and confirming the outbox, in id order per stream (core thread only)."""

    def fetch(self, stream: str, after: int, limit: int) -> list[Row]: ...

    def fetch_ids(self, ids: list[int]) -> list[Row]: ...

    def confirm(
        self, row_ids: list[int], record_acks: list[tuple[str, int]], retried: list[int]
    ) -> int: ...

    def last_id(self) -> int: ...


class CommandLedger(Protocol):
    """Executed command ids, so a re-delivered command runs once (core thread only)."""

    def begin(self, cmd_id: str, cmd: str | None) -> dict[str, Any] | None: ...

    def finish(
        self, cmd_id: str | None, status: str, reply: dict[str, Any], conn: Connection
    ) -> None: ...


class AlarmLog(Protocol):
    """Open alarms, and a raise or clear written with its event and outbox message."""

    def active(self) -> dict[str, float]: ...

    def persist(
        self,
        change: Any,  # agent.domain.health.AlarmChange or its to_dict()
        terminal: str,
        county: str,
        *,
        clock_state: str | None = None,
    ) -> None: ...


class LinkStore(Protocol):
    """What the MQTT adapters need of the runtime's store."""

    @property
    def outbox(self) -> OutboxQueue: ...

    @property
    def commands(self) -> CommandLedger: ...

    @property
    def alarms(self) -> AlarmLog: ...

    def get(self, key: str, default: str | None = None) -> str | None: ...

    def put(self, key: str, value: str, conn: Connection | None = None) -> None: ...

    def bump_counter(self, key: str) -> int: ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def enqueue(
        self,
        kind: str,
        msg_id: str,
        topic: str,
        payload: dict[str, Any] | str,
        *,
        qos: int = 1,
        retain: bool = False,
        replace: bool = False,
        conn: Connection | None = None,
    ) -> None: ...

    def outbox_depth(self, kind: str | None = None) -> int: ...


class ScheduleFiles(Protocol):
    """The applied schedule layers, and the bounded reader for documents from outside."""

    def read(
        self, data: str | bytes, source: str, *, timezone: str | None = None
    ) -> ScheduleDoc | ScheduleRejected: ...

    def load(self, layer: str, timezone: str | None = None) -> ScheduleDoc | None: ...
