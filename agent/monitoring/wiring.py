"""Connects the probes monitor to the runtime: alarms and link summaries are written
on the core thread, the monitor's summary goes into the heartbeat, its snapshot into status.

The monitor runs its probes on its own threads; it never touches SQLite. What it emits is handed
to the core thread with ``Runtime.call_soon`` and persisted there (alarms table, event log, outbox)
in one transaction each.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.adapters.sqlite.alarms import (
    active_alarm_rows,
    active_alarms,
    persist_alarm_change,
    persist_link_summary,
)
from agent.monitoring.monitor import Monitor
from agent.runtime.config import AgentConfig

log = logging.getLogger("agent.monitoring.monitor")


def broker_target(cfg: AgentConfig) -> tuple[list[str], list[str]]:
    """TCP targets and DNS names implied by the config (the county broker)."""
    mqtt = getattr(cfg, "mqtt", None)
    if mqtt is None:
        return [], []
    port = mqtt.port or (8883 if mqtt.tls is not None else 1883)
    host = mqtt.host
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    names = [] if host.replace(".", "").isdigit() or ":" in host else [host]
    return [target], names


def start_monitor(cfg: AgentConfig, runtime: Any) -> Monitor | None:
    """Build and start the monitor for this config; None when probes are disabled."""
    probes = cfg.probes
    if not probes.enabled:
        log.info("probes disabled in the config")
        return None
    store = runtime.store
    assert store is not None, "start the monitor after runtime.open()"

    def persist(kind: str, payload: dict[str, Any]) -> None:
        clock = runtime.core.clock_state() if runtime.core is not None else None
        if kind == "alarm":
            persist_alarm_change(
                runtime.store, payload, cfg.terminal, cfg.county, clock_state=clock
            )
            runtime.notify("alarm", payload)
            level = logging.WARNING if payload.get("action") == "raised" else logging.INFO
            log.log(
                level,
                "alarm %s %s: %s",
                payload.get("name"),
                payload.get("action"),
                payload.get("detail"),
            )
        elif kind == "link_summary":
            persist_link_summary(
                runtime.store, payload, cfg.terminal, cfg.county, clock_state=clock
            )

    def emit(kind: str, payload: dict[str, Any]) -> None:
        if kind in ("alarm", "link_summary"):
            runtime.call_soon(lambda: persist(kind, payload))

    targets, names = broker_target(cfg)
    monitor = Monitor(
        probes,
        runtime.clock,
        emit,
        tcp_targets=targets,
        dns_names=names,
        disk_paths=[cfg.content_dir, cfg.state_dir],
        shutdown_marker=cfg.state_dir / "running.marker",
        active_alarms=active_alarms(store),
    )
    runtime.summary_providers["link"] = monitor.summary
    runtime.status_providers["monitor"] = monitor.snapshot
    runtime.status_providers["alarms"] = lambda: _active_alarm_rows(runtime)
    runtime.on_shutdown.append(monitor.stop)  # its last partial summary is stored, not lost
    monitor.start()
    return monitor


def _active_alarm_rows(runtime: Any) -> dict[str, Any]:
    return {"active": active_alarm_rows(runtime.store)}
