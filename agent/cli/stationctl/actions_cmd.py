"""``stationctl play|stop|attendance``: actions, sent to the running agent over its socket.

When the agent is not running they say so, with since when, and change nothing.
"""

from __future__ import annotations

import os
from typing import Any

from agent.cli.i18n import _
from agent.cli.stationctl import labels
from agent.cli.stationctl.client import AgentUnavailable, request
from agent.cli.stationctl.common import (
    EXIT_FAIL,
    EXIT_FORBIDDEN,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_USAGE,
    SERVICE,
    CtlError,
    Ctx,
    add_common,
)

ACTION_TIMEOUT_S = 20.0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "play",
        help=_("play a course now (on-demand viewing)"),
        description=_("Play a course of the schedule now; recorded as on-demand viewing."),
    )
    add_common(p)
    p.add_argument("course", nargs="?", help=_("course id (see stationctl schedule)"))
    p.add_argument("--media", help=_("a media file under the content folder instead"))
    p.add_argument("--title", help=_("title to record with --media"))
    p.set_defaults(func=play)
    s = sub.add_parser("stop", help=_("stop what is playing"))
    add_common(s)
    s.set_defaults(func=stop)
    a = sub.add_parser(
        "attendance",
        help=_("enter how many people attended a session"),
        description=_(
            "Enter how many people attended a collective study session (the latest one shown, "
            "unless --record says which); it goes to the county with the viewing record."
        ),
    )
    add_common(a)
    a.add_argument("count", type=int, help=_("number of people"))
    a.add_argument(
        "--record", metavar="NO", help=_("record number (see stationctl records) or record id")
    )
    a.set_defaults(func=attendance)


def ask(ctx: Ctx, cmd: str, **params: Any) -> dict[str, Any]:
    """The agent's answer; CtlError (in the admin's language) when it cannot be asked."""
    try:
        answer = request(ctx.cfg.socket_path, cmd, timeout=ACTION_TIMEOUT_S, **params)
    except AgentUnavailable as exc:
        raise unavailable(ctx, exc.reason) from None
    if not answer.get("ok") and answer.get("error") == "forbidden":
        raise forbidden(ctx)
    return answer


def forbidden(ctx: Ctx) -> CtlError:
    from agent.cli.stationctl.client import user_name

    return CtlError(
        _("Permission denied: user {user} may not control the agent.").format(
            user=user_name(os.getuid())
        ),
        EXIT_FORBIDDEN,
        _(
            "Only root and members of the group {group} may. Use sudo, or ask the county "
            "technician to add you: usermod -aG {group} USER"
        ).format(group=ctx.cfg.admin_group),
    )


def unavailable(ctx: Ctx, reason: str) -> CtlError:
    if reason == "forbidden":
        return forbidden(ctx)
    if reason == "timeout":
        return CtlError(
            _("The agent is running but did not answer in time. Nothing was changed."),
            EXIT_NOT_RUNNING,
            _("Try again in a minute; if it keeps happening: systemctl restart {service}").format(
                service=SERVICE
            ),
        )
    message = _("The agent is not running. Nothing was changed.")
    if ctx.has_store():
        from agent.cli.stationctl.presence import last_sign_of_life, lifecycle

        try:
            life = lifecycle(ctx.store().db)
        except CtlError:
            life = {"kind": None}
        if life["kind"] == "agent_stopped":
            message = _(
                "The agent is not running (stopped since {when}). Nothing was changed."
            ).format(when=ctx.local(life["ts"]))
        elif life["kind"] == "agent_started":
            seen = last_sign_of_life(ctx.cfg.state_dir / "clock.lkg", life.get("last_event"))
            message = _(
                "The agent is not running (it stopped unexpectedly; last seen {when}). "
                "Nothing was changed."
            ).format(when=ctx.local(seen))
    return CtlError(
        message,
        EXIT_NOT_RUNNING,
        _("Start it with: systemctl start {service} (or restart the station PC).").format(
            service=SERVICE
        ),
    )


def _finish(ctx: Ctx, answer: dict[str, Any], text: str) -> int:
    if ctx.json:
        ctx.print_json(answer)
    else:
        ctx.print(text)
    return EXIT_OK if answer.get("ok") else EXIT_FAIL


def play(ctx: Ctx) -> int:
    args = ctx.args
    if not args.course and not args.media:
        raise CtlError(_("Give a course id (see stationctl schedule) or --media FILE."), EXIT_USAGE)
    answer = ask(ctx, "play", course=args.course, media=args.media, title=args.title)
    data = answer.get("data") or {}
    if answer.get("ok"):
        text = _("Playing {course} now (on-demand viewing, record {record}).").format(
            course=data.get("course_id") or args.course or args.media,
            record=str(data.get("record_id", "?"))[:8],
        )
    else:
        text = play_refusal(answer, args.course or args.media)
    return _finish(ctx, answer, text)


def play_refusal(answer: dict[str, Any], what: str) -> str:
    code = answer.get("error")
    if code == "unknown_course":
        return _(
            "There is no course {course} in the schedule. See the course ids with: stationctl schedule"
        ).format(course=what)
    if code == "busy":
        return _("Not now: a course with a higher priority is playing ({detail}).").format(
            detail=answer.get("message", "")
        )
    if code == "bad_media":
        return _("That media path cannot be used: {detail}").format(
            detail=answer.get("message", "")
        )
    return _("The agent refused: {detail}").format(detail=answer.get("message", code))


def stop(ctx: Ctx) -> int:
    answer = ask(ctx, "stop")
    data = answer.get("data") or {}
    if not answer.get("ok"):
        text = _("The agent refused: {detail}").format(detail=answer.get("message", ""))
    elif data.get("stopped"):
        text = _("Stopped (record {record}).").format(record=str(data["stopped"])[:8])
    else:
        text = _("Nothing was playing.")
    return _finish(ctx, answer, text)


def attendance(ctx: Ctx) -> int:
    args = ctx.args
    if args.count < 0:
        raise CtlError(_("The number of people cannot be negative."), EXIT_USAGE)
    answer = ask(ctx, "attendance", count=args.count, record=args.record)
    data = answer.get("data") or {}
    if answer.get("ok"):
        text = _("Attendance {n} entered for record {seq}: {title} ({when}).").format(
            n=data.get("attendance"),
            seq=data.get("seq"),
            title=data.get("title"),
            when=ctx.local(data.get("started_at")),
        )
        if data.get("previous") is not None:
            text += " " + _("It was {n} before.").format(n=data["previous"])
        if data.get("queued"):
            text += " " + _("It will be sent to the county with the record.")
        else:
            text += " " + _("It goes to the county when the course ends.")
    else:
        code = answer.get("error")
        if code == "no_record":
            text = (
                _("No such record: {ref}. See the numbers with: stationctl records").format(
                    ref=args.record
                )
                if args.record
                else _("No course has been shown yet, so there is no session to count.")
            )
        elif code == "ambiguous":
            text = _("{ref} matches several records; give more of the id or the number.").format(
                ref=args.record
            )
        elif code == "not_shown":
            text = _(
                "Record {seq} was never shown ({outcome}); attendance cannot be entered."
            ).format(seq=data.get("seq"), outcome=labels.outcome(data.get("outcome")))
        elif code == "bad_count":
            text = _("The number of people must be a whole number from 0 to 10000.")
        else:
            text = _("The agent refused: {detail}").format(detail=answer.get("message", code))
    return _finish(ctx, answer, text)
