"""``stationctl status``: one screen that answers "is my station all right?".

Problems come first, in plain words, each with what to do. Then the facts: agent, what plays,
the next three sessions and whether their media is there, link, county server, clock, disk,
display, unsent records, the month so far, the latest alarms.

Where the facts come from: the running agent's status snapshot over the socket when it answers
(what plays, the link and broker sections the adapters add), otherwise the store and the machine
itself (schedule files, disk, /sys/class/drm, adjtimex). Alarms, unsent records and the month
always come from the store. Media is only looked for here (no sha256: ``status`` must answer
fast); ``stationctl schedule`` and ``check`` verify it.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from agent.cli.i18n import _, fit, label_lines, local_with_weekday, ngettext, parse_utc, table
from agent.cli.stationctl import labels
from agent.cli.stationctl.common import EXIT_OK, SERVICE, Ctx, add_common
from agent.cli.stationctl.presence import Presence, presence
from agent.cli.stationctl.schedule_cmd import MEDIA_OK, media_label, media_state
from agent.cli.stationctl.summary import current_month, month_summary
from agent.domain.records import utc_text

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
UNSENT_AGE_WARN_S = 24 * 3600
DISK_LOW_PCT = 10.0
DISK_LOW_BYTES = 500 * 10**6
RECENT_FAILURE_S = 24 * 3600


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help=_("is the station all right? (problems first)"),
        description=_("One screen: is the station all right, and what to do if not."),
    )
    add_common(p)
    p.set_defaults(func=run)


# -- gathering -----------------------------------------------------------------------------------


def find_key(snap: dict[str, Any] | None, *names: str) -> Any:
    """A value from the snapshot's top level or one of its provider sections (dicts)."""
    if not snap:
        return None
    for name in names:
        value = snap.get(name)
        if value is not None and not isinstance(value, dict):
            return value
    for section in snap.values():
        if isinstance(section, dict):
            for name in names:
                value = section.get(name)
                if value is not None and not isinstance(value, dict):
                    return value
    return None


def link_info(snap: dict[str, Any] | None) -> dict[str, Any]:
    """The link, from a ``link`` section (a word, or a dict with ``link``/``state``) or any
    section's ``link`` word (the monitor's summary: up, down, locked, unlocked)."""
    section = snap.get("link") if snap else None
    if isinstance(section, dict):
        state = section.get("link") or section.get("state")
    else:
        state = find_key(snap, "link")
    return {
        "state": state if isinstance(state, str) else None,
        "mode": find_key(snap, "mode"),
        "rtt_ms": find_key(snap, "rtt_ms"),
        "loss_pct": find_key(snap, "loss_pct"),
    }


def broker_info(snap: dict[str, Any] | None) -> dict[str, Any]:
    """The county MQTT broker, from the link's status section (``mqtt``: state, broker,
    connected_since) or a ``broker`` section with ``connected`` / ``last_contact``."""
    section = None
    for name in ("broker", "mqtt"):
        if snap and isinstance(snap.get(name), dict):
            section = snap[name]
            break
    if section is None:
        return {"connected": None, "last_contact": None, "configured": False}
    connected = section.get("connected")
    if connected is None and isinstance(section.get("state"), str):
        connected = section["state"] in ("connected", "online", "up")
    last = None
    for key in ("last_contact", "last_seen", "connected_since", "last_connected"):
        if section.get(key):
            last = section[key]
            break
    if isinstance(last, int | float):
        last = utc_text(float(last))
    return {"connected": connected, "last_contact": last, "configured": True}


def disk_info(paths: list[Path]) -> dict[str, Any] | None:
    best = None
    for path in paths:
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        pct = 100.0 * usage.free / usage.total if usage.total else 0.0
        entry = {
            "path": str(path),
            "free_bytes": usage.free,
            "total_bytes": usage.total,
            "free_pct": round(pct, 1),
        }
        if best is None or entry["free_pct"] < best["free_pct"]:
            best = entry
    return best


def display_info(ctx: Ctx, snap: dict[str, Any] | None) -> str:
    state = find_key(snap, "display")
    if isinstance(state, str):
        return state
    display = ctx.cfg.probes.display
    if not display.enabled:
        return "unknown"
    return drm_display(display.connectors)


def drm_display(connectors: list[str], sysfs: Path = Path("/sys")) -> str:
    """connected / disconnected / unknown from /sys/class/drm, read the way the display probe
    (agent/probes/display.py) reads it; kept here so ``status`` need not load every probe."""
    states = []
    for path in sorted((sysfs / "class/drm").glob("card*-*")):
        if connectors and path.name not in connectors:
            continue
        try:
            states.append((path / "status").read_text().strip())
        except OSError:
            continue
    if "connected" in states:
        return "connected"
    return "disconnected" if "disconnected" in states else "unknown"


def clock_info(ctx: Ctx, snap: dict[str, Any] | None) -> dict[str, Any]:
    """The running agent's judgement of its clock, else the same judgement made here."""
    try:
        lkg = float((ctx.cfg.state_dir / "clock.lkg").read_text().strip())
    except (OSError, ValueError):
        lkg = 0.0
    state = snap.get("clock") if snap and isinstance(snap.get("clock"), str) else None
    if state is not None:
        synced = True if state == "synced" else (False if state == "unsynced" else None)
    else:
        from agent.adapters.kernel_clock import kernel_clock_synced
        from agent.domain.clockrules import clock_state

        synced = kernel_clock_synced()
        state = clock_state(ctx.now, lkg, synced)
    return {
        "state": state,
        "kernel_synced": synced,
        "last_known_good": utc_text(lkg) if lkg else None,
    }


def upcoming_from_snapshot(ctx: Ctx, snap: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for u in snap.get("upcoming") or []:
        state, problem = media_state(ctx.cfg.content_dir, u.get("media", ""), None, verify=False)
        rows.append(
            {
                "start": u.get("start"),
                "local_start": ctx.local(u.get("start")),
                "course_id": u.get("course_id"),
                "title": u.get("title"),
                "media": u.get("media"),
                "media_status": state,
                "media_problem": problem,
            }
        )
    return rows


def upcoming_from_files(ctx: Ctx) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from agent.cli.stationctl.schedule_cmd import sessions_ahead

    result = sessions_ahead(ctx, 8.0, verify=False, limit=3)
    rows = [
        {k: r[k] for k in ("start", "local_start", "course_id", "title", "media")}
        | {"media_status": r["media_status"], "media_problem": r["media_problem"]}
        for r in result["sessions"]
    ]
    return rows, result["versions"]


def alarms_from_store(db: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def as_dict(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "name": row["name"],
            "severity": row["severity"],
            "raised_at": row["raised_at"],
            "cleared_at": row["cleared_at"],
        }

    active = [
        as_dict(r)
        for r in db.execute("SELECT * FROM alarms WHERE cleared_at IS NULL ORDER BY raised_at")
    ]
    recent = [as_dict(r) for r in db.execute("SELECT * FROM alarms ORDER BY id DESC LIMIT 5")]
    return active, recent


def unsent_info(db: sqlite3.Connection) -> dict[str, Any]:
    n, oldest = db.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE kind='record'"
    ).fetchone()
    return {"count": int(n), "oldest": oldest}


def last_failure(db: sqlite3.Connection, since: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT seq, course_id, title, outcome, reason, COALESCE(started_at, planned_start, "
        "ended_at) AS at FROM records WHERE outcome IN ('error', 'skipped') "
        "ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None or (row["at"] or "") < since:
        return None
    return dict(row)


def config_error(cfg: Any) -> str | None:
    """With the agent down, a config it would refuse is the likely reason: check it fully.
    (stationctl itself may have read it with the quick reader, which checks little.)"""
    from agent.runtime.config import AgentConfig, ConfigError, load_config

    if isinstance(cfg, AgentConfig):
        return None  # already loaded and checked by the agent's own loader
    try:
        load_config(cfg.source)
    except ConfigError as exc:
        return str(exc)
    return None


def gather(ctx: Ctx) -> dict[str, Any]:
    cfg = ctx.cfg
    db = ctx.store().db if ctx.has_store() else None
    pres: Presence = presence(cfg.socket_path, db, cfg.state_dir / "clock.lkg", timeout=3.0)
    snap = pres.snapshot
    if snap:
        upcoming = upcoming_from_snapshot(ctx, snap)
        versions = snap.get("schedule_versions") or {}
    else:
        upcoming, versions = upcoming_from_files(ctx)
    out: dict[str, Any] = {
        "station": {"terminal": cfg.terminal, "county": cfg.county, "timezone": cfg.timezone},
        "now": utc_text(ctx.now),
        "local_now": ctx.local(ctx.now),
        "agent": pres.to_dict(),
        "playing": snap.get("playing") if snap else None,
        "schedule_versions": versions,
        "upcoming": upcoming,
        "link": link_info(snap),
        "broker": broker_info(snap),
        "clock": clock_info(ctx, snap),
        "disk": disk_info([cfg.content_dir, cfg.state_dir]),
        "display": display_info(ctx, snap),
        "records_unsent": None,
        "oldest_unsent": None,
        "alarms": [],
        "recent_alarms": [],
        "month": None,
        "last_failure": None,
        "store": str(cfg.db_path) if db is not None else None,
        "config_error": None if pres.running else config_error(cfg),
    }
    if db is not None:
        unsent = unsent_info(db)
        out["records_unsent"], out["oldest_unsent"] = unsent["count"], unsent["oldest"]
        out["alarms"], out["recent_alarms"] = alarms_from_store(db)
        out["month"] = month_summary(db, current_month(ctx.now, ctx.tz), ctx.tz)
        out["last_failure"] = last_failure(db, utc_text(ctx.now - RECENT_FAILURE_S))
    out["problems"] = problems(ctx, out)
    return out


# -- judging ---------------------------------------------------------------------------------------


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


# -- showing ---------------------------------------------------------------------------------------


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


def run(ctx: Ctx) -> int:
    s = gather(ctx)
    if ctx.json:
        ctx.print_json(s)
    else:
        for ln in render(ctx, s):
            ctx.print(ln)
    return EXIT_OK
