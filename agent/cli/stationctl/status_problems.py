"""``stationctl status``, judging: the facts gathered, turned into problems, each in plain words
with what to do, the most serious first."""

from __future__ import annotations

from typing import Any

from agent.cli.i18n import _, local_with_weekday, ngettext, parse_utc
from agent.cli.stationctl import labels
from agent.cli.stationctl.common import SERVICE, Ctx
from agent.cli.stationctl.schedule_cmd import MEDIA_OK, media_label

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
UNSENT_AGE_WARN_S = 24 * 3600
DISK_LOW_PCT = 10.0
DISK_LOW_BYTES = 500 * 10**6


def _problem(code: str, severity: str, message: str, advice: str, **data: Any) -> dict[str, Any]:
    return {"code": code, "severity": severity, "message": message, "advice": advice, "data": data}


def problems(ctx: Ctx, s: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    agent = s["agent"]
    if s["config_error"]:
        out.append(
            _problem(
                "config_invalid",
                "critical",
                _("The config file has an error, so the agent cannot start: {error}").format(
                    error=s["config_error"]
                ),
                _("Ask the county technician to correct it; check it with: stationctl check"),
            )
        )
    if s["store"] is None:
        out.append(
            _problem(
                "no_store",
                "critical",
                _("The agent has never run on this station (no database yet)."),
                _(
                    "Start it with: systemctl start {service}; if it does not start, call the county technician."
                ).format(service=SERVICE),
            )
        )
    elif agent["running"] is False:
        when = ctx.local(agent["since"]) if agent["since"] else _("unknown")
        msg = (
            _("The agent is not running (stopped since {when}): courses will not play.")
            if agent["clean_stop"]
            else _(
                "The agent is not running (it stopped unexpectedly; last seen {when}): courses will not play."
            )
        )
        out.append(
            _problem(
                "agent_not_running",
                "critical",
                msg.format(when=when),
                _("Start it with: systemctl start {service} (or restart the station PC).").format(
                    service=SERVICE
                ),
            )
        )
    elif agent["reason"] == "timeout" or agent["reason"] == "agent_busy":
        out.append(
            _problem(
                "agent_not_answering",
                "critical",
                _("The agent is running but does not answer."),
                _(
                    "Restart it: systemctl restart {service}; if it happens again, call the county technician."
                ).format(service=SERVICE),
            )
        )
    elif agent["reason"] == "forbidden":
        out.append(
            _problem(
                "no_permission",
                "info",
                _("You may not ask the agent directly, so some facts below come from its records."),
                _("Run stationctl with sudo, or as a member of the group {group}.").format(
                    group=ctx.cfg.admin_group
                ),
            )
        )
    clock = s["clock"]
    if clock["state"] == "implausible":
        out.append(
            _problem(
                "clock_wrong",
                "critical",
                _("The clock is wrong (it says {now}): scheduled courses are on hold.").format(
                    now=s["local_now"]
                ),
                _("Connect the network so the time can be set, or set the date and time by hand."),
            )
        )
    if s["store"] is not None and not s["schedule_versions"]:
        out.append(
            _problem(
                "no_schedule",
                "warning",
                _("No course schedule has been received."),
                _(
                    "Ask the county technician, or apply one from a USB stick: stationctl schedule apply FILE"
                ),
            )
        )
    seen_media = set()
    for u in s["upcoming"]:
        if u["media_status"] in MEDIA_OK or u["media"] in seen_media:
            continue
        seen_media.add(u["media"])
        when = local_with_weekday(parse_utc(u["start"]) or 0, ctx.tz)
        out.append(
            _problem(
                "media_" + u["media_status"],
                "critical",
                _("The video for {title} ({when}) is {state}: {media}").format(
                    title=u["title"],
                    when=when,
                    state=media_label(u["media_status"]),
                    media=u["media"],
                ),
                _(
                    "Copy the file into {folder}, or ask the county technician to send it again."
                ).format(folder=ctx.cfg.content_dir),
                course_id=u["course_id"],
                media=u["media"],
            )
        )
    alarm_names = set()
    for a in s["alarms"]:
        alarm_names.add(a["name"])
        what, todo = labels.alarm(a["name"])
        msg = _("{what} (since {when}).").format(what=what, when=ctx.local(a["raised_at"]))
        sev = a["severity"] if a["severity"] in SEVERITY_ORDER else "warning"
        out.append(_problem("alarm_" + a["name"], sev, msg, todo, name=a["name"]))
    disk = s["disk"]
    if (
        disk
        and "disk_low" not in alarm_names
        and (disk["free_pct"] < DISK_LOW_PCT or disk["free_bytes"] < DISK_LOW_BYTES)
    ):
        what, todo = labels.alarm("disk_low")
        out.append(_problem("disk_low", "warning", what + _("."), todo, **disk))
    if s["display"] == "disconnected" and "display_disconnected" not in alarm_names:
        what, todo = labels.alarm("display_disconnected")
        out.append(_problem("display_disconnected", "warning", what + _("."), todo))
    broker = s["broker"]
    if broker["connected"] is False and agent["running"]:
        last = ctx.local(broker["last_contact"]) if broker["last_contact"] else _("never")
        out.append(
            _problem(
                "broker_disconnected",
                "warning",
                _("Not connected to the county server (last contact {when}).").format(when=last),
                _("Viewing records wait safely on the station. Check the network if it lasts."),
            )
        )
    unsent, oldest = s["records_unsent"], parse_utc(s["oldest_unsent"])
    if unsent and oldest is not None and ctx.now - oldest > UNSENT_AGE_WARN_S:
        out.append(
            _problem(
                "records_unsent",
                "warning",
                ngettext(
                    "{n} viewing record has not reached the county yet (waiting since {when}).",
                    "{n} viewing records have not reached the county yet (oldest since {when}).",
                    unsent,
                ).format(n=unsent, when=ctx.local(s["oldest_unsent"])),
                _("They are kept safely and sent when the link is back. Check the network."),
            )
        )
    fail = s["last_failure"]
    if fail:
        out.append(
            _problem(
                "playback_failed",
                "warning",
                _("{title} could not be shown ({when}): {reason}").format(
                    title=fail["title"], when=ctx.local(fail["at"]), reason=fail["reason"] or "-"
                ),
                _("Check the video file and the TV; run: stationctl check"),
                seq=fail["seq"],
            )
        )
    out.sort(key=lambda p: SEVERITY_ORDER.get(p["severity"], 9))
    return out
