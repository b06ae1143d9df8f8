"""Everything the core knows, in one place that the job modules read and change.

The job modules (planning, lifecycle, playback, escalation, commands) are functions over a
``CoreState``; ``Core`` is a ``CoreState`` with the public entry points. Only the core thread
touches it, one event at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from agent.domain.clockrules import Clock, clock_state, next_lkg
from agent.domain.core.actions import Action, Stop
from agent.domain.core.session import History, Session
from agent.domain.core.settings import CoreSettings
from agent.domain.planner import Plan
from agent.domain.schedule import Course, ScheduleDoc


def uuid_text() -> str:
    """The default id factory: a random UUID as text (records and sessions)."""
    return str(uuid.uuid4())


class CoreState:
    """The core's state, and the few rules that every job module needs."""

    def __init__(
        self,
        settings: CoreSettings,
        clock: Clock,
        *,
        layers: dict[str, ScheduleDoc],
        since: dict[str, float],
        history: dict[str, History],
        next_seq: int,
        lkg: float,
        synced: bool | None,
        responsible_since: float | None = None,
        durations: dict[str, float] | None = None,
        new_id: Callable[[], str] = uuid_text,
    ) -> None:
        """``history``, ``next_seq``, ``lkg`` and ``durations`` come from the store, so a
        restart goes on where the last run stopped; ``responsible_since`` is when an agent was
        last known to run (missed slots before it are not reported). ``new_id`` makes record
        ids (and session tokens): random by default, a counter in tests that want fixed ids.
        """
        self.s = settings
        self.clock = clock
        self.new_id = new_id
        self.layers = dict(layers)
        self.library: dict[str, Course] = {}  # on-demand courses from the manifests
        self.since = dict(since)
        self.history = dict(history)
        self.durations = dict(durations or {})  # course id -> media length learned from plays
        self.next_seq = next_seq
        self.lkg = lkg
        # The last trusted value of ``lkg`` and when it was trusted (see ``next_lkg``).
        self.lkg_anchor, self.lkg_anchor_mono = lkg, clock.monotonic()
        self.synced = synced
        now = clock.wall()
        # Occurrences before this instant are not ours to report as missed (first install,
        # or the time the agent was last known to be running).
        self.responsible_since = responsible_since if responsible_since else now
        if synced is not True and lkg and now - lkg > settings.max_lkg_step_s:
            # An unverified clock far past the last time known good: what lies between is
            # unknown, so none of it is reported as missed.
            self.responsible_since = now
        self.advance_lkg()
        self.started_wall = now
        self.jumps: list[tuple[float, float]] = []
        self.current: Session | None = None
        self.prerolled: Session | None = None
        self.cold_start_key: str | None = None  # its preroll failed: open it at the slot
        self.cached_plan: Plan | None = None
        self.plan_window = (0.0, 0.0)
        self.held_reason: str | None = None
        self.idle_since_mono = clock.monotonic()
        self.player_loaded = False
        # escalation state (per process; the process-restart budget comes from the runtime)
        self.errors_in_row = 0
        self.media_errors: dict[str, int] = {}
        self.quarantine: dict[str, float] = {}  # media -> monotonic time it is allowed again
        self.player_restarts = 0
        self.active_alarms: set[str] = set()

    def clock_state(self) -> str:
        """``synced``, ``unsynced`` or ``implausible``, by ``agent.domain.clockrules``."""
        return clock_state(self.clock.wall(), self.lkg, self.synced)

    def advance_lkg(self) -> None:
        """Move the last-known-good time by the rules in ``agent.domain.clockrules.next_lkg``."""
        mono = self.clock.monotonic()
        self.lkg = next_lkg(
            self.lkg,
            self.lkg_anchor,
            mono - self.lkg_anchor_mono,
            self.clock.wall(),
            self.synced,
            self.s.max_lkg_step_s,
        )
        if self.clock_state() == "synced":
            self.lkg_anchor, self.lkg_anchor_mono = self.lkg, mono

    def take_seq(self) -> int:
        """The next record sequence number (gap-free, so the county can see a lost record)."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def drop_preroll(self, out: list[Action]) -> None:
        """Forget the prerolled session (its record was never opened) and free the player."""
        if self.prerolled is not None:
            out.append(Stop(self.prerolled.token))
            self.prerolled = None
