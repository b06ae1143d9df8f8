"""Play and stop on request (an admin at the terminal, or the county over MQTT).

A command always gets exactly one ``Reply``. An on-demand play ranks in the ``on_demand`` layer:
it replaces what is playing only if that ranks no higher.
"""

from __future__ import annotations

from agent.domain.core.actions import Action, Reply
from agent.domain.core.events import PlayCommand, StopCommand
from agent.domain.core.lifecycle import finish, new_session, open_record
from agent.domain.core.playback import play
from agent.domain.core.state import CoreState
from agent.domain.planner import LAYER_RANK
from agent.domain.schedule import Course, check_media, is_url


def find_course(core: CoreState, course_id: str) -> Course | None:
    """The course with this id: the schedule's (the terminal's layer first), else the
    on-demand library's."""
    for layer in ("terminal", "county"):
        doc = core.layers.get(layer)
        if doc is not None:
            course = doc.course(course_id)
            if course is not None:
                return course
    return core.library.get(course_id)


def _course_for(core: CoreState, cmd: PlayCommand, out: list[Action]) -> Course | None:
    """The course the command names, or one made for its media path; None after a refusal."""
    course: Course | None = None
    if cmd.course_id:
        course = find_course(core, cmd.course_id)
        if course is None and not cmd.media:
            out.append(
                Reply(
                    False,
                    f"no course {cmd.course_id!r} in the schedule or the library",
                    {"error": "unknown_course"},
                )
            )
            return None
    if course is not None:
        return course
    if not cmd.media:
        out.append(Reply(False, "give a course id or a media path", {"error": "bad_args"}))
        return None
    problem = check_media(cmd.media)
    if problem:
        out.append(Reply(False, f"media {cmd.media!r} {problem}", {"error": "bad_media"}))
        return None
    cid = cmd.course_id or "on-demand"
    return Course(id=cid, title=cmd.title or cmd.media, media=cmd.media)


def play_command(core: CoreState, cmd: PlayCommand, out: list[Action]) -> None:
    course = _course_for(core, cmd, out)
    if course is None:
        return
    priority = core.s.on_demand_priority if cmd.priority is None else cmd.priority
    rank = (LAYER_RANK["on_demand"], priority)
    cur = core.current
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
        finish(core, cur, "stopped", f"replaced by {cmd.trigger} request for {course.id}", out)
    core.drop_preroll(out)
    session = new_session(core, course, rank, cmd.trigger, None)
    open_record(core, session, out)
    play(core, session, out)
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


def stop_command(core: CoreState, cmd: StopCommand, out: list[Action]) -> None:
    cur = core.current
    if cur is None:
        out.append(Reply(True, "nothing was playing", {"stopped": None}))
        return
    rid = cur.record.record_id
    finish(core, cur, "stopped", f"stopped by {cmd.trigger}", out)
    out.append(Reply(True, f"stopped {cur.course.title}", {"stopped": rid}))
