"""``stationctl schedule``: the sessions ahead and whether their media is ready;
``schedule validate|next FILE`` check a schedule file, ``schedule apply FILE`` applies one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from agent.cli.i18n import _, fit, local_with_weekday, ngettext, table
from agent.cli.stationctl import schedule_file_cmd as files
from agent.cli.stationctl.common import EXIT_OK, EXIT_USAGE, CtlError, Ctx, add_common
from agent.cli.stationctl.content_view import ContentIndex, agent_status, label
from agent.domain.records import utc_text

# Media states: ready (present, and its sha256 matches when the schedule gives one), present
# (found; not hashed, the quick check of ``status``), url (streamed, not checked offline),
# missing, damaged (sha256 differs), unreadable, bad_path (points outside the content folder).
MEDIA_OK = ("ready", "present", "url")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "schedule",
        help=_("the sessions ahead; check, preview and apply schedule files"),
        description=_(
            "Without a sub-command: the sessions ahead from the applied schedule and whether "
            "each course's media is present and intact."
        ),
    )
    add_common(p)
    p.add_argument("--days", type=float, default=7.0, help=_("how many days ahead (default 7)"))
    p.add_argument(
        "--no-verify",
        action="store_true",
        help=_("only look for the files, do not check their sha256 (faster)"),
    )
    p.set_defaults(func=upcoming_cmd)
    ssub = p.add_subparsers(dest="schedule_command", metavar="{validate,next,apply}")
    v = ssub.add_parser("validate", help=_("check a schedule file; every problem is listed"))
    add_common(v)
    v.add_argument("file")
    v.add_argument(
        "--roots", default=None, help=_("root keys folder (default: the config's trust.roots_dir)")
    )
    v.set_defaults(func=files.validate, needs_config=False)
    n = ssub.add_parser("next", help=_("the sessions a schedule file plans"))
    add_common(n)
    n.add_argument("file")
    n.add_argument("--days", type=float, default=7.0)
    n.set_defaults(func=files.next_cmd, needs_config=False)
    a = ssub.add_parser("apply", help=_("apply a schedule file on this terminal (USB stick)"))
    add_common(a)
    a.add_argument("file")
    a.add_argument("--layer", choices=["terminal", "county"], default=None)
    a.add_argument(
        "--unsigned",
        action="store_true",
        help=_("apply an unsigned schedule anyway (root only; logged and reported to the county)"),
    )
    a.set_defaults(func=files.apply)


# -- the sessions ahead from the applied schedule --------------------------------------------------


def media_state(
    content_dir: Path, media: str, sha256: str | None, *, verify: bool
) -> tuple[str, str | None]:
    from agent.adapters.media_files import HashCache, MediaError, check, resolve
    from agent.domain.schedule import is_url

    if is_url(media):
        return "url", None
    try:
        if verify:
            check(content_dir, media, sha256, HashCache())
            return "ready", None
        resolve(content_dir, media)
        return ("present" if sha256 else "ready"), None
    except MediaError as exc:
        state = {"checksum": "damaged"}.get(exc.reason, exc.reason)
        return state, exc.message


def sessions_ahead(
    ctx: Ctx, days: float, *, verify: bool, limit: int | None = None
) -> dict[str, Any]:
    """The applied schedule's sessions from now on, with their media state (see module note)."""
    from agent.adapters.schedule_files import ScheduleStore
    from agent.domain.planner import plan
    from agent.domain.schedule import ScheduleRejected

    cfg = ctx.cfg
    problems: list[str] = []
    layers: dict[str, Any] = {}
    store = ScheduleStore(cfg.state_dir, timezone=cfg.timezone)
    for layer in ("terminal", "county"):
        try:
            doc = store.load(layer)
        except ScheduleRejected as exc:
            problems.extend(exc.problems)
            continue
        if doc is not None:
            layers[layer] = doc
    now = ctx.now
    p = plan(layers, now - 86400, now + days * 86400, cfg.playback.default_slot_minutes * 60)
    occs = [o for o in p.occurrences if o.end > now and o.start < now + days * 86400]
    handled = _handled(ctx, [o.key for o in occs])
    rows = []
    cache: dict[tuple[str, str | None], tuple[str, str | None]] = {}
    for occ in occs:
        outcome = handled.get(occ.key)
        if outcome and outcome != "open":
            continue  # already shown, missed or skipped: history, not "ahead"
        course = occ.item.course
        key = (course.media, course.sha256)
        if key not in cache:
            cache[key] = media_state(cfg.content_dir, course.media, course.sha256, verify=verify)
        state, problem = cache[key]
        rows.append(
            {
                "start": utc_text(occ.start),
                "end": utc_text(occ.end),
                "local_start": ctx.local(occ.start),
                "local_end": ctx.local(occ.end),
                "layer": occ.layer,
                "item_id": occ.item.id,
                "course_id": course.id,
                "title": course.title,
                "media": course.media,
                "media_status": state,
                "media_problem": problem,
                "now_playing": outcome == "open" or occ.start <= now < occ.end,
                "cut_by": p.cut_by.get(occ.key),
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    return {
        "versions": {layer: doc.version for layer, doc in layers.items()},
        "days": days,
        "sessions": rows,
        "problems": problems,
    }


def _handled(ctx: Ctx, keys: list[str]) -> dict[str, str]:
    if not keys or not ctx.has_store():
        return {}
    try:
        found = ctx.store().occurrence_outcomes(keys)
    except CtlError:
        return {}
    return {k: (v[-1][0] or "open") for k, v in found.items() if v}


def upcoming_cmd(ctx: Ctx) -> int:
    if ctx.args.days <= 0 or ctx.args.days > 366:
        raise CtlError(_("--days must be between 0 and 366"), EXIT_USAGE)
    result = sessions_ahead(ctx, ctx.args.days, verify=not ctx.args.no_verify)
    known = with_readiness(result["sessions"], agent_status(ctx.cfg.socket_path))
    result["readiness_known"] = known
    if ctx.json:
        ctx.print_json(result)
        return EXIT_OK
    bad = [r for r in result["sessions"] if r["media_status"] not in MEDIA_OK]
    for problem in result["problems"]:
        ctx.print(_("Stored schedule unreadable: {problem}").format(problem=problem))
    if not result["versions"]:
        ctx.print(_("No schedule has been applied on this station yet."))
        ctx.print(
            "  "
            + _(
                "Ask the county technician, or apply one from a USB stick: stationctl schedule apply FILE"
            )
        )
        return EXIT_OK
    versions = ", ".join(
        _("{layer} v{version}").format(layer=files.layer_name(k), version=v)
        for k, v in sorted(result["versions"].items())
    )
    ctx.print(
        ngettext(
            "Sessions in the next {days} day (schedule {versions}):",
            "Sessions in the next {days} days (schedule {versions}):",
            int(ctx.args.days),
        ).format(days=f"{ctx.args.days:g}", versions=versions)
    )
    if not result["sessions"]:
        ctx.print("  " + _("No sessions."))
        return EXIT_OK
    rows = []
    for r in result["sessions"]:
        when = local_with_weekday(_ts(r["start"]), ctx.tz) + "-" + r["local_end"][11:16]
        media = r["readiness_label"]
        if r["now_playing"]:
            when = "▶ " + when
        rows.append([when, fit(r["course_id"], 16), fit(r["title"], 28), media])
    for ln in table([_("When"), _("Course"), _("Title"), _("Media")], rows, indent="  "):
        ctx.print(ln)
    if bad:
        ctx.print()
        ctx.print(
            ngettext(
                "{n} session cannot be shown as things stand:",
                "{n} sessions cannot be shown as things stand:",
                len(bad),
            ).format(n=len(bad))
        )
        seen = set()
        for r in bad:
            if r["media"] in seen:
                continue
            seen.add(r["media"])
            ctx.print(
                "  "
                + _("{title}: {media} is {state}").format(
                    title=r["title"], media=r["media"], state=r["readiness_label"]
                )
            )
        ctx.print(
            "  "
            + _(
                "Copy the files into {folder}, or ask the county technician to send them again."
            ).format(folder=ctx.cfg.content_dir)
        )
    if not known:
        ctx.print()
        ctx.print(_("The agent is not running: download readiness is unknown."))
    return EXIT_OK


def with_readiness(rows: list[dict[str, Any]], status: dict[str, Any] | None) -> bool:
    """Add each session's download state (``readiness``, ``readiness_label``) from the agent's
    status, by media path; a file found on disk is ready whatever the agent last said.
    Returns whether the agent told its content state."""
    index = ContentIndex.from_status(status)
    for r in rows:
        fetch = None if r["media_status"] == "url" else index.file(r["media"])
        r["readiness"] = fetch.to_dict() if fetch else None
        on_disk = r["media_status"] in MEDIA_OK or fetch is None or fetch.state == "unknown"
        r["readiness_label"] = media_label(r["media_status"]) if on_disk else label(fetch)
    return index.known


def media_label(state: str) -> str:
    return {
        "ready": _("ready"),
        "present": _("present"),
        "url": _("online"),
        "missing": _("MISSING"),
        "damaged": _("DAMAGED"),
        "unreadable": _("UNREADABLE"),
        "bad_path": _("BAD PATH"),
    }.get(state, state)


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
