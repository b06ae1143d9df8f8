"""The core: all playback state and decisions, as pure logic.

It reads only its injected clock, takes events and returns actions; it never touches VLC,
SQLite, sockets or files (the runtime does, in that order, before the next event). Tests drive
it with a FakeClock and no threads, in the manner of h11.

Record lifecycle: a record is saved (action SaveRecord) *before* the player is told to start;
progress is checkpointed at a bounded interval; every occurrence ends in exactly one final
outcome: completed, stopped, error, interrupted (set at the next start after a crash),
skipped (media missing/damaged) or missed (not played, with the reason).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.domain.clockrules import IMPLAUSIBLE, Clock, clock_state, next_lkg
from agent.domain.planner import LAYER_RANK, Occurrence, Plan, plan
from agent.domain.records import NOT_RESUMABLE, Record, utc_text
from agent.domain.schedule import Course, ScheduleDoc, is_url

# -- settings --------------------------------------------------------------------------------


@dataclass
class CoreSettings:
    terminal: str
    boot_id: str
    grace_s: float = 600.0
    default_slot_s: float = 3600.0
    checkpoint_s: float = 60.0
    preroll_s: float = 5.0
    start_timeout_s: float = 20.0
    stall_s: float = 15.0
    retries: int = 2
    retry_delay_s: float = 10.0
    require_synced_clock: bool = False
    lookback_s: float = 48 * 3600.0
    on_demand_priority: int = 50
    horizon_s: float = 36 * 3600.0
    idle_unload_s: float = 120.0  # release libvlc after this long with nothing to play
    # Escalation when playback keeps failing (each step logged and raised as an alarm):
    quarantine_after: int = 2  # errors of the same media in a row -> quarantine it
    quarantine_s: float = 1800.0
    restart_player_after: int = 3  # errors in a row, any media -> restart libvlc
    restart_process_after: int = 6  # errors in a row -> exit so systemd restarts us
    max_player_restarts: int = 5  # per boot
    process_restarts_left: int = 2  # per boot (the runtime counts them on disk)
    # How far an unsynchronised clock may push the last-known-good time beyond what has really
    # elapsed (monotonic) since it was last set: a wrong future clock cannot run away with it.
    max_lkg_step_s: float = 3600.0


# -- events ----------------------------------------------------------------------------------


@dataclass
class Tick:
    """Time passes. The runtime sends one at least every second and at every wakeup."""


@dataclass
class ClockJump:
    delta_s: float  # wall minus monotonic drift since the previous tick (+ forward)


@dataclass
class ClockSync:
    """The kernel's word on the clock (read every minute and at every jump)."""

    synced: bool | None


@dataclass
class PlayerUpdate:
    token: str
    kind: str  # ready | playing | progress | ended | error | stopped
    wall: float
    mono: float
    position: float = 0.0
    length: float = 0.0
    detail: str = ""


@dataclass
class MediaRejected:
    token: str
    reason: str  # missing | unreadable | checksum | bad_path
    message: str


@dataclass
class PlayerHung:
    """The player worker has been stuck in one libvlc call for too long."""

    seconds: float


@dataclass
class ScheduleChanged:
    layers: dict[str, ScheduleDoc]
    since: dict[str, float]  # layer -> wall time it was applied


@dataclass
class PlayCommand:
    course_id: str | None
    media: str | None
    title: str | None
    trigger: str  # admin | remote
    priority: int | None = None


@dataclass
class StopCommand:
    trigger: str


# -- actions ---------------------------------------------------------------------------------


@dataclass
class SaveRecord:
    record: Record
    new: bool


@dataclass
class Checkpoint:
    record_id: str
    position: float
    played: float
    completion: float


@dataclass
class Preroll:
    token: str
    media: str
    sha256: str | None
    start_at: float


@dataclass
class Start:
    token: str


@dataclass
class Play:
    token: str
    media: str
    sha256: str | None
    start_at: float


@dataclass
class Stop:
    token: str


@dataclass
class UnloadPlayer:
    pass


@dataclass
class RestartPlayer:
    """Throw the libvlc instance (and its worker) away and start a fresh one."""

    reason: str


@dataclass
class ExitProcess:
    """Last resort: exit non-zero so systemd starts a fresh process."""

    reason: str


@dataclass
class Alarm:
    name: str
    action: str  # raised | cleared
    severity: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Log:
    level: str  # info | warning | error
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    """The answer to a command event (the runtime hands it back to whoever asked)."""

    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)


Action = (
    SaveRecord
    | Checkpoint
    | Preroll
    | Start
    | Play
    | Stop
    | UnloadPlayer
    | RestartPlayer
    | ExitProcess
    | Alarm
    | Log
    | Reply
)


# -- state -----------------------------------------------------------------------------------


@dataclass
class History:
    """What is known about an occurrence from the store (or from this run)."""

    outcome: str | None
    record_id: str
    position: float = 0.0


@dataclass
class Session:
    token: str
    record: Record
    course: Course
    rank: tuple[int, int]
    occ: Occurrence | None = None
    phase: str = "prerolling"  # prerolling | ready | starting | playing | retry_wait
    start_at: float = 0.0  # media position to start from (resume)
    requested_mono: float = 0.0
    mark_mono: float | None = None  # last time played seconds were accounted
    advance_mono: float = 0.0  # last time the position moved
    position: float = 0.0
    max_position: float = 0.0
    length: float = 0.0
    checkpoint_mono: float = 0.0
    attempts: int = 0
    retry_at_mono: float = 0.0


FINAL_NOT_RESUMABLE = NOT_RESUMABLE


class Core:
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
    ) -> None:
        self.s = settings
        self.clock = clock
        self.layers = dict(layers)
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
        self._advance_lkg()
        self.started_wall = now
        self.jumps: list[tuple[float, float]] = []
        self.current: Session | None = None
        self.prerolled: Session | None = None
        self.cold_start_key: str | None = None  # its preroll failed: open it at the slot
        self._plan: Plan | None = None
        self._plan_window = (0.0, 0.0)
        self._held_reason: str | None = None
        self.idle_since_mono = clock.monotonic()
        self.player_loaded = False
        # escalation state (per process; the process-restart budget comes from the runtime)
        self.errors_in_row = 0
        self.media_errors: dict[str, int] = {}
        self.quarantine: dict[str, float] = {}  # media -> monotonic time it is allowed again
        self.player_restarts = 0
        self.active_alarms: set[str] = set()

    # -- public ----------------------------------------------------------------------------

    def handle(self, event: object) -> list[Action]:
        out: list[Action] = []
        match event:
            case Tick():
                self._tick(out)
            case PlayerUpdate():
                self._player(event, out)
                self._tick(out)
            case MediaRejected():
                self._media_rejected(event, out)
            case ClockJump():
                self._jump(event, out)
                self._tick(out)
            case PlayerHung():
                self._player_hung(event, out)
            case ClockSync():
                self.synced = event.synced
                self._advance_lkg()
            case ScheduleChanged():
                self.layers = dict(event.layers)
                self.since.update(event.since)
                self._plan = None
                self._drop_preroll(out)
                self._tick(out)
            case PlayCommand():
                self._play_command(event, out)
            case StopCommand():
                self._stop_command(event, out)
            case _:
                raise TypeError(f"unknown event {event!r}")
        return out

    def restore_alarms(self, open_alarms: Iterable[str]) -> list[Action]:
        """Take over the core's alarms left open by the previous run, and re-judge each.

        ``playback_failing`` stays raised until a course completes (its condition is only known
        then). ``player_restarted`` and ``media_quarantined`` describe the previous process (its
        libvlc instance, its in-memory quarantine): that is gone, so they are cleared now.
        """
        out: list[Action] = []
        for name in open_alarms:
            if name == "playback_failing":
                self.active_alarms.add(name)
            elif name in ("player_restarted", "media_quarantined"):
                self.active_alarms.add(name)
                self._clear(name, out, reason="the agent restarted; a fresh start cleared it")
        return out

    def interrupt_current(self, reason: str) -> list[Action]:
        """On a clean stop: close what is playing as interrupted (it resumes at the next start)."""
        out: list[Action] = []
        if self.current is not None:
            self._finish(self.current, "interrupted", reason, out)
        self._drop_preroll(out)
        return out

    def clock_state(self) -> str:
        return clock_state(self.clock.wall(), self.lkg, self.synced)

    def _advance_lkg(self) -> None:
        """Move the last-known-good time by the rules in ``agent.adapters.kernel_clock.next_lkg``."""
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

    def next_wakeup(self) -> float:
        """Wall time of the next thing that must happen on time (the runtime also ticks each second)."""
        now = self.clock.wall()
        best = now + 1.0
        p = self._ensure_plan(now)
        for occ in p.occurrences:
            if occ.start + 0.0005 < now:
                continue
            if self._handled(occ.key):
                continue
            for t in (occ.start - self.s.preroll_s, occ.start):
                if t > now:
                    best = min(best, t)
            break
        return best

    def upcoming(self, count: int = 3) -> list[Occurrence]:
        now = self.clock.wall()
        p = self._ensure_plan(now)
        return [o for o in p.occurrences if o.end > now and not self._handled(o.key)][:count]

    def playing(self) -> dict[str, Any] | None:
        cur = self.current
        if cur is None:
            return None
        return {
            "record_id": cur.record.record_id,
            "course_id": cur.course.id,
            "title": cur.course.title,
            "trigger": cur.record.trigger,
            "phase": cur.phase,
            "position": round(cur.position, 1),
            "length": round(cur.length, 1),
        }

    # -- planning --------------------------------------------------------------------------

    def _ensure_plan(self, now: float) -> Plan:
        lo, hi = self._plan_window
        if (
            self._plan is None
            or now < lo + self.s.lookback_s - 1
            or now > hi - self.s.horizon_s / 2
        ):
            lo = now - self.s.lookback_s
            hi = now + self.s.horizon_s
            self._plan = plan(self.layers, lo, hi, self.s.default_slot_s, self.durations)
            self._plan_window = (lo, hi)
            self._prune_history(self._plan)
        return self._plan

    def _prune_history(self, p: Plan) -> None:
        """Forget occurrences outside the plan window: only those in it are ever looked up."""
        keep = {o.key for o in p.occurrences} | {o.key for o, _ in p.suppressed}
        for session in (self.current, self.prerolled):
            if session is not None and session.occ is not None:
                keep.add(session.occ.key)
        for key in [k for k in self.history if k not in keep]:
            del self.history[key]

    def _handled(self, key: str) -> bool:
        h = self.history.get(key)
        if h is None:
            return False
        if self.current and self.current.occ and self.current.occ.key == key:
            return True
        return h.outcome in FINAL_NOT_RESUMABLE or h.outcome is None or h.outcome == "ignored"

    def _hold_reason(self, now: float) -> str | None:
        state = clock_state(now, self.lkg, self.synced)
        if state == IMPLAUSIBLE:
            return (
                "the clock is implausible (earlier than the last known good time or this release)"
            )
        if self.s.require_synced_clock and not self.synced:
            return "the clock is not synchronised and the config requires it"
        return None

    def _tick(self, out: list[Action]) -> None:
        now = self.clock.wall()
        mono = self.clock.monotonic()
        held = self._hold_reason(now)
        if held != self._held_reason:
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
                out.append(
                    Log("info", "clock_ok", "The clock is plausible again; schedule resumes")
                )
            self._held_reason = held
        self._watch_current(now, mono, out)
        if held is None:
            self._run_plan(now, out)
        if (
            self.current is None
            and self.prerolled is None
            and self.player_loaded
            and mono - self.idle_since_mono > self.s.idle_unload_s
        ):
            self.player_loaded = False
            out.append(UnloadPlayer())

    def _run_plan(self, now: float, out: list[Action]) -> None:
        p = self._ensure_plan(now)
        for occ, by in p.suppressed:
            if occ.start <= now and occ.key not in self.history and self._responsible(occ):
                self._missed(
                    occ, f"overlapped by {by.item.id} ({by.layer}, priority {by.priority})", out
                )
        for occ in p.occurrences:
            if occ.start - self.s.preroll_s > now:
                break
            if self._handled(occ.key):
                continue
            if (
                self.current is not None
                and self.current.occ is not None
                and self.current.occ.key == occ.key
            ):
                continue
            if occ.start > now:
                if (
                    self.current is None
                    and self.prerolled is None
                    and occ.key != self.cold_start_key
                ):
                    self._preroll(occ, out)
                continue
            self._due(occ, now, out)

    def _responsible(self, occ: Occurrence) -> bool:
        since = max(self.responsible_since, self.since.get(occ.layer, 0.0))
        return occ.start >= since - 1.0 and occ.start >= self.clock.wall() - self.s.lookback_s

    def _due(self, occ: Occurrence, now: float, out: list[Action]) -> None:
        hist = self.history.get(occ.key)
        lateness = now - occ.start
        resumable = hist is not None and hist.outcome == "interrupted"
        if now >= occ.end and not resumable:
            if hist is None and self._responsible(occ):
                self._missed(occ, self._missed_reason(occ), out)
            elif hist is None:
                self.history[occ.key] = History("ignored", "")
            return
        if now >= occ.end:
            return
        if not resumable and lateness > self.s.grace_s:
            if self._responsible(occ) or occ.start >= self.since.get(occ.layer, 0.0):
                self._missed(occ, self._missed_reason(occ), out)
            else:
                self.history[occ.key] = History("ignored", "")
            return
        cur = self.current
        if cur is not None:
            if occ.rank > cur.rank:
                self._finish(
                    cur,
                    "stopped",
                    f"preempted by {occ.item.id} ({occ.layer}, priority {occ.priority})",
                    out,
                )
            else:
                self._missed(occ, f"{cur.course.id} ({cur.record.trigger}) was still playing", out)
                return
        start_at = hist.position if resumable and hist else 0.0
        resumed_from = hist.record_id if resumable and hist else None
        pre = self.prerolled
        if pre is not None and pre.occ is not None and pre.occ.key == occ.key and not resumable:
            self.prerolled = None
            session = pre
            self._open_record(session, out)
            session.phase = "starting"
            session.requested_mono = self.clock.monotonic()
            out.append(Start(session.token))
        else:
            self._drop_preroll(out)
            session = self._new_session(occ.item.course, occ.rank, "schedule", occ)
            session.record.resumed_from = resumed_from
            session.start_at = start_at
            session.position = session.max_position = start_at
            session.record.position = start_at
            self._open_record(session, out)
            self._play(session, out)
        if lateness > 1.0:
            what = "resumed" if resumable else "started late"
            out.append(
                Log(
                    "info",
                    "late_start",
                    f"{occ.item.course.title}: {what} ({lateness:.0f} s after its slot)",
                    {"occurrence": occ.key, "position": start_at},
                )
            )

    def _missed_reason(self, occ: Occurrence) -> str:
        for before, after in self.jumps:
            lo, hi = min(before, after), max(before, after)
            if lo <= occ.start <= hi:
                return "the clock jumped over this slot"
        if occ.start < self.started_wall:
            return "the agent was not running (terminal off or restarting)"
        return f"started too late (more than {self.s.grace_s / 60:.0f} min after the slot)"

    # -- sessions and records ----------------------------------------------------------------

    def _new_session(
        self, course: Course, rank: tuple[int, int], trigger: str, occ: Occurrence | None
    ) -> Session:
        rec = Record(
            record_id=str(uuid.uuid4()),
            seq=0,
            terminal=self.s.terminal,
            course_id=course.id,
            title=course.title,
            media=course.media,
            trigger=trigger,
            clock_state=self.clock_state(),
            boot_id=self.s.boot_id,
            occurrence_key=occ.key if occ else None,
            schedule_layer=occ.layer if occ else None,
            schedule_version=occ.version if occ else None,
            item_id=occ.item.id if occ else None,
            planned_start=utc_text(occ.start) if occ else None,
        )
        return Session(token=rec.record_id, record=rec, course=course, rank=rank, occ=occ)

    def _open_record(self, session: Session, out: list[Action]) -> None:
        session.record.seq = self._take_seq()
        session.record.clock_state = self.clock_state()
        self.current = session
        if session.occ is not None:
            self.history[session.occ.key] = History(None, session.record.record_id)
        out.append(SaveRecord(session.record, new=True))
        session.checkpoint_mono = self.clock.monotonic()

    def _take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def _quarantined(self, media: str) -> float | None:
        until = self.quarantine.get(media)
        if until is None:
            return None
        left = until - self.clock.monotonic()
        if left <= 0:
            del self.quarantine[media]
            self.media_errors.pop(media, None)
            return None
        return left

    def _skip_if_quarantined(self, session: Session, out: list[Action], *, opened: bool) -> bool:
        """A media in quarantine is not even opened: the session is recorded ``skipped``."""
        left = self._quarantined(session.course.media)
        if left is None:
            return False
        if not opened:
            self._open_record(session, out)
        reason = f"quarantined: this media failed repeatedly; retried again in {left / 60:.0f} min"
        self._finish(session, "skipped", reason, out)
        return True

    def _preroll(self, occ: Occurrence, out: list[Action]) -> None:
        session = self._new_session(occ.item.course, occ.rank, "schedule", occ)
        if self._skip_if_quarantined(session, out, opened=False):
            return
        self.prerolled = session
        self.player_loaded = True
        out.append(Preroll(session.token, occ.item.course.media, occ.item.course.sha256, 0.0))

    def _drop_preroll(self, out: list[Action]) -> None:
        if self.prerolled is not None:
            out.append(Stop(self.prerolled.token))
            self.prerolled = None

    def _play(self, session: Session, out: list[Action]) -> None:
        if self._skip_if_quarantined(session, out, opened=True):
            return
        session.phase = "starting"
        session.requested_mono = self.clock.monotonic()
        self.player_loaded = True
        out.append(
            Play(session.token, session.course.media, session.course.sha256, session.start_at)
        )

    def _missed(self, occ: Occurrence, reason: str, out: list[Action]) -> None:
        rec = self._new_session(occ.item.course, occ.rank, "schedule", occ).record
        rec.seq = self._take_seq()
        rec.outcome = "missed"
        rec.reason = reason
        rec.ended_at = utc_text(self.clock.wall())
        self.history[occ.key] = History("missed", rec.record_id)
        out.append(SaveRecord(rec, new=True))
        out.append(
            Log(
                "warning",
                "missed",
                f"{occ.item.course.title} at {utc_text(occ.start)} was missed: {reason}",
                {"record_id": rec.record_id, "occurrence": occ.key},
            )
        )

    def _account(self, session: Session, mono: float) -> None:
        if session.mark_mono is not None:
            session.record.played_seconds += max(0.0, mono - session.mark_mono)
            session.mark_mono = mono

    def _completion(self, session: Session) -> float:
        if session.length <= 0:
            return 0.0
        return min(1.0, session.max_position / session.length)

    def _finish(
        self,
        session: Session,
        outcome: str,
        reason: str | None,
        out: list[Action],
        completed_fully: bool = False,
    ) -> None:
        mono = self.clock.monotonic()
        self._account(session, mono)
        session.mark_mono = None
        rec = session.record
        rec.outcome = outcome
        rec.reason = reason
        rec.ended_at = utc_text(self.clock.wall())
        rec.position = round(session.max_position, 3)
        rec.media_duration = round(session.length, 3) if session.length > 0 else rec.media_duration
        rec.completion = 1.0 if completed_fully else round(self._completion(session), 4)
        rec.played_seconds = round(rec.played_seconds, 3)
        state = self.clock_state()
        if state != "synced" and rec.clock_state == "synced" or state == IMPLAUSIBLE:
            rec.clock_state = state
        rec.rev += 1
        if session.length > 0 and self.durations.get(session.course.id) != session.length:
            self.durations[session.course.id] = session.length
            self._plan = None
        if session.occ is not None:
            self.history[session.occ.key] = History(outcome, rec.record_id, rec.position)
        if self.current is session:
            self.current = None
            self.idle_since_mono = mono
            if not completed_fully:  # the player may still be playing (a cap, a stop, an error)
                out.append(Stop(session.token))
        out.append(SaveRecord(rec, new=False))
        if outcome == "error":
            self._escalate(session, reason or "error", out)
        elif outcome == "completed":
            self._recovered(session, out)
        level = "info" if outcome == "completed" else "warning"
        out.append(
            Log(
                level,
                f"record_{outcome}",
                f"{rec.title}: {outcome}" + (f" ({reason})" if reason else ""),
                {
                    "record_id": rec.record_id,
                    "completion": rec.completion,
                    "played_seconds": rec.played_seconds,
                },
            )
        )

    def _fail(self, session: Session, reason: str, out: list[Action]) -> None:
        mono = self.clock.monotonic()
        self._account(session, mono)
        session.mark_mono = None
        if session.attempts < self.s.retries:
            session.attempts += 1
            session.phase = "retry_wait"
            session.retry_at_mono = mono + self.s.retry_delay_s
            session.start_at = session.max_position
            out.append(Stop(session.token))
            out.append(
                Log(
                    "warning",
                    "playback_retry",
                    f"{session.course.title}: {reason}; retry {session.attempts} of {self.s.retries} in {self.s.retry_delay_s:.0f} s",
                    {"record_id": session.record.record_id},
                )
            )
            return
        self._finish(session, "error", reason, out)

    # -- escalation -------------------------------------------------------------------------

    def _raise(self, name: str, severity: str, detail: dict[str, Any], out: list[Action]) -> None:
        self.active_alarms.add(name)
        out.append(Alarm(name, "raised", severity, detail))

    def _clear(self, name: str, out: list[Action], reason: str | None = None) -> None:
        if name in self.active_alarms:
            self.active_alarms.discard(name)
            out.append(Alarm(name, "cleared", "info", {"reason": reason} if reason else {}))

    def _escalate(self, session: Session, reason: str, out: list[Action]) -> None:
        """Playback ended in error: quarantine the media, restart libvlc, restart the process."""
        self.errors_in_row += 1
        media = session.course.media
        self.media_errors[media] = self.media_errors.get(media, 0) + 1
        if self.media_errors[media] >= self.s.quarantine_after and media not in self.quarantine:
            self.quarantine[media] = self.clock.monotonic() + self.s.quarantine_s
            detail = {
                "media": media,
                "errors": self.media_errors[media],
                "minutes": round(self.s.quarantine_s / 60),
                "reason": reason,
            }
            out.append(
                Log(
                    "warning",
                    "media_quarantined",
                    f"{media} failed {self.media_errors[media]} times; not tried again for {self.s.quarantine_s / 60:.0f} min",
                    detail,
                )
            )
            self._raise("media_quarantined", "warning", detail, out)
        n = self.errors_in_row
        if n >= self.s.restart_process_after and n % self.s.restart_process_after == 0:
            if self.s.process_restarts_left > 0:
                self.s.process_restarts_left -= 1
                self._raise(
                    "playback_failing",
                    "critical",
                    {"errors_in_row": n, "step": "restart_process"},
                    out,
                )
                out.append(
                    Log(
                        "error", "escalation", f"{n} playback errors in a row: restarting the agent"
                    )
                )
                out.append(ExitProcess(f"{n} playback errors in a row"))
                return
            self._raise(
                "playback_failing", "critical", {"errors_in_row": n, "step": "gave_up"}, out
            )
            out.append(
                Log(
                    "error",
                    "escalation",
                    f"{n} playback errors in a row; restart budget for this boot used up",
                )
            )
            return
        if n >= self.s.restart_player_after and n % self.s.restart_player_after == 0:
            self._restart_player(f"{n} playback errors in a row", out)

    def _restart_player(self, reason: str, out: list[Action]) -> None:
        if self.player_restarts >= self.s.max_player_restarts:
            out.append(
                Log(
                    "error",
                    "escalation",
                    f"not restarting libvlc again ({reason}): {self.player_restarts} restarts this run",
                )
            )
            return
        self.player_restarts += 1
        # A preroll sent to the old player dies with it: prepare the slot again on the new one.
        self._drop_preroll(out)
        self._raise(
            "player_restarted", "warning", {"reason": reason, "restarts": self.player_restarts}, out
        )
        out.append(Log("warning", "escalation", f"restarting libvlc ({reason})"))
        out.append(RestartPlayer(reason))

    def _recovered(self, session: Session, out: list[Action]) -> None:
        self.errors_in_row = 0
        self.media_errors.pop(session.course.media, None)
        self._clear("playback_failing", out)
        self._clear("player_restarted", out)
        if not self.quarantine:
            self._clear("media_quarantined", out)

    def _player_hung(self, ev: PlayerHung, out: list[Action]) -> None:
        self._restart_player(f"libvlc did not answer for {ev.seconds:.0f} s", out)
        self.prerolled = None
        cur = self.current
        if cur is not None:
            # the old worker is gone with its events; the session retries on the new player
            cur.token = f"{cur.record.record_id}#hung{self.player_restarts}"
            self._fail(cur, f"the player hung for {ev.seconds:.0f} s", out)

    # -- watching the current session ------------------------------------------------------

    def _watch_current(self, now: float, mono: float, out: list[Action]) -> None:
        cur = self.current
        if cur is None:
            return
        if cur.phase == "retry_wait":
            if mono >= cur.retry_at_mono:
                # A new token per attempt: late events from the failed attempt are ignored.
                cur.token = f"{cur.record.record_id}#{cur.attempts}"
                self._play(cur, out)
            return
        if (
            cur.phase in ("starting", "prerolling")
            and mono - cur.requested_mono > self.s.start_timeout_s
        ):
            self._fail(cur, f"did not start within {self.s.start_timeout_s:.0f} s", out)
            return
        if cur.phase == "playing":
            self._account(cur, mono)
            if mono - cur.advance_mono > self.s.stall_s:
                self._fail(cur, f"stalled: no progress for {self.s.stall_s:.0f} s", out)
                return
            cap = cur.course.max_minutes
            if cap is not None and cur.max_position >= cap * 60.0:
                self._finish(cur, "completed", "reached the course's duration cap", out)
                return
            if mono - cur.checkpoint_mono >= self.s.checkpoint_s:
                cur.checkpoint_mono = mono
                rec = cur.record
                rec.position = round(cur.max_position, 3)
                rec.completion = round(self._completion(cur), 4)
                out.append(
                    Checkpoint(
                        rec.record_id,
                        rec.position,
                        round(rec.played_seconds, 3),
                        rec.completion,
                    )
                )

    def _player(self, ev: PlayerUpdate, out: list[Action]) -> None:
        pre = self.prerolled
        if pre is not None and ev.token == pre.token:
            if ev.kind == "ready":
                pre.phase = "ready"
            elif ev.kind in ("error", "ended"):
                # An error, or a media that ends while still paused (empty, or too short to
                # play): forget the preroll, so the slot opens it cold and judges it then.
                detail = ev.detail or "the media ended before it was started"
                out.append(
                    Log(
                        "warning",
                        "preroll_failed",
                        f"{pre.course.title}: preroll failed ({detail}); will start cold",
                    )
                )
                self.cold_start_key = pre.occ.key if pre.occ is not None else None
                self.prerolled = None
            return
        cur = self.current
        if cur is None or ev.token != cur.token:
            return
        if ev.kind == "playing":
            if cur.phase != "playing":
                cur.phase = "playing"
                cur.mark_mono = ev.mono
                cur.advance_mono = ev.mono
                if cur.record.started_at is None:
                    cur.record.started_at = utc_text(ev.wall)
                    out.append(SaveRecord(cur.record, new=False))
                    out.append(
                        Log(
                            "info",
                            "record_started",
                            f"{cur.course.title}: playing",
                            {"record_id": cur.record.record_id, "trigger": cur.record.trigger},
                        )
                    )
        elif ev.kind == "progress":
            if ev.length > 0:
                cur.length = ev.length
            if ev.position > cur.position + 0.05 or ev.position > cur.max_position:
                cur.advance_mono = ev.mono
            cur.position = ev.position
            cur.max_position = max(cur.max_position, ev.position)
        elif ev.kind == "ended":
            if ev.length > 0:
                cur.length = ev.length
            cur.max_position = max(cur.max_position, ev.position)
            if cur.length <= 0:
                self._fail(cur, "the media has no playable content (VLC found no duration)", out)
            else:
                cur.max_position = cur.length
                self._finish(cur, "completed", None, out, completed_fully=True)
        elif ev.kind == "error":
            self._fail(cur, ev.detail or "VLC reported an error", out)

    def _media_rejected(self, ev: MediaRejected, out: list[Action]) -> None:
        pre = self.prerolled
        if pre is not None and pre.token == ev.token:
            self.prerolled = None
            # Recorded at once: the slot will not play, and the county should know why.
            self._open_record(pre, out)
            self._finish(pre, "skipped", f"{ev.reason}: {ev.message}", out)
            return
        cur = self.current
        if cur is not None and cur.token == ev.token:
            self._finish(cur, "skipped", f"{ev.reason}: {ev.message}", out)

    def _jump(self, ev: ClockJump, out: list[Action]) -> None:
        now = self.clock.wall()
        if ev.delta_s > 0 and self.synced is not True:
            # An unverified clock leapt ahead: the slots it leapt over were not seen to pass,
            # so they are not reported as missed (a clock reading 2036 invents no backlog).
            self.responsible_since = max(self.responsible_since, now)
        self.jumps.append((now - ev.delta_s, now))
        self.jumps = self.jumps[-20:]
        self._plan = None
        if self.prerolled is not None and self.prerolled.occ is not None:
            occ = self.prerolled.occ
            if not (now - self.s.grace_s <= occ.start <= now + self.s.preroll_s):
                self._drop_preroll(out)
        out.append(
            Log(
                "warning",
                "clock_jump",
                f"The wall clock jumped by {ev.delta_s:+.1f} s; re-planning",
                {"delta_s": round(ev.delta_s, 3)},
            )
        )

    # -- commands --------------------------------------------------------------------------

    def find_course(self, course_id: str) -> Course | None:
        for layer in ("terminal", "county"):
            doc = self.layers.get(layer)
            if doc is not None:
                course = doc.course(course_id)
                if course is not None:
                    return course
        return None

    def _play_command(self, cmd: PlayCommand, out: list[Action]) -> None:
        course: Course | None = None
        if cmd.course_id:
            course = self.find_course(cmd.course_id)
            if course is None and not cmd.media:
                out.append(
                    Reply(
                        False,
                        f"no course {cmd.course_id!r} in the schedule",
                        {"error": "unknown_course"},
                    )
                )
                return
        if course is None:
            if not cmd.media:
                out.append(Reply(False, "give a course id or a media path", {"error": "bad_args"}))
                return
            from agent.domain.schedule import check_media

            problem = check_media(cmd.media)
            if problem:
                out.append(Reply(False, f"media {cmd.media!r} {problem}", {"error": "bad_media"}))
                return
            cid = cmd.course_id or "on-demand"
            course = Course(id=cid, title=cmd.title or cmd.media, media=cmd.media)
        priority = self.s.on_demand_priority if cmd.priority is None else cmd.priority
        rank = (LAYER_RANK["on_demand"], priority)
        cur = self.current
        if cur is not None:
            if rank < cur.rank:
                out.append(
                    Reply(
                        False,
                        f"{cur.course.title} has a higher priority and is playing",
                        {"error": "busy"},
                    )
                )
                return
            self._finish(cur, "stopped", f"replaced by {cmd.trigger} request for {course.id}", out)
        self._drop_preroll(out)
        session = self._new_session(course, rank, cmd.trigger, None)
        self._open_record(session, out)
        self._play(session, out)
        out.append(
            Reply(
                True,
                f"playing {course.title}",
                {
                    "record_id": session.record.record_id,
                    "course_id": course.id,
                    "url": is_url(course.media),
                },
            )
        )

    def _stop_command(self, cmd: StopCommand, out: list[Action]) -> None:
        cur = self.current
        if cur is None:
            out.append(Reply(True, "nothing was playing", {"stopped": None}))
            return
        rid = cur.record.record_id
        self._finish(cur, "stopped", f"stopped by {cmd.trigger}", out)
        out.append(Reply(True, f"stopped {cur.course.title}", {"stopped": rid}))
