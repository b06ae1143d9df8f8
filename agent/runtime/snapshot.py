"""Status assembly, on the core thread: the typed snapshot (``agent.runtime.status``) from the
core, the store and the adapters' sections.

A section provider that fails is logged and left out: the rest of the status still goes out.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from agent.domain.records import utc_text
from agent.runtime.host import Host, SectionFn
from agent.runtime.ports import StatusSection
from agent.runtime.status import Playing, StatusSnapshot, Summary, Upcoming

log = logging.getLogger("agent")

UPCOMING_SHOWN = 3


def add_section(registry: dict[str, SectionFn], section: StatusSection) -> None:
    """Register a named section provider (``status[section.name]``)."""
    registry[section.name] = section.section  # type: ignore[assignment]


def _sections(providers: dict[str, Callable[[], Any]], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, provider in providers.items():
        try:
            out[name] = provider()
        except Exception:
            log.exception("%s provider %s failed", what, name)
    return out


def build_summary(host: Host) -> Summary:
    """Small and cheap (the heartbeat carries it): what plays, versions, backlog."""
    core, store = host.core, host.store
    assert core is not None and store is not None
    playing = core.playing()
    return Summary(
        uptime_s=round(host.clock.monotonic() - host.started_mono, 1),
        playing=Playing(**playing) if playing else None,
        schedule_versions={layer: doc.version for layer, doc in core.layers.items()},
        clock=core.clock_state(),
        outbox=store.outbox_depth(),
        sections=_sections(host.summary_providers, "summary"),
    )


def _local(ts: float, tz: Any) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def build_status(host: Host) -> StatusSnapshot:
    """The full picture (the retained status message, stationctl status)."""
    core, store, cfg = host.core, host.store, host.cfg
    assert core is not None and store is not None
    upcoming = tuple(
        Upcoming(
            start=utc_text(occ.start),
            local_start=_local(occ.start, cfg.tz),
            item_id=occ.item.id,
            course_id=occ.item.course.id,
            title=occ.item.course.title,
            media=occ.item.course.media,
            layer=occ.layer,
            priority=occ.priority,
        )
        for occ in core.upcoming(UPCOMING_SHOWN)
    )
    summary = build_summary(host)
    return StatusSnapshot(
        summary=summary,
        terminal=cfg.terminal,
        county=cfg.county,
        started_at=utc_text(host.started_wall),
        boot_id=host.boot,
        timezone=cfg.timezone,
        upcoming=upcoming,
        open_records=len(store.open_records()),
        records_unsent=store.outbox_depth("record"),
        sections=_sections(host.status_providers, "status"),
    )
