"""What the runtime's parts share: the ``Host`` they are given instead of the whole ``Runtime``.

The runtime is split by job (loop, executor, held writes, bootstrap, schedules, status,
shutdown); each part reads the shared state through this Protocol, so none of them imports
``agent.runtime.loop`` (that would be an import cycle) and each says what it may touch.
Attributes the parts *replace* (``store``, ``core``, ``player``) are read through the host every
time, never cached: a player restart or a store reopen must be seen by every part at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from agent.adapters.kernel_clock import LastKnownGood
from agent.adapters.schedule_files import ScheduleStore
from agent.adapters.sqlite.store import Store
from agent.domain import core as c
from agent.runtime.config import AgentConfig
from agent.runtime.inbox import ScheduleInbox
from agent.runtime.ports import Clock, Player

Listener = Callable[[str, Any], None]  # (kind, payload), on the core thread, after a commit
SectionFn = Callable[[], dict[str, Any]]


class Host(Protocol):
    cfg: AgentConfig
    clock: Clock
    boot: str
    store: Store | None
    core: c.Core | None
    player: Player
    player_factory: Callable[[], Player]
    lkg: LastKnownGood
    schedules: ScheduleStore
    inbox: ScheduleInbox | None
    stop_requested: threading.Event
    exit_code: int
    started_mono: float
    started_wall: float
    corrupt_store_moved: Path | None
    listeners: list[Listener]
    hooks_per_tick: list[Callable[[], None]]
    on_shutdown: list[Callable[[], None]]
    status_providers: dict[str, SectionFn]
    summary_providers: dict[str, SectionFn]

    def post(self, event: object) -> None: ...

    def call(self, fn: Callable[[], Any], timeout: float | None = 10.0) -> Any: ...

    def call_soon(self, fn: Callable[[], Any]) -> None: ...

    def request_stop(self) -> None: ...

    def notify(self, kind: str, payload: Any) -> None: ...
