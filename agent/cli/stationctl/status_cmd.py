"""``stationctl status``: one screen that answers "is my station all right?".

Problems come first, in plain words, each with what to do. Then the facts: agent, what plays,
the next three sessions and whether their media is there, link, county server, clock, disk,
display, unsent records, the month so far, the latest alarms.

Where the facts come from: the running agent's status snapshot over the socket when it answers,
read as its declared type (``agent.runtime.status.StatusSnapshot``: what plays, and the link and
broker facts from the adapters' sections), otherwise the store and the machine
itself (schedule files, disk, /sys/class/drm, adjtimex). Alarms, unsent records and the month
always come from the store. Media is only looked for here (no sha256: ``status`` must answer
fast); ``stationctl schedule`` and ``check`` verify it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.adapters.sqlite import read_model
from agent.cli.i18n import _
from agent.cli.stationctl.common import EXIT_OK, Ctx, add_common
from agent.cli.stationctl.presence import Presence, presence
from agent.cli.stationctl.schedule_cmd import media_state
from agent.cli.stationctl.status_problems import problems
from agent.cli.stationctl.status_render import render
from agent.cli.stationctl.summary import current_month, month_summary
from agent.domain.records import utc_text
from agent.runtime.status import StatusSnapshot

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


def parse_snapshot(snap: StatusSnapshot | Mapping[str, Any] | None) -> StatusSnapshot:
    """The agent's status as its declared type (an empty one when the agent did not answer)."""
    if isinstance(snap, StatusSnapshot):
        return snap
    return StatusSnapshot.from_dict(snap or {})


def find_key(snap: StatusSnapshot | Mapping[str, Any] | None, *names: str) -> Any:
    """The first of these facts the adapters' sections report (see ``StatusSnapshot.fact``)."""
    parsed = parse_snapshot(snap)
    return next((v for v in map(parsed.fact, names) if v is not None), None)


def link_info(snap: StatusSnapshot | Mapping[str, Any] | None) -> dict[str, Any]:
    """The link as the monitor judges it (``LinkFacts``): state, mode, rtt_ms, loss_pct."""
    return parse_snapshot(snap).link.to_dict()


def broker_info(snap: StatusSnapshot | Mapping[str, Any] | None) -> dict[str, Any]:
    """The county MQTT broker (``BrokerFacts``): connected, last_contact, configured."""
    return parse_snapshot(snap).broker.to_dict()


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


def display_info(ctx: Ctx, snap: StatusSnapshot | None) -> str:
    state = snap.display if snap else None
    if state is not None:
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


def clock_info(ctx: Ctx, snap: StatusSnapshot | None) -> dict[str, Any]:
    """The running agent's judgement of its clock, else the same judgement made here."""
    try:
        lkg = float((ctx.cfg.state_dir / "clock.lkg").read_text().strip())
    except (OSError, ValueError):
        lkg = 0.0
    state = snap.summary.clock if snap else None
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


def upcoming_from_snapshot(ctx: Ctx, snap: StatusSnapshot) -> list[dict[str, Any]]:
    rows = []
    for u in snap.upcoming:
        state, problem = media_state(ctx.cfg.content_dir, u.media or "", None, verify=False)
        rows.append(
            {
                "start": u.start,
                "local_start": ctx.local(u.start),
                "course_id": u.course_id,
                "title": u.title,
                "media": u.media,
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


def last_failure(db: sqlite3.Connection, since: str) -> dict[str, Any] | None:
    """The newest failed record, when it happened at ``since`` (UTC text) or later."""
    row = read_model.last_failure(db)
    if row is None or (row["at"] or "") < since:
        return None
    return row


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
    snap = StatusSnapshot.from_dict(pres.snapshot) if pres.snapshot else None
    if snap:
        upcoming = upcoming_from_snapshot(ctx, snap)
        versions = snap.summary.schedule_versions
    else:
        upcoming, versions = upcoming_from_files(ctx)
    out: dict[str, Any] = {
        "station": {"terminal": cfg.terminal, "county": cfg.county, "timezone": cfg.timezone},
        "now": utc_text(ctx.now),
        "local_now": ctx.local(ctx.now),
        "agent": pres.to_dict(),
        "playing": snap.summary.playing.to_dict() if snap and snap.summary.playing else None,
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
        unsent = read_model.unsent_records(db)
        out["records_unsent"], out["oldest_unsent"] = unsent["count"], unsent["oldest"]
        out["alarms"], out["recent_alarms"] = read_model.alarms(db)
        out["month"] = month_summary(db, current_month(ctx.now, ctx.tz), ctx.tz)
        out["last_failure"] = last_failure(db, utc_text(ctx.now - RECENT_FAILURE_S))
    out["problems"] = problems(ctx, out)
    return out


def run(ctx: Ctx) -> int:
    s = gather(ctx)
    if ctx.json:
        ctx.print_json(s)
    else:
        for ln in render(ctx, s):
            ctx.print(ln)
    return EXIT_OK
