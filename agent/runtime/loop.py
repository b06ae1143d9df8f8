"""The runtime: wires the pure core to its adapters and runs the one core thread.

Everything that touches the outside world lives here or below: SQLite (Store), the schedule
files, the VLC worker, the clock's sync state. ``Runtime`` is the wiring and the face adapters
see; each job is its own module:

    core_loop     the event queue, one step per event, sleeping until the next deadline
    wakeups       when the core must next wake (the policy that lets an idle agent sleep)
    housekeeping  the loop's own timed work (held writes, clock sync, inbox, hooks, hang check)
    sidejobs      that timed work failing alone, alarmed once
    executor      carrying out the core's actions
    held          the writes the store refused, held in order within a bound, retried
    bootstrap     opening: store, open records, layers, history, alarms restored
    media_gate    media checked off the core thread before the player gets it
    log_limiter   the event log's per-kind rate limit
    schedules     schedule documents applied, reloaded, the inbox glue
    library       course manifests applied and handed to the core and the content service
    status        the status snapshot's declared type; snapshot assembles it
    shutdown      stopping in order
    host, ports   what the parts share, and what the runtime needs from its adapters

Adapters (player, MQTT, probes, control socket) only ever *post* to the core thread's queue or
``call`` into it; five registries let them plug in (``listeners``, ``hooks_per_tick``,
``status_providers``, ``summary_providers``, ``on_shutdown``), all called on the core thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.adapters.kernel_clock import LastKnownGood, SystemClock
from agent.adapters.schedule_files import ScheduleStore
from agent.adapters.sqlite.store import Store
from agent.adapters.vlc_player import PlayerEvent, VlcPlayer
from agent.domain import core as c
from agent.runtime.boot import boot_id
from agent.runtime.bootstrap import open_runtime
from agent.runtime.bootstrap import settings_from_config as settings_from_config
from agent.runtime.config import AgentConfig
from agent.runtime.core_loop import CoreLoop
from agent.runtime.executor import Executor
from agent.runtime.executor import record_message as record_message
from agent.runtime.host import Listener, SectionFn
from agent.runtime.housekeeping import Housekeeping
from agent.runtime.inbox import ScheduleInbox
from agent.runtime.library import Library
from agent.runtime.log_limiter import LogLimiter as LogLimiter
from agent.runtime.media_gate import MediaGate as MediaGate
from agent.runtime.ports import Clock, Player
from agent.runtime.schedules import Schedules
from agent.runtime.shutdown import shut_down
from agent.runtime.sidejobs import SideJobs
from agent.runtime.snapshot import build_status, build_summary
from agent.runtime.status import StatusSnapshot

log = logging.getLogger("agent")


class Runtime:
    def __init__(
        self, cfg: AgentConfig, clock: Clock | None = None, player: Player | None = None
    ) -> None:
        self.cfg = cfg
        self.clock: Clock = clock or SystemClock()
        self.boot = boot_id()
        self.schedules = ScheduleStore(cfg.state_dir, timezone=cfg.timezone)
        self.inbox = (
            ScheduleInbox(cfg.schedule_dir, cfg.timezone, self.call_soon)
            if cfg.schedule_dir
            else None
        )
        self.lkg = LastKnownGood(cfg.state_dir / "clock.lkg")
        self.player_factory: Callable[[], Player] = lambda: VlcPlayer(
            cfg.vlc.options, self._post_player, cfg.vlc.volume
        )
        self.player: Player = player or self.player_factory()
        self.store: Store | None = None
        self.core: c.Core | None = None
        self.stop_requested = threading.Event()
        self.ready = threading.Event()
        self.started_mono = self.clock.monotonic()
        self.started_wall = self.clock.wall()
        self.corrupt_store_moved: Path | None = None
        self.exit_code = 0
        # Extension points for adapters (MQTT link, probes monitor, control socket). All are
        # called on the core thread.
        self.listeners: list[Listener] = []  # (kind, payload) after commit
        self.hooks_per_tick: list[Callable[[], None]] = []  # after each Tick
        self.status_providers: dict[str, SectionFn] = {}
        self.summary_providers: dict[str, SectionFn] = {}
        self.on_shutdown: list[Callable[[], None]] = []  # before the store closes
        # The jobs, each in its module; they see this object through ``agent.runtime.host``.
        self.media = MediaGate(self)
        self.executor = Executor(self, self.media)
        held = self.executor.held
        self.jobs = SideJobs(self.executor.execute)
        self.schedule_files = Schedules(self, self.executor, self.jobs)
        self.library = Library(self, self.executor)
        self.schedule_files.apply_manifest = self.library.apply
        self.content: Any = None  # the content service, once started (content_start)
        self.housekeeping = Housekeeping(self, self.executor, self.jobs, self.schedule_files)
        self.loop = CoreLoop(self, self.executor, self.housekeeping)
        # Shown as the runtime's own (tests and the status read them); changed in place only.
        self.pending_writes: list[c.Action] = held.items
        self.held_dropped: dict[str, int] = held.dropped
        self.write_trouble = held.troubles
        self.failing_jobs: dict[str, str] = self.jobs.failing

    # -- setup and the loop (core thread) --------------------------------------------------

    def open(self) -> None:
        open_runtime(self, self.executor, self.schedule_files)
        self.library.load()
        self.loop.mark_clock()

    def keep_alive(self, every_s: float) -> None:
        """Wake at least every ``every_s`` seconds even with nothing to do (a watchdog's pace)."""
        self.loop.max_sleep = min(self.loop.max_sleep, every_s)

    def run(self, duration: float | None = None) -> None:
        assert self.core is not None
        if hasattr(self.player, "start_thread"):
            self.player.start_thread()
        try:
            self.loop.run(duration, self.ready)
        finally:
            try:
                self.shutdown()
            finally:
                self.loop.close()

    # -- posting (any thread) --------------------------------------------------------------

    def post(self, event: object) -> None:
        self.loop.put(event)

    def _post_player(self, ev: PlayerEvent) -> None:
        if ev.kind in ("loaded", "unloaded"):
            return
        self.loop.put(
            c.PlayerUpdate(ev.token, ev.kind, ev.wall, ev.mono, ev.position, ev.length, ev.detail)
        )

    def submit(self, event: object, timeout: float = 10.0) -> list[c.Action]:
        """Hand a command to the core thread and wait for its actions (control socket, MQTT).

        A ``TimeoutError`` means the command was *not* executed: if the core thread has not
        begun it when the caller gives up, it is cancelled and never runs; if it has begun, the
        caller waits for its real result (a core step takes milliseconds), so no command runs
        behind the back of a caller that was told it failed.
        """
        return self.loop.submit(event, timeout)

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the core thread later; for adapters that need no answer."""
        self.loop.call(fn)

    def call(self, fn: Callable[[], Any], timeout: float | None = 10.0) -> Any:
        """Run ``fn`` on the core thread and return its result (the way adapters touch state);
        with ``timeout=None``, return the future at once."""
        fut = self.loop.call(fn)
        if timeout is None:
            return fut
        return fut.result(timeout)

    def notify(self, kind: str, payload: Any) -> None:
        """Tell the listeners (core thread only) that something was committed."""
        for listener in self.listeners:
            try:
                listener(kind, payload)
            except Exception:
                log.exception("listener failed for %s", kind)

    def request_stop(self) -> None:
        self.stop_requested.set()
        self.loop.put(c.Tick())

    # -- what the terminal says about itself (core thread) ---------------------------------

    def schedule_versions(self) -> dict[str, int]:
        return self.schedule_files.versions()

    def summary(self) -> dict[str, Any]:
        """Small and cheap (the heartbeat carries it): what plays, versions, backlog."""
        return build_summary(self).to_dict()

    def status(self) -> StatusSnapshot:
        """The full picture, typed."""
        return build_status(self)

    def status_snapshot(self) -> dict[str, Any]:
        """The full picture as it goes on the wire (the retained status, stationctl status)."""
        return self.status().to_dict()

    # -- schedules (core thread) -----------------------------------------------------------

    def reload_schedules(self, why: str, applied: Any = None) -> None:
        self.schedule_files.reload(why, applied)

    def apply_schedule(
        self, data: bytes, source: str, layer: str | None = None, parsed: Any = None
    ) -> Any:
        """Validate, persist and load a schedule document; returns the ApplyResult (see
        ``Schedules.apply``)."""
        return self.schedule_files.apply(data, source, layer, parsed)

    # -- held writes and the store's troubles ----------------------------------------------

    @property
    def held_max(self) -> int:
        return self.executor.held.max

    @held_max.setter
    def held_max(self, bound: int) -> None:
        self.executor.held.max = bound

    @property
    def disk_full_since(self) -> float | None:
        return self.executor.held.disk_full_since

    def _execute(self, actions: list[c.Action]) -> None:
        self.executor.execute(actions)

    def _retry_pending(self) -> None:
        self.executor.held.retry()

    def _flush_held_at_exit(self) -> None:
        self.executor.held.flush_at_exit()

    def _restart_player(self, reason: str) -> None:
        self.executor.restart_player(reason)

    # -- shutdown --------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Adapters stop first (while the store is open), then the records, then the store."""
        shut_down(self, self.loop, self.executor, self.housekeeping)
