"""``Core``: the one entry point the runtime drives, one event at a time.

``handle`` takes an event and returns the actions it leads to; the work is done by the job
modules (planning, playback, lifecycle, escalation, commands), all over the state ``Core``
inherits from ``CoreState``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.domain.core import commands, escalation, planning, playback
from agent.domain.core.actions import Action, Log, UnloadPlayer
from agent.domain.core.events import (
    AttendanceSet,
    ClockJump,
    ClockSync,
    LibraryChanged,
    MediaRejected,
    PlayCommand,
    PlayerHung,
    PlayerUpdate,
    ScheduleChanged,
    StopCommand,
    Tick,
)
from agent.domain.core.lifecycle import finish
from agent.domain.core.state import CoreState
from agent.domain.planner import Occurrence
from agent.domain.records import utc_text
from agent.domain.schedule import Course


class Core(CoreState):
    """The playback core: events in, actions out, no I/O (built like ``CoreState``).

    Tests drive it with a ``FakeClock`` and no threads; pass ``new_id`` to get predictable
    record ids.
    """

    def handle(self, event: object) -> list[Action]:
        """Apply ``event``; the actions are for the runtime to carry out in order."""
        out: list[Action] = []
        match event:
            case Tick():
                self._tick(out)
            case PlayerUpdate():
                playback.on_player_update(self, event, out)
                self._tick(out)
            case MediaRejected():
                playback.on_media_rejected(self, event, out)
            case ClockJump():
                planning.on_clock_jump(self, event, out)
                self._tick(out)
            case PlayerHung():
                playback.on_player_hung(self, event, out)
            case ClockSync():
                self.synced = event.synced
                self.advance_lkg()
            case ScheduleChanged():
                self.layers = dict(event.layers)
                self.since.update(event.since)
                self.cached_plan = None
                self.drop_preroll(out)
                self._tick(out)
            case LibraryChanged():
                self.library = dict(event.courses)
            case PlayCommand():
                commands.play_command(self, event, out)
            case StopCommand():
                commands.stop_command(self, event, out)
            case AttendanceSet():
                cur = self.current
                if cur is not None and cur.record.record_id == event.record_id:
                    cur.record.attendance = event.attendance
                    cur.record.rev = event.rev
            case _:
                raise TypeError(f"unknown event {event!r}")
        return out

    def restore_alarms(self, open_alarms: Iterable[str]) -> list[Action]:
        """Take over the core's alarms left open by the previous run (see ``escalation``)."""
        return escalation.restore_alarms(self, open_alarms)

    def interrupt_current(self, reason: str) -> list[Action]:
        """On a clean stop: close what is playing as interrupted (it resumes at the next start)."""
        out: list[Action] = []
        if self.current is not None:
            finish(self, self.current, "interrupted", reason, out)
        self.drop_preroll(out)
        return out

    def next_wakeup(self) -> float:
        """Wall time of the next thing that must happen on time (the runtime also ticks each second)."""
        return planning.next_wakeup(self)

    def next_deadline(self) -> float:
        """Wall time the core next needs a Tick at; ``inf`` when only an event can change it."""
        return planning.next_deadline(self)

    def upcoming(self, count: int = 3) -> list[Occurrence]:
        """The next occurrences still to play, for the status."""
        return planning.upcoming(self, count)

    def playing(self) -> dict[str, Any] | None:
        """What is playing, for the status (None when nothing is)."""
        cur = self.current
        if cur is None:
            return None
        return {
            "record_id": cur.record.record_id,
            "course_id": cur.course.id,
            "title": cur.course.title,
            "trigger": cur.record.trigger,
            "phase": cur.phase.value,
            "position": round(cur.position, 1),
            "length": round(cur.length, 1),
        }

    def find_course(self, course_id: str) -> Course | None:
        """The course with this id: the schedule's, the terminal's layer first, else the
        library's."""
        return commands.find_course(self, course_id)

    def _tick(self, out: list[Action]) -> None:
        now = self.clock.wall()
        mono = self.clock.monotonic()
        self._note_hold(planning.hold_reason(self, now), now, out)
        playback.watch_current(self, mono, out)
        if self.held_reason is None:
            planning.run_plan(self, now, out)
        if (
            self.current is None
            and self.prerolled is None
            and self.player_loaded
            and mono - self.idle_since_mono > self.s.idle_unload_s
        ):
            self.player_loaded = False
            out.append(UnloadPlayer())

    def _note_hold(self, held: str | None, now: float, out: list[Action]) -> None:
        """Log when scheduled courses go on hold for the clock, and when they resume."""
        if held == self.held_reason:
            return
        if held:
            out.append(
                Log(
                    "warning",
                    "clock_hold",
                    f"Scheduled courses are on hold: {held}",
                    {"wall": utc_text(now)},
                )
            )
        else:
            out.append(Log("info", "clock_ok", "The clock is plausible again; schedule resumes"))
        self.held_reason = held
