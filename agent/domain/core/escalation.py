"""What the core does when playback keeps failing, and the alarms that say so.

Each error in a row climbs a ladder: the media that keeps failing is quarantined for a while,
then libvlc is restarted, then the process exits so that systemd starts a fresh one (within a
per-boot budget). A completed course resets the ladder and clears its alarms.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.domain.core.actions import Action, Alarm, ExitProcess, Log, RestartPlayer
from agent.domain.core.session import Session
from agent.domain.core.state import CoreState

# Alarms about the previous process (its libvlc instance, its in-memory quarantine).
_PER_PROCESS_ALARMS = ("player_restarted", "media_quarantined")


def raise_alarm(
    core: CoreState, name: str, severity: str, detail: dict[str, Any], out: list[Action]
) -> None:
    core.active_alarms.add(name)
    out.append(Alarm(name, "raised", severity, detail))


def clear_alarm(core: CoreState, name: str, out: list[Action], reason: str | None = None) -> None:
    """Clear ``name`` if the core raised it (or took it over at start); otherwise nothing."""
    if name in core.active_alarms:
        core.active_alarms.discard(name)
        out.append(Alarm(name, "cleared", "info", {"reason": reason} if reason else {}))


def restore_alarms(core: CoreState, open_alarms: Iterable[str]) -> list[Action]:
    """Take over the core's alarms left open by the previous run, and re-judge each.

    ``playback_failing`` stays raised until a course completes (its condition is only known
    then). ``player_restarted`` and ``media_quarantined`` describe the previous process (its
    libvlc instance, its in-memory quarantine): that is gone, so they are cleared now.
    """
    out: list[Action] = []
    for name in open_alarms:
        if name == "playback_failing":
            core.active_alarms.add(name)
        elif name in _PER_PROCESS_ALARMS:
            core.active_alarms.add(name)
            clear_alarm(core, name, out, reason="the agent restarted; a fresh start cleared it")
    return out


def quarantined(core: CoreState, media: str) -> float | None:
    """Seconds left in ``media``'s quarantine, or None (an expired one is lifted here)."""
    until = core.quarantine.get(media)
    if until is None:
        return None
    left = until - core.clock.monotonic()
    if left <= 0:
        del core.quarantine[media]
        core.media_errors.pop(media, None)
        return None
    return left


def escalate(core: CoreState, session: Session, reason: str, out: list[Action]) -> None:
    """Playback ended in error: quarantine the media, restart libvlc, restart the process."""
    core.errors_in_row += 1
    media = session.course.media
    core.media_errors[media] = core.media_errors.get(media, 0) + 1
    if core.media_errors[media] >= core.s.quarantine_after and media not in core.quarantine:
        _quarantine(core, media, reason, out)
    n = core.errors_in_row
    if n >= core.s.restart_process_after and n % core.s.restart_process_after == 0:
        _restart_process(core, n, out)
        return
    if n >= core.s.restart_player_after and n % core.s.restart_player_after == 0:
        restart_player(core, f"{n} playback errors in a row", out)


def _quarantine(core: CoreState, media: str, reason: str, out: list[Action]) -> None:
    core.quarantine[media] = core.clock.monotonic() + core.s.quarantine_s
    errors = core.media_errors[media]
    detail = {
        "media": media,
        "errors": errors,
        "minutes": round(core.s.quarantine_s / 60),
        "reason": reason,
    }
    out.append(
        Log(
            "warning",
            "media_quarantined",
            f"{media} failed {errors} times; not tried again for {core.s.quarantine_s / 60:.0f} min",
            detail,
        )
    )
    raise_alarm(core, "media_quarantined", "warning", detail, out)


def _restart_process(core: CoreState, n: int, out: list[Action]) -> None:
    """Exit so that systemd restarts the agent, while this boot's budget lasts."""
    if core.s.process_restarts_left > 0:
        core.s.process_restarts_left -= 1
        raise_alarm(
            core,
            "playback_failing",
            "critical",
            {"errors_in_row": n, "step": "restart_process"},
            out,
        )
        out.append(
            Log("error", "escalation", f"{n} playback errors in a row: restarting the agent")
        )
        out.append(ExitProcess(f"{n} playback errors in a row"))
        return
    raise_alarm(core, "playback_failing", "critical", {"errors_in_row": n, "step": "gave_up"}, out)
    out.append(
        Log(
            "error",
            "escalation",
            f"{n} playback errors in a row; restart budget for this boot used up",
        )
    )


def restart_player(core: CoreState, reason: str, out: list[Action]) -> None:
    """Ask for a fresh libvlc instance, at most ``max_player_restarts`` times a run."""
    if core.player_restarts >= core.s.max_player_restarts:
        out.append(
            Log(
                "error",
                "escalation",
                f"not restarting libvlc again ({reason}): {core.player_restarts} restarts this run",
            )
        )
        return
    core.player_restarts += 1
    # A preroll sent to the old player dies with it: prepare the slot again on the new one.
    core.drop_preroll(out)
    raise_alarm(
        core,
        "player_restarted",
        "warning",
        {"reason": reason, "restarts": core.player_restarts},
        out,
    )
    out.append(Log("warning", "escalation", f"restarting libvlc ({reason})"))
    out.append(RestartPlayer(reason))


def recovered(core: CoreState, session: Session, out: list[Action]) -> None:
    """A course completed: the ladder starts again from the bottom."""
    core.errors_in_row = 0
    core.media_errors.pop(session.course.media, None)
    clear_alarm(core, "playback_failing", out)
    clear_alarm(core, "player_restarted", out)
    if not core.quarantine:
        clear_alarm(core, "media_quarantined", out)
