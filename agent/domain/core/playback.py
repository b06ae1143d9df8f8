"""Driving sessions through their phases: preroll, start, watch, retry, and the player's reports.

Reports from the player are matched to a session by token; a report for no session, or one that
does not apply to the session's phase (late or repeated), is ignored. Moves the core makes
itself go through ``Session.move``, which refuses any the transition table does not hold.
"""

from __future__ import annotations

from agent.domain.core.actions import Action, Log, Play, Preroll, SaveRecord, Stop
from agent.domain.core.escalation import quarantined, restart_player
from agent.domain.core.events import MediaRejected, PlayerHung, PlayerUpdate
from agent.domain.core.lifecycle import account, checkpoint, finish, new_session, open_record
from agent.domain.core.session import Phase, Session, Step
from agent.domain.core.state import CoreState
from agent.domain.planner import Occurrence
from agent.domain.records import utc_text

# An end reported more than this short of the media's length is not a completion: the player
# jumped over part of the media, or the file stops before its length. The player holds an end
# that is only its buffer ahead (input caching) until the length, so a whole play is never short.
ENDED_SHORT_S = 2.0


def skip_if_quarantined(
    core: CoreState, session: Session, out: list[Action], *, opened: bool
) -> bool:
    """A media in quarantine is not even opened: the session is recorded ``skipped``."""
    left = quarantined(core, session.course.media)
    if left is None:
        return False
    if not opened:
        open_record(core, session, out)
    reason = f"quarantined: this media failed repeatedly; retried again in {left / 60:.0f} min"
    finish(core, session, "skipped", reason, out)
    return True


def preroll(core: CoreState, occ: Occurrence, out: list[Action]) -> None:
    """Open the next occurrence's media paused, so that it starts on the second."""
    session = new_session(core, occ.item.course, occ.rank, "schedule", occ)
    if skip_if_quarantined(core, session, out, opened=False):
        return
    core.prerolled = session
    core.player_loaded = True
    out.append(Preroll(session.token, occ.item.course.media, occ.item.course.sha256, 0.0))


def play(core: CoreState, session: Session, out: list[Action]) -> None:
    """Tell the player to open and play the (opened) session's media now."""
    session.check(Step.START)
    if skip_if_quarantined(core, session, out, opened=True):
        return
    session.move(Step.START)
    session.requested_mono = core.clock.monotonic()
    core.player_loaded = True
    out.append(Play(session.token, session.course.media, session.course.sha256, session.start_at))


def fail(core: CoreState, session: Session, reason: str, out: list[Action]) -> None:
    """An attempt failed: wait and retry from where it got to, or finish it as an error."""
    retry = session.attempts < core.s.retries
    session.check(Step.RETRY if retry else Step.FINISH)
    mono = core.clock.monotonic()
    account(session, mono)
    session.mark_mono = None
    if not retry:
        finish(core, session, "error", reason, out)
        return
    session.move(Step.RETRY)
    session.attempts += 1
    session.retry_at_mono = mono + core.s.retry_delay_s
    session.start_at = session.max_position
    out.append(Stop(session.token))
    out.append(
        Log(
            "warning",
            "playback_retry",
            f"{session.course.title}: {reason}; retry {session.attempts} of {core.s.retries} in {core.s.retry_delay_s:.0f} s",
            {"record_id": session.record.record_id},
        )
    )


def watch_current(core: CoreState, mono: float, out: list[Action]) -> None:
    """Retry when due, fail a start that never came or a stall, apply the cap, checkpoint."""
    cur = core.current
    if cur is None:
        return
    if cur.phase == Phase.RETRY_WAIT:
        if mono >= cur.retry_at_mono:
            # A new token per attempt: late events from the failed attempt are ignored.
            cur.token = f"{cur.record.record_id}#{cur.attempts}"
            play(core, cur, out)
        return
    if (
        cur.phase in (Phase.STARTING, Phase.PREROLLING)
        and mono - cur.requested_mono > core.s.start_timeout_s
    ):
        fail(core, cur, f"did not start within {core.s.start_timeout_s:.0f} s", out)
        return
    if cur.phase == Phase.PLAYING:
        account(cur, mono)
        if mono - cur.advance_mono > core.s.stall_s:
            fail(core, cur, f"stalled: no progress for {core.s.stall_s:.0f} s", out)
            return
        cap = cur.course.max_minutes
        if cap is not None and cur.max_position >= cap * 60.0:
            finish(core, cur, "completed", "reached the course's duration cap", out)
            return
        if mono - cur.checkpoint_mono >= core.s.checkpoint_s:
            cur.checkpoint_mono = mono
            checkpoint(cur, out)


def on_player_update(core: CoreState, ev: PlayerUpdate, out: list[Action]) -> None:
    """A report from the player, for the prerolled session or the current one."""
    pre = core.prerolled
    if pre is not None and ev.token == pre.token:
        _prerolled_update(core, pre, ev, out)
        return
    cur = core.current
    if cur is None or ev.token != cur.token:
        return
    if ev.kind == "playing":
        if cur.phase != Phase.PLAYING and cur.can(Step.PLAYING):
            _now_playing(cur, ev, out)
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
            fail(core, cur, "the media has no playable content (VLC found no duration)", out)
        elif cur.length - ev.position > ENDED_SHORT_S:
            # Not retried: the same file would be played short the same way again.
            short = f"the media ended at {ev.position:.1f} s of its {cur.length:.1f} s"
            finish(core, cur, "error", ev.detail or short, out)
        else:
            cur.max_position = cur.length
            finish(core, cur, "completed", None, out, completed_fully=True)
    elif ev.kind == "error":
        fail(core, cur, ev.detail or "VLC reported an error", out)


def _prerolled_update(core: CoreState, pre: Session, ev: PlayerUpdate, out: list[Action]) -> None:
    if ev.kind == "ready":
        if pre.can(Step.READY):  # a repeated "ready" changes nothing
            pre.move(Step.READY)
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
        core.cold_start_key = pre.occ.key if pre.occ is not None else None
        core.prerolled = None


def _now_playing(cur: Session, ev: PlayerUpdate, out: list[Action]) -> None:
    cur.move(Step.PLAYING)
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


def on_media_rejected(core: CoreState, ev: MediaRejected, out: list[Action]) -> None:
    """The media check refused a file: the session it was for is recorded ``skipped``."""
    pre = core.prerolled
    if pre is not None and pre.token == ev.token:
        core.prerolled = None
        # Recorded at once: the slot will not play, and the county should know why.
        open_record(core, pre, out)
        finish(core, pre, "skipped", f"{ev.reason}: {ev.message}", out)
        return
    cur = core.current
    if cur is not None and cur.token == ev.token:
        finish(core, cur, "skipped", f"{ev.reason}: {ev.message}", out)


def on_player_hung(core: CoreState, ev: PlayerHung, out: list[Action]) -> None:
    """libvlc stopped answering: restart it, and retry the current session on the new one."""
    restart_player(core, f"libvlc did not answer for {ev.seconds:.0f} s", out)
    core.prerolled = None
    cur = core.current
    if cur is not None:
        # the old worker is gone with its events; the session retries on the new player
        cur.token = f"{cur.record.record_id}#hung{core.player_restarts}"
        fail(core, cur, f"the player hung for {ev.seconds:.0f} s", out)
