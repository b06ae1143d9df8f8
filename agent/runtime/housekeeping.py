"""The core loop's own timed work, done after each Tick: each job says when it is next due.

Held writes retried, a hung libvlc noticed, the kernel's clock-sync state read, the
last-known-good time saved, the schedule inbox and files looked at, the adapters' per-tick
hooks run. :meth:`Housekeeping.due_in` tells the loop how long it may sleep before one of them.
"""

from __future__ import annotations

import logging
import time

from agent.adapters.kernel_clock import kernel_clock_synced
from agent.domain import core as c
from agent.runtime.executor import Executor
from agent.runtime.host import Host
from agent.runtime.schedules import Schedules
from agent.runtime.sidejobs import SideJobs
from agent.runtime.wakeups import PAST_STRICT_S

log = logging.getLogger("agent")

LKG_INTERVAL_S = 1800.0  # each write costs ~24 KB of flash (fsync); see docs/performance.md
SYNC_CHECK_S = 60.0
NEVER = -1e9


class Housekeeping:
    def __init__(
        self, host: Host, executor: Executor, jobs: SideJobs, schedules: Schedules
    ) -> None:
        self.host = host
        self.executor = executor
        self.jobs = jobs
        self.schedules = schedules
        self._last_lkg_mono = NEVER
        self._last_sync_mono = NEVER
        self._last_dir_poll = NEVER
        self._hang_reported_for: float | None = None

    def run(self) -> None:
        host = self.host
        core = host.core
        assert core is not None
        mono = host.clock.monotonic()
        self.executor.held.retry()
        self._check_hang(core, mono)
        if mono - self._last_sync_mono >= SYNC_CHECK_S:
            self._last_sync_mono = mono
            self._check_sync(core)
        if mono - self._last_lkg_mono >= LKG_INTERVAL_S:
            self._last_lkg_mono = mono
            self.jobs.run("last_known_good", self.save_lkg)
        if mono - self._last_dir_poll >= host.cfg.schedule_poll_seconds:
            self._last_dir_poll = mono
            self.jobs.run("schedule_inbox", self.schedules.poll_inbox)
            self.jobs.run("schedule_files", self.schedules.reload_if_changed)
        for hook in host.hooks_per_tick:
            self.jobs.run(getattr(hook, "__qualname__", "tick hook"), hook)

    def due_in(self) -> float:
        """Seconds until the next of these jobs is due (0 when one is due now)."""
        host = self.host
        mono = host.clock.monotonic()
        due = [
            self._last_sync_mono + SYNC_CHECK_S,
            self._last_lkg_mono + LKG_INTERVAL_S,
            self._last_dir_poll + host.cfg.schedule_poll_seconds,
        ]
        busy = getattr(host.player, "busy_since", None)
        if busy is not None and self._hang_reported_for != busy:
            due.append(busy + host.cfg.vlc.hang_seconds + PAST_STRICT_S)
        in_s = min(due) - mono
        retry = self.executor.held.retry_due()  # time.monotonic(): I/O pacing
        if retry is not None:
            in_s = min(in_s, retry - time.monotonic())
        return max(0.0, in_s)

    def _check_hang(self, core: c.Core, mono: float) -> None:
        busy = getattr(self.host.player, "busy_since", None)
        hang_s = self.host.cfg.vlc.hang_seconds
        if busy is not None and mono - busy > hang_s and self._hang_reported_for != busy:
            self._hang_reported_for = busy
            log.error("libvlc has not returned for %.0f s", mono - busy)
            self.executor.execute(core.handle(c.PlayerHung(mono - busy)))

    def _check_sync(self, core: c.Core) -> None:
        """Read the kernel's sync state; a change may lift or impose a hold on the schedule,
        which the core judges on a Tick: give it one now rather than at its next deadline."""
        was = core.synced
        self.executor.execute(core.handle(c.ClockSync(kernel_clock_synced())))
        if core.synced != was:
            self.executor.execute(core.handle(c.Tick()))

    def save_lkg(self) -> None:
        """Persist the core's last-known-good time (the core applies the rules that move it)."""
        core = self.host.core
        if core is None:
            return
        try:
            self.host.lkg.save(core.lkg)
        except OSError as exc:
            log.warning("cannot save the last-known-good time: %s", exc)
