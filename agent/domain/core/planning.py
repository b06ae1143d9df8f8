"""What is due when: the plan over a window, and what to do with each occurrence as time passes.

The plan (``agent.domain.planner``) covers ``lookback_s`` behind and ``horizon_s`` ahead and is
rebuilt when time leaves that window, the schedule changes, the clock jumps or a media length is
learned. Each tick walks it: prerolls the next occurrence, starts the one that is due, and
records as missed those that cannot be played, when this agent is answerable for them.
"""

from __future__ import annotations

import math

from agent.domain.clockrules import IMPLAUSIBLE, clock_state
from agent.domain.core.actions import Action, Log, Start
from agent.domain.core.events import ClockJump
from agent.domain.core.lifecycle import finish, missed, new_session, open_record
from agent.domain.core.playback import play, preroll
from agent.domain.core.session import History, Step
from agent.domain.core.state import CoreState
from agent.domain.planner import Occurrence, Plan, plan
from agent.domain.records import NOT_RESUMABLE


def ensure_plan(core: CoreState, now: float) -> Plan:
    """The plan around ``now``, rebuilt when it is missing or ``now`` nears its edges."""
    lo, hi = core.plan_window
    if (
        core.cached_plan is None
        or now < lo + core.s.lookback_s - 1
        or now > hi - core.s.horizon_s / 2
    ):
        lo = now - core.s.lookback_s
        hi = now + core.s.horizon_s
        core.cached_plan = plan(core.layers, lo, hi, core.s.default_slot_s, core.durations)
        core.plan_window = (lo, hi)
        _prune_history(core, core.cached_plan)
    return core.cached_plan


def _prune_history(core: CoreState, p: Plan) -> None:
    """Forget occurrences outside the plan window: only those in it are ever looked up."""
    keep = {o.key for o in p.occurrences} | {o.key for o, _ in p.suppressed}
    for session in (core.current, core.prerolled):
        if session is not None and session.occ is not None:
            keep.add(session.occ.key)
    for key in [k for k in core.history if k not in keep]:
        del core.history[key]


def handled(core: CoreState, key: str) -> bool:
    """Whether the occurrence needs nothing more (playing, final, or not ours)."""
    h = core.history.get(key)
    if h is None:
        return False
    if core.current and core.current.occ and core.current.occ.key == key:
        return True
    return h.outcome in NOT_RESUMABLE or h.outcome is None or h.outcome == "ignored"


def hold_reason(core: CoreState, now: float) -> str | None:
    """Why scheduled courses must not start now (a clock not to be trusted), or None."""
    state = clock_state(now, core.lkg, core.synced)
    if state == IMPLAUSIBLE:
        return "the clock is implausible (earlier than the last known good time or this release)"
    if core.s.require_synced_clock and not core.synced:
        return "the clock is not synchronised and the config requires it"
    return None


def next_wakeup(core: CoreState) -> float:
    """Wall time of the next thing that must happen on time (the runtime also ticks each second)."""
    now = core.clock.wall()
    best = now + 1.0
    p = ensure_plan(core, now)
    for occ in p.occurrences:
        if occ.start + 0.0005 < now:
            continue
        if handled(core, occ.key):
            continue
        for t in (occ.start - core.s.preroll_s, occ.start):
            if t > now:
                best = min(best, t)
        break
    return best


UPCOMING_LOOKED_AT = 8  # occurrences looked at for the next deadline (a few may have started)
PAST_STRICT_S = 0.01  # the core compares with ">": wake a little after the bound, not on it


def next_deadline(core: CoreState) -> float:
    """Wall time at which the core next needs a Tick; ``inf`` when only an event can change it.

    While something plays or is prerolled, or the clock is judged implausible, that is
    ``next_wakeup`` (at most a second away: checkpoints, stalls, timeouts, the cap, and the
    clock becoming plausible again need that pace). Idle, nothing changes with time alone until
    the idle player's unload, the next slot's preroll or start, or the grace or end of a slot
    that began but was not handled (on hold, say).
    """
    soon = next_wakeup(core)
    if core.current is not None or core.prerolled is not None:
        return soon
    if core.clock_state() == IMPLAUSIBLE:
        return soon
    now, mono = core.clock.wall(), core.clock.monotonic()
    best = math.inf
    if core.player_loaded:
        unload_in = core.idle_since_mono + core.s.idle_unload_s - mono
        best = now + max(0.0, unload_in) + PAST_STRICT_S
    for occ in upcoming(core, UPCOMING_LOOKED_AT):
        if occ.start > now:
            pre = occ.start - core.s.preroll_s
            return min(best, pre if pre > now else occ.start)
        for t in (occ.start + core.s.grace_s + PAST_STRICT_S, occ.end + PAST_STRICT_S):
            if t > now:
                best = min(best, t)
    return best


def upcoming(core: CoreState, count: int) -> list[Occurrence]:
    """The next ``count`` occurrences still to play (or playing)."""
    now = core.clock.wall()
    p = ensure_plan(core, now)
    return [o for o in p.occurrences if o.end > now and not handled(core, o.key)][:count]


def run_plan(core: CoreState, now: float, out: list[Action]) -> None:
    """Record overlapped occurrences as missed, preroll the next one, start the due ones."""
    p = ensure_plan(core, now)
    for occ, by in p.suppressed:
        if occ.start <= now and occ.key not in core.history and _responsible(core, occ):
            missed(
                core, occ, f"overlapped by {by.item.id} ({by.layer}, priority {by.priority})", out
            )
    for occ in p.occurrences:
        if occ.start - core.s.preroll_s > now:
            break
        if handled(core, occ.key):
            continue
        cur = core.current
        if cur is not None and cur.occ is not None and cur.occ.key == occ.key:
            continue
        if occ.start > now:
            if core.current is None and core.prerolled is None and occ.key != core.cold_start_key:
                preroll(core, occ, out)
            continue
        _due(core, occ, now, out)


def _responsible(core: CoreState, occ: Occurrence) -> bool:
    """Whether a missed ``occ`` is this agent's to report (it was running, the layer applied)."""
    since = max(core.responsible_since, core.since.get(occ.layer, 0.0))
    return occ.start >= since - 1.0 and occ.start >= core.clock.wall() - core.s.lookback_s


def _due(core: CoreState, occ: Occurrence, now: float, out: list[Action]) -> None:
    """``occ``'s slot has begun: start it (or resume it), or record why it will not play."""
    hist = core.history.get(occ.key)
    lateness = now - occ.start
    resumable = hist is not None and hist.outcome == "interrupted"
    if now >= occ.end and not resumable:
        if hist is None and _responsible(core, occ):
            missed(core, occ, _missed_reason(core, occ), out)
        elif hist is None:
            core.history[occ.key] = History("ignored", "")
        return
    if now >= occ.end:
        return
    if not resumable and lateness > core.s.grace_s:
        if _responsible(core, occ) or occ.start >= core.since.get(occ.layer, 0.0):
            missed(core, occ, _missed_reason(core, occ), out)
        else:
            core.history[occ.key] = History("ignored", "")
        return
    cur = core.current
    if cur is not None:
        if occ.rank > cur.rank:
            finish(
                core,
                cur,
                "stopped",
                f"preempted by {occ.item.id} ({occ.layer}, priority {occ.priority})",
                out,
            )
        else:
            missed(core, occ, f"{cur.course.id} ({cur.record.trigger}) was still playing", out)
            return
    start_at = hist.position if resumable and hist else 0.0
    pre = core.prerolled
    if pre is not None and pre.occ is not None and pre.occ.key == occ.key and not resumable:
        pre.check(Step.START)
        core.prerolled = None
        open_record(core, pre, out)
        pre.move(Step.START)
        pre.requested_mono = core.clock.monotonic()
        out.append(Start(pre.token))
    else:
        core.drop_preroll(out)
        session = new_session(core, occ.item.course, occ.rank, "schedule", occ)
        session.record.resumed_from = hist.record_id if resumable and hist else None
        session.start_at = start_at
        session.position = session.max_position = start_at
        session.record.position = start_at
        open_record(core, session, out)
        play(core, session, out)
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


def _missed_reason(core: CoreState, occ: Occurrence) -> str:
    for before, after in core.jumps:
        lo, hi = min(before, after), max(before, after)
        if lo <= occ.start <= hi:
            return "the clock jumped over this slot"
    if occ.start < core.started_wall:
        return "the agent was not running (terminal off or restarting)"
    return f"started too late (more than {core.s.grace_s / 60:.0f} min after the slot)"


def on_clock_jump(core: CoreState, ev: ClockJump, out: list[Action]) -> None:
    """Re-plan after a jump, and drop a preroll whose slot is no longer near."""
    now = core.clock.wall()
    if ev.delta_s > 0 and core.synced is not True:
        # An unverified clock leapt ahead: the slots it leapt over were not seen to pass,
        # so they are not reported as missed (a clock reading 2036 invents no backlog).
        core.responsible_since = max(core.responsible_since, now)
    core.jumps.append((now - ev.delta_s, now))
    core.jumps = core.jumps[-20:]
    core.cached_plan = None
    if core.prerolled is not None and core.prerolled.occ is not None:
        occ = core.prerolled.occ
        if not (now - core.s.grace_s <= occ.start <= now + core.s.preroll_s):
            core.drop_preroll(out)
    out.append(
        Log(
            "warning",
            "clock_jump",
            f"The wall clock jumped by {ev.delta_s:+.1f} s; re-planning",
            {"delta_s": round(ev.delta_s, 3)},
        )
    )
