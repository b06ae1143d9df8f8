"""Opening the runtime: the store, the records a crash left open, the schedule layers, the
history the core needs, and the alarms the previous run left raised.

Only real corruption moves a store aside (once per boot); a lock is waited for; a full or
read-only store is opened degraded, and the writes it refuses are held in memory.
"""

from __future__ import annotations

import logging
import os
import sqlite3

from agent.adapters.kernel_clock import kernel_clock_synced
from agent.adapters.sqlite.store import Store
from agent.domain import core as c
from agent.domain.records import utc_text
from agent.runtime.config import AgentConfig
from agent.runtime.executor import Executor
from agent.runtime.host import Host
from agent.runtime.schedules import Schedules

log = logging.getLogger("agent")

# Alarms about one run of the process (a side job, a write that failed once): the condition
# ends with the process, so they are cleared when the next run starts.
RUNTIME_ALARMS_OF_ONE_RUN = ("side_job_failed", "record_write_failed", "record_write_bug")


def settings_from_config(cfg: AgentConfig, boot: str) -> c.CoreSettings:
    pb, v = cfg.playback, cfg.vlc
    return c.CoreSettings(
        terminal=cfg.terminal,
        boot_id=boot,
        grace_s=pb.late_start_grace_minutes * 60,
        default_slot_s=pb.default_slot_minutes * 60,
        checkpoint_s=pb.checkpoint_seconds,
        preroll_s=v.preroll_seconds,
        idle_unload_s=v.idle_unload_seconds,
        start_timeout_s=v.start_timeout_seconds,
        stall_s=v.stall_seconds,
        retries=pb.retries,
        retry_delay_s=pb.retry_delay_seconds,
        require_synced_clock=pb.require_synced_clock,
        lookback_s=pb.missed_lookback_hours * 3600,
        on_demand_priority=pb.on_demand_priority,
        quarantine_after=pb.quarantine_after_errors,
        quarantine_s=pb.quarantine_minutes * 60,
        restart_player_after=pb.restart_player_after_errors,
        restart_process_after=pb.restart_process_after_errors,
        max_lkg_step_s=cfg.clock.max_lkg_step_hours * 3600,
    )


def open_runtime(host: Host, executor: Executor, schedules: Schedules) -> None:
    """Open the store and build the core; ``agent_started`` is the last thing written."""
    cfg = host.cfg
    for d in (cfg.state_dir, cfg.content_dir):
        d.mkdir(parents=True, exist_ok=True)
    if cfg.schedule_dir:
        cfg.schedule_dir.mkdir(parents=True, exist_ok=True)
    host.store, host.corrupt_store_moved = Store.open_or_recover(cfg.db_path, boot=host.boot)
    store = host.store
    held = executor.held
    host.status_providers[held.name] = held.section
    if store.degraded:
        log.error("the store %s is open but cannot be written: %s", store.path, store.degraded)
    moved = host.corrupt_store_moved
    if moved:
        executor.store_event(
            "error",
            "store_corrupt",
            f"The database was damaged; moved aside to {moved.name} and started fresh",
        )
        log.error("store was corrupt; moved aside to %s", moved)
    held_closes = _close_open_records(host, executor)
    lkg = host.lkg.load()
    now = host.clock.wall()
    layers, since = schedules.load_layers()
    history = _load_history(store, cfg, now)
    history.update(held_closes)
    core = host.core = c.Core(
        settings_from_config(cfg, host.boot),
        host.clock,
        layers=layers,
        since=since,
        history=history,
        next_seq=store.next_record_seq(),
        lkg=lkg,
        synced=kernel_clock_synced(),
        responsible_since=lkg or None,
        durations=store.latest_durations(),
    )
    used = int(store.get(f"process_restarts/{host.boot}", "0") or 0)
    core.s.process_restarts_left = max(0, cfg.playback.max_process_restarts_per_boot - used)
    _restore_alarms(host, executor)
    if moved:
        executor.execute([c.Alarm("store_corrupt", "raised", "critical", {"moved_to": moved.name})])
    schedules.remember_files()
    state = core.clock_state()
    executor.store_event(
        "info",
        "agent_started",
        f"Agent started (clock {state})",
        {"boot_id": host.boot, "pid": os.getpid()},
    )
    log.info(
        "agent started: terminal=%s county=%s clock=%s layers=%s",
        cfg.terminal,
        cfg.county,
        state,
        {k: v.version for k, v in layers.items()},
    )


def _restore_alarms(host: Host, executor: Executor) -> None:
    """The core's alarms left open by the previous run: taken over, or cleared if gone."""
    from agent.adapters.sqlite.alarms import active_alarms

    assert host.core is not None and host.store is not None
    open_alarms = active_alarms(host.store)
    executor.execute(host.core.restore_alarms(open_alarms))
    gone = [n for n in RUNTIME_ALARMS_OF_ONE_RUN if n in open_alarms]
    if "store_unwritable" in open_alarms and not host.store.degraded:
        gone.append("store_unwritable")
    reason = "the agent restarted and its store takes writes; a fresh start cleared it"
    executor.execute([c.Alarm(n, "cleared", "info", {"reason": reason}) for n in gone])


def _close_open_records(host: Host, executor: Executor) -> dict[str, c.History]:
    """After a crash or power cut: every open record becomes ``interrupted`` at its checkpoint.

    When the store refuses the write (full, read-only, locked), the closed records are held
    and written later; the returned history says they are interrupted (resumable), as the
    store would once they are in.
    """
    store = host.store
    assert store is not None
    open_recs = store.open_records()
    if not open_recs:
        return {}
    for rec in open_recs:
        rec.outcome = "interrupted"
        rec.reason = "the agent stopped while this was playing (crash or power cut)"
        rec.ended_at = rec.ended_at or utc_text(host.clock.wall())
        rec.rev += 1
    try:
        with store.transaction() as conn:
            for rec in open_recs:
                store.update_record(rec, conn)
                executor.enqueue_record(rec, conn)
                store.add_event(
                    "warning",
                    "record_interrupted",
                    f"{rec.title}: interrupted at {rec.position:.0f} s",
                    {"record_id": rec.record_id},
                    conn=conn,
                )
    except (sqlite3.Error, OSError) as exc:
        for rec in open_recs:
            executor.held.action_failed(c.SaveRecord(rec, new=False), exc)
        log.error("%d open record(s) closed as interrupted, held in memory", len(open_recs))
        return {
            rec.occurrence_key: c.History(rec.outcome, rec.record_id, rec.position)
            for rec in open_recs
            if rec.occurrence_key
        }
    log.warning("closed %d open record(s) as interrupted", len(open_recs))
    return {}


def _load_history(store: Store, cfg: AgentConfig, now: float) -> dict[str, c.History]:
    """What happened to each planned occurrence in the lookback (resume, or mark missed)."""
    lookback = cfg.playback.missed_lookback_hours * 3600 + 86400
    rows = store.occurrence_history(utc_text(now - lookback))
    return {key: c.History(outcome, rid, pos) for key, outcome, rid, pos in rows}
