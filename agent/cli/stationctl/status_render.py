"""``stationctl status``, showing: the problems first, then the facts, as one screen."""

from __future__ import annotations

from typing import Any

from agent.cli.i18n import _, fit, label_lines, local_with_weekday, ngettext, parse_utc, table
from agent.cli.stationctl import labels
from agent.cli.stationctl.common import Ctx
from agent.cli.stationctl.schedule_cmd import media_label


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def render(ctx: Ctx, s: dict[str, Any]) -> list[str]:
    st = s["station"]
    lines = [
        _("Station {terminal} (county {county}), {now} ({tz})").format(
            terminal=st["terminal"], county=st["county"], now=s["local_now"], tz=st["timezone"]
        ),
        "",
    ]
    probs = [p for p in s["problems"] if p["severity"] != "info"]
    notes = [p for p in s["problems"] if p["severity"] == "info"]
    if probs:
        lines.append(ngettext("{n} problem:", "{n} problems:", len(probs)).format(n=len(probs)))
        for p in probs:
            mark = "!!" if p["severity"] == "critical" else "! "
            lines.append(f" {mark} {p['message']}")
            lines.append(f"    → {p['advice']}")
    else:
        lines.append(_("All is well: no problems found."))
    for p in notes:
        lines.append(f" i  {p['message']}")
        lines.append(f"    → {p['advice']}")
    lines.append("")
    pairs: list[tuple[str, str]] = []
    agent = s["agent"]
    if agent["running"]:
        value = _("running since {when}").format(when=ctx.local(agent["since"]))
        if agent["pid"]:
            value += " " + _("(pid {pid})").format(pid=agent["pid"])
    elif agent["running"] is None:
        value = _("unknown")
    elif agent["since"]:
        value = _("NOT running, since {when}").format(when=ctx.local(agent["since"]))
    else:
        value = _("NOT running")
    pairs.append((_("Agent"), value))
    playing = s["playing"]
    if playing:
        pos = playing.get("position") or 0
        length = playing.get("length") or 0
        how = labels.trigger(playing.get("trigger", ""))
        if length:
            value = _("{title} ({how}, {pos} of {length})").format(
                title=playing.get("title"), how=how, pos=_clock(pos), length=_clock(length)
            )
        else:
            value = _("{title} ({how})").format(title=playing.get("title"), how=how)
    elif agent["running"] and agent["answered"] and agent["reason"] is None:
        value = _("nothing")
    else:
        value = _("unknown")
    pairs.append((_("Playing"), value))
    if s["upcoming"]:
        rows = []
        for u in s["upcoming"]:
            when = local_with_weekday(parse_utc(u["start"]) or 0, ctx.tz)
            state = "ready" if u["media_status"] == "present" else u["media_status"]
            rows.append([when, fit(u["title"] or "", 28), media_label(state)])
        pairs.append((_("Next"), "\n".join(table(["", "", ""], rows)[1:])))
    else:
        pairs.append((_("Next"), _("no sessions in the next days")))
    link = s["link"]
    if link["state"] and link["state"] != "unknown":
        value = {
            "up": _("up"),
            "down": _("DOWN"),
            "locked": _("satellite locked"),
            "unlocked": _("satellite NOT locked"),
        }.get(link["state"], link["state"])
        if link["rtt_ms"] is not None and link["state"] == "up":
            value += f" ({link['rtt_ms']:.0f} ms)"
    else:
        value = _("unknown")
    pairs.append((_("Network"), value))
    broker = s["broker"]
    last = ctx.local(broker["last_contact"]) if broker["last_contact"] else None
    if broker["connected"] is True:
        value = _("connected since {when}").format(when=last) if last else _("connected")
    elif broker["connected"] is False:
        value = _("not connected")
        if last:
            value += ", " + _("last contact {when}").format(when=last)
    elif not broker["configured"]:
        value = _("not configured") if agent["answered"] else _("unknown")
    else:
        value = _("unknown")
    pairs.append((_("County server"), value))
    clock = s["clock"]
    value = {
        "synced": _("set from the network"),
        "unsynced": _("not set from the network (may drift)"),
        "implausible": _("WRONG"),
    }.get(clock["state"], clock["state"])
    pairs.append((_("Clock"), value))
    disk = s["disk"]
    if disk:
        value = _("{free} free of {total} ({pct:.0f}%)").format(
            free=_gb(disk["free_bytes"]), total=_gb(disk["total_bytes"]), pct=disk["free_pct"]
        )
    else:
        value = _("unknown")
    pairs.append((_("Disk"), value))
    value = {
        "connected": _("connected"),
        "disconnected": _("NOT connected"),
    }.get(s["display"], _("unknown"))
    pairs.append((_("TV / screen"), value))
    if s["records_unsent"] is not None:
        value = ngettext("{n} record waiting", "{n} records waiting", s["records_unsent"]).format(
            n=s["records_unsent"]
        )
        if s["records_unsent"] == 0:
            value = _("none, all sent")
        pairs.append((_("Unsent"), value))
    month = s["month"]
    if month:
        cs = month["collective_sessions"]
        value = _(
            "collective sessions {held} of {target}; completed {completed}; missed {missed}"
        ).format(
            held=cs["held"],
            target=cs["target"],
            completed=month["completed"],
            missed=month["missed"],
        )
        pairs.append((_("This month"), value))
    if s["recent_alarms"]:
        rows = []
        for a in s["recent_alarms"]:
            what, _todo = labels.alarm(a["name"])
            state = (
                _("cleared {when}").format(when=ctx.local(a["cleared_at"]))
                if a["cleared_at"]
                else _("active")
            )
            rows.append([ctx.local(a["raised_at"]), what, state])
        pairs.append((_("Latest alarms"), "\n".join(table(["", "", ""], rows)[1:])))
    else:
        pairs.append((_("Latest alarms"), _("none")))
    lines += label_lines(pairs)
    return lines
