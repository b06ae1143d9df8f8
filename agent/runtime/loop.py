"""The runtime: wires the pure core to its adapters and runs the one core thread.

Everything that touches the outside world lives here or below: SQLite (Store), the schedule files,
the VLC worker, the clock's sync state. The core thread takes one event at a time from a queue;
adapters (player, MQTT, probes, control socket) only ever *post* to that queue.

Timing: the loop waits on the queue until the core's next deadline, never more than a second,
so a slot fires within a millisecond or two of its time and a wall-clock jump is seen within a
second (the wall and monotonic deltas are compared on every pass).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.kernel_clock import LastKnownGood, SystemClock, boot_id, kernel_clock_synced
from agent.adapters.media_files import HashCache, MediaError
from agent.adapters.media_files import check as check_media
from agent.adapters.schedule_files import ScheduleStore
from agent.adapters.sqlite.store import FULL, STORE_TROUBLES, Store, StoreError, classify_error
from agent.adapters.vlc_player import PlayerEvent, VlcPlayer
from agent.domain import core as c
from agent.domain.clockrules import Clock
from agent.domain.records import OUTCOMES, Record, utc_text
from agent.domain.schedule import LAYERS, ScheduleRejected, is_url
from agent.runtime.config import AgentConfig
from agent.runtime.inbox import ScheduleInbox

log = logging.getLogger("agent")

JUMP_THRESHOLD_S = 2.0
LKG_INTERVAL_S = 1800.0  # each write costs ~24 KB of flash (fsync); see docs/performance.md
SYNC_CHECK_S = 60.0
FINAL = OUTCOMES
SHUTDOWN_HOOKS_S = 10.0  # adapters' last words (MQTT offline state, confirmations) at most


@dataclass
class _Submitted:
    event: object
    future: Future[list[c.Action]]


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]


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


def _local(ts: float, tz: Any) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def record_message(rec: Record, county: str) -> dict[str, Any]:
    """The record as published: the stored fields plus the envelope (ts, county)."""
    payload = rec.to_dict()
    payload["ts"] = utc_text(time.time())
    payload["county"] = county
    return payload


# What must reach the store: when a write fails it is held in memory and retried, never dropped.
# Alarms about one run of the process (a side job, a write that failed once): the condition
# ends with the process, so they are cleared when the next run starts.
RUNTIME_ALARMS_OF_ONE_RUN = ("side_job_failed", "record_write_failed", "record_write_bug")

MUST_PERSIST = (c.SaveRecord, c.Alarm)
# Actions that write to the store (the others drive the player or answer a caller).
STORE_WRITES = (c.SaveRecord, c.Alarm, c.Checkpoint, c.Log)
# Held writes, at most (a held record measured about 0.8 KB: 2000 are under 2 MB).
HELD_MAX = 2000
RETRY_S = 1.0  # how often held writes are tried again, and a degraded store reopened
# The alarm for each trouble of the whole store; a write that fails alone is record_write_failed.
TROUBLE_ALARMS = {FULL: "disk_full"} | {
    kind: "store_unwritable" for kind in STORE_TROUBLES if kind != FULL
}


@dataclass
class WriteTrouble:
    """Why the store does not take writes, since when; its alarm is stored once it can be."""

    since: float
    detail: dict[str, Any]
    raise_stored: bool = False


def _write_key(action: c.Action) -> str:
    """Held writes with the same key keep their order; others may pass one that keeps failing."""
    if isinstance(action, c.SaveRecord):
        return f"record/{action.record.record_id}"
    if isinstance(action, c.Alarm):
        return f"alarm/{action.name}"
    return type(action).__name__


class MediaGate:
    """Checks media off the core thread, then hands it to the player.

    Hashing a large video for its sha256 takes seconds on a small board (the result is cached
    per file version), so it runs on one worker thread, never on the core thread. A stop that
    arrives while a check is running cancels the open that would follow it: the lock makes
    "check cancelled, then queue the open" and "mark cancelled, then queue the stop" atomic, so
    the player never opens a media after its stop.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.hashes = HashCache()
        self.lock = threading.Lock()
        self._cancelled: set[str] = set()
        self._jobs: queue.SimpleQueue[tuple[str, str, str | None, float, bool]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="media-check", daemon=True)
        self._thread.start()

    def submit(
        self, token: str, media: str, sha256: str | None, start_at: float, paused: bool
    ) -> None:
        self._jobs.put((token, media, sha256, start_at, paused))

    def cancel(self, token: str) -> None:
        with self.lock:
            self._cancelled.add(token)
            if len(self._cancelled) > 256:
                self._cancelled = {token}
            self.rt.player.stop(token)

    def _run(self) -> None:
        while True:
            token, media, sha256, start_at, paused = self._jobs.get()
            if is_url(media):
                mrl: str | None = media
            else:
                try:
                    mrl = str(check_media(self.rt.cfg.content_dir, media, sha256, self.hashes))
                except MediaError as exc:
                    log.warning("media %s rejected: %s", media, exc.message)
                    self.rt.post(c.MediaRejected(token, exc.reason, exc.message))
                    continue
                except Exception as exc:  # an unexpected failure must still reach the core
                    log.exception("media check of %s failed", media)
                    self.rt.post(c.MediaRejected(token, "unreadable", str(exc)))
                    continue
            with self.lock:
                if token in self._cancelled:
                    continue
                player = self.rt.player
                if paused:
                    player.preroll(token, mrl, start_at)
                else:
                    player.play(token, mrl, start_at)


def _is_disk_full(exc: BaseException) -> bool:
    return classify_error(exc) == FULL


class LogLimiter:
    """At most ``burst`` event-log entries of one kind per ``window_s``; the rest are counted.

    A fault storm (a media failing every few seconds, a flapping link) must not push earlier,
    more useful diagnostics out of the journal or fill the state folder.
    """

    def __init__(self, burst: int = 20, window_s: float = 600.0) -> None:
        self.burst = burst
        self.window_s = window_s
        self._state: dict[str, list[float]] = {}  # kind -> [window start, count, suppressed]

    def admit(self, kind: str, now: float) -> int | None:
        """None: drop it. 0: log it. N > 0: log it, after saying N were suppressed."""
        st = self._state.get(kind)
        if st is None or now - st[0] >= self.window_s:
            suppressed = int(st[2]) if st else 0
            self._state[kind] = [now, 1, 0]
            return suppressed
        if st[1] < self.burst:
            st[1] += 1
            return 0
        st[2] += 1
        return None


class Runtime:
    def __init__(
        self, cfg: AgentConfig, clock: Clock | None = None, player: Any | None = None
    ) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.events: queue.Queue[object] = queue.Queue()
        self.boot = boot_id()
        self.schedules = ScheduleStore(cfg.state_dir, timezone=cfg.timezone)
        self.inbox = (
            ScheduleInbox(cfg.schedule_dir, cfg.timezone, self.call_soon)
            if cfg.schedule_dir
            else None
        )
        self.lkg = LastKnownGood(cfg.state_dir / "clock.lkg")
        self.player_factory: Callable[[], Any] = lambda: VlcPlayer(
            cfg.vlc.options, self._post_player, cfg.vlc.volume
        )
        self.player = player or self.player_factory()
        self.media = MediaGate(self)
        self.store: Store | None = None
        self.core: c.Core | None = None
        self.stop_requested = threading.Event()
        self.ready = threading.Event()
        self.started_mono = self.clock.monotonic()
        self.iterations = 0
        # Extension points for adapters (MQTT link, probes monitor, control socket). All are
        # called on the core thread.
        self.listeners: list[Callable[[str, Any], None]] = []  # (kind, payload) after commit
        self.hooks_per_tick: list[Callable[[], None]] = []
        self.status_providers: dict[str, Callable[[], dict[str, Any]]] = {}
        self.on_shutdown: list[Callable[[], None]] = []  # before the store closes
        self.summary_providers: dict[str, Callable[[], dict[str, Any]]] = {}
        self.started_wall = self.clock.wall()
        self._last_wall = 0.0
        self._last_mono = 0.0
        self._last_lkg_mono = -1e9
        self._last_sync_mono = -1e9
        self._last_dir_poll = -1e9
        self._last_tick_mono = -1e9
        self._schedule_mtimes: tuple[float, ...] = ()
        self.corrupt_store_moved: Path | None = None
        self.exit_code = 0
        # Records and alarms the store did not take, retried in order until they are written.
        self.pending_writes: list[c.Action] = []
        self.held_max = HELD_MAX
        self.held_dropped: dict[str, int] = {}  # held writes given up at the bound, by kind
        self.dropped_writes = 0  # minor writes (events, checkpoints) lost while in trouble
        self.write_trouble: dict[str, WriteTrouble] = {}  # alarm name -> the trouble
        self._next_retry_mono = 0.0  # time.monotonic(): I/O pacing, not core time
        self._failed_keys: set[str] = set()  # held writes already reported as failing
        self._hang_reported_for: float | None = None
        self.log_limiter = LogLimiter()
        self.failing_jobs: dict[str, str] = {}  # side job -> its last error, while it fails

    # -- setup -----------------------------------------------------------------------------

    def open(self) -> None:
        cfg = self.cfg
        for d in (cfg.state_dir, cfg.content_dir):
            d.mkdir(parents=True, exist_ok=True)
        if cfg.schedule_dir:
            cfg.schedule_dir.mkdir(parents=True, exist_ok=True)
        # Only real corruption moves a store aside (once per boot); a lock is waited for; a full
        # or read-only store is opened degraded and the writes it refuses are held in memory.
        self.store, self.corrupt_store_moved = Store.open_or_recover(cfg.db_path, boot=self.boot)
        store = self.store
        self.status_providers["store_writes"] = self._store_status
        if store.degraded:
            log.error("the store %s is open but cannot be written: %s", store.path, store.degraded)
        if self.corrupt_store_moved:
            self._store_event(
                "error",
                "store_corrupt",
                f"The database was damaged; moved aside to {self.corrupt_store_moved.name} and started fresh",
            )
            log.error("store was corrupt; moved aside to %s", self.corrupt_store_moved)
        held_closes = self._close_open_records()
        lkg = self.lkg.load()
        now = self.clock.wall()
        layers, since = self._load_layers()
        history = self._load_history(now)
        history.update(held_closes)
        self.core = c.Core(
            settings_from_config(cfg, self.boot),
            self.clock,
            layers=layers,
            since=since,
            history=history,
            next_seq=store.next_record_seq(),
            lkg=lkg,
            synced=kernel_clock_synced(),
            responsible_since=lkg or None,
            durations=self._load_durations(),
        )
        used = int(store.get(f"process_restarts/{self.boot}", "0") or 0)
        self.core.s.process_restarts_left = max(
            0, cfg.playback.max_process_restarts_per_boot - used
        )
        self._restore_alarms()
        if self.corrupt_store_moved:
            self._execute(
                [
                    c.Alarm(
                        "store_corrupt",
                        "raised",
                        "critical",
                        {"moved_to": self.corrupt_store_moved.name},
                    )
                ]
            )
        self._schedule_mtimes = self.schedules.mtimes()
        self._last_wall, self._last_mono = now, self.clock.monotonic()
        state = self.core.clock_state()
        self._store_event(
            "info",
            "agent_started",
            f"Agent started (clock {state})",
            {"boot_id": self.boot, "pid": os.getpid()},
        )
        log.info(
            "agent started: terminal=%s county=%s clock=%s layers=%s",
            cfg.terminal,
            cfg.county,
            state,
            {k: v.version for k, v in layers.items()},
        )

    def _restore_alarms(self) -> None:
        """The core's alarms left open by the previous run: taken over, or cleared if gone."""
        from agent.adapters.sqlite.alarms import active_alarms

        assert self.core is not None and self.store is not None
        open_alarms = active_alarms(self.store)
        self._execute(self.core.restore_alarms(open_alarms))
        gone = [n for n in RUNTIME_ALARMS_OF_ONE_RUN if n in open_alarms]
        if "store_unwritable" in open_alarms and not self.store.degraded:
            gone.append("store_unwritable")
        reason = "the agent restarted and its store takes writes; a fresh start cleared it"
        self._execute([c.Alarm(n, "cleared", "info", {"reason": reason}) for n in gone])

    def _close_open_records(self) -> dict[str, c.History]:
        """After a crash or power cut: every open record becomes ``interrupted`` at its checkpoint.

        When the store refuses the write (full, read-only, locked), the closed records are held
        and written later; the returned history says they are interrupted (resumable), as the
        store would once they are in.
        """
        store = self.store
        assert store is not None
        open_recs = store.open_records()
        if not open_recs:
            return {}
        for rec in open_recs:
            rec.outcome = "interrupted"
            rec.reason = "the agent stopped while this was playing (crash or power cut)"
            rec.ended_at = rec.ended_at or utc_text(self.clock.wall())
            rec.rev += 1
        try:
            with store.transaction() as conn:
                for rec in open_recs:
                    store.update_record(rec, conn)
                    self._enqueue_record(rec, conn)
                    store.add_event(
                        "warning",
                        "record_interrupted",
                        f"{rec.title}: interrupted at {rec.position:.0f} s",
                        {"record_id": rec.record_id},
                        conn=conn,
                    )
        except (sqlite3.Error, OSError) as exc:
            for rec in open_recs:
                self._action_failed(c.SaveRecord(rec, new=False), exc)
            log.error("%d open record(s) closed as interrupted, held in memory", len(open_recs))
            return {
                rec.occurrence_key: c.History(rec.outcome, rec.record_id, rec.position)
                for rec in open_recs
                if rec.occurrence_key
            }
        log.warning("closed %d open record(s) as interrupted", len(open_recs))
        return {}

    def _store_event(
        self, level: str, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        """An event-log line that may be lost when the store refuses writes (counted, noted)."""
        assert self.store is not None
        try:
            self.store.add_event(level, kind, message, data)
        except (sqlite3.Error, OSError) as exc:
            self._action_failed(c.Log(level, kind, message, data or {}), exc)

    def _enqueue_record(self, rec: Record, conn: sqlite3.Connection) -> None:
        """Queue a final record for the county, in the caller's transaction (same id replaces)."""
        assert self.store is not None
        self.store.enqueue(
            "record",
            rec.record_id,
            "record",
            record_message(rec, self.cfg.county),
            replace=True,
            conn=conn,
        )

    def _load_layers(
        self, fresh: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        """The schedule layers for the core, each in the terminal's time zone (``timezone``).

        ``fresh`` holds documents just applied, already read on the caller's thread: they are
        used as they are. A stored document that cannot be read raises the alarm
        ``schedule_unreadable_{layer}`` (once) and the layer the core runs is kept; the MQTT link
        hears of the alarm and asks the county for the layer again, and its version floor keeps
        older versions out meanwhile. A readable document clears that alarm.
        """
        from agent.adapters.sqlite.alarms import active_alarms
        from agent.domain.schedule import unreadable_alarm

        layers, since = {}, {}
        open_alarms = active_alarms(self.store) if self.store is not None else {}
        actions: list[c.Action] = []
        for layer in LAYERS:
            alarm = unreadable_alarm(layer)
            doc = (fresh or {}).get(layer)
            try:
                if doc is None:
                    doc = self.schedules.load(layer, timezone=self.cfg.timezone)
            except ScheduleRejected as exc:
                kept = self.core.layers.get(layer) if self.core is not None else None
                now_runs = f"v{kept.version} runs on from memory" if kept else "the layer is empty"
                reason = "; ".join(exc.problems[:3])[:500]
                log.error("stored %s schedule is unreadable (%s); %s", layer, reason, now_runs)
                if kept is not None:
                    layers[layer] = kept
                if alarm not in open_alarms:
                    detail = {
                        "layer": layer,
                        "reason": reason,
                        "version_floor": self.schedules.floor(layer),
                        "running_version": kept.version if kept else None,
                    }
                    actions.append(c.Alarm(alarm, "raised", "critical", detail))
                continue
            if alarm in open_alarms:
                detail = {"layer": layer, "version": doc.version if doc else None}
                actions.append(c.Alarm(alarm, "cleared", "info", detail))
            if doc is None:
                continue
            doc.default_timezone = self.cfg.timezone
            layers[layer] = doc
            since[layer] = self.schedules.path(layer).stat().st_mtime
            if (self.schedules.floor(layer) or 0) < doc.version:
                try:
                    self.schedules.keep_floor(layer, doc.version)
                except OSError as exc:
                    log.warning("cannot write the %s schedule's version floor: %s", layer, exc)
        self._execute(actions)
        return layers, since

    def _load_durations(self) -> dict[str, float]:
        """Each course's media length as its latest play measured it (the file may have been
        replaced by a shorter or longer one), for overlap planning after a restart."""
        assert self.store is not None
        rows = self.store.db.execute(
            "SELECT course_id, media_duration FROM records WHERE seq IN ("
            "SELECT MAX(seq) FROM records WHERE media_duration > 0 GROUP BY course_id)"
        )
        return {cid: float(d) for cid, d in rows}

    def _load_history(self, now: float) -> dict[str, c.History]:
        assert self.store is not None
        lookback = self.cfg.playback.missed_lookback_hours * 3600 + 86400
        rows = self.store.db.execute(
            "SELECT occurrence_key, outcome, record_id, position FROM records "
            "WHERE occurrence_key IS NOT NULL AND planned_start >= ? ORDER BY seq",
            (utc_text(now - lookback),),
        )
        return {key: c.History(outcome, rid, pos or 0.0) for key, outcome, rid, pos in rows}

    # -- posting (any thread) ----------------------------------------------------------------

    def post(self, event: object) -> None:
        self.events.put(event)

    def _post_player(self, ev: PlayerEvent) -> None:
        if ev.kind in ("loaded", "unloaded"):
            return
        self.events.put(
            c.PlayerUpdate(ev.token, ev.kind, ev.wall, ev.mono, ev.position, ev.length, ev.detail)
        )

    def submit(self, event: object, timeout: float = 10.0) -> list[c.Action]:
        """Hand a command to the core thread and wait for its actions (control socket, MQTT).

        A ``TimeoutError`` means the command was *not* executed: if the core thread has not
        begun it when the caller gives up, it is cancelled and never runs; if it has begun, the
        caller waits for its real result (a core step takes milliseconds), so no command runs
        behind the back of a caller that was told it failed.
        """
        fut: Future[list[c.Action]] = Future()
        self.events.put(_Submitted(event, fut))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            if fut.cancel():
                raise TimeoutError(
                    f"the agent did not take the command within {timeout:.0f} s; nothing was done"
                ) from None
            # Begun: its result is the truth, however long the step takes (a core that hangs
            # is the watchdog's business, not a reason to tell the caller it failed).
            return fut.result()

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the core thread later; for adapters that need no answer."""
        self.events.put(_Call(fn, Future()))

    def notify(self, kind: str, payload: Any) -> None:
        """Tell the listeners (core thread only) that something was committed."""
        self._notify(kind, payload)

    def call(self, fn: Callable[[], Any], timeout: float | None = 10.0) -> Any:
        """Run ``fn`` on the core thread and return its result (the way adapters touch state)."""
        fut: Future[Any] = Future()
        self.events.put(_Call(fn, fut))
        if timeout is None:
            return fut
        return fut.result(timeout)

    # -- what the terminal says about itself -----------------------------------------------

    def schedule_versions(self) -> dict[str, int]:
        assert self.core is not None
        return {layer: doc.version for layer, doc in self.core.layers.items()}

    def summary(self) -> dict[str, Any]:
        """Small and cheap (the heartbeat carries it): what plays, versions, backlog."""
        assert self.core is not None and self.store is not None
        out: dict[str, Any] = {
            "uptime_s": round(self.clock.monotonic() - self.started_mono, 1),
            "playing": self.core.playing(),
            "schedule_versions": self.schedule_versions(),
            "clock": self.core.clock_state(),
            "outbox": self.store.outbox_depth(),
        }
        for name, provider in self.summary_providers.items():
            try:
                out[name] = provider()
            except Exception:
                log.exception("summary provider %s failed", name)
        return out

    def status_snapshot(self) -> dict[str, Any]:
        """The full picture (the retained status message, stationctl status)."""
        assert self.core is not None and self.store is not None
        tz = self.cfg.tz
        upcoming = []
        for occ in self.core.upcoming(3):
            upcoming.append(
                {
                    "start": utc_text(occ.start),
                    "local_start": _local(occ.start, tz),
                    "item_id": occ.item.id,
                    "course_id": occ.item.course.id,
                    "title": occ.item.course.title,
                    "media": occ.item.course.media,
                    "layer": occ.layer,
                    "priority": occ.priority,
                }
            )
        out = self.summary()
        out.update(
            {
                "terminal": self.cfg.terminal,
                "county": self.cfg.county,
                "started_at": utc_text(self.started_wall),
                "boot_id": self.boot,
                "timezone": self.cfg.timezone,
                "upcoming": upcoming,
                "open_records": len(self.store.open_records()),
                "records_unsent": self.store.outbox_depth("record"),
            }
        )
        for name, provider in self.status_providers.items():
            try:
                out[name] = provider()
            except Exception:
                log.exception("status provider %s failed", name)
        return out

    # -- the loop --------------------------------------------------------------------------

    def run(self, duration: float | None = None) -> None:
        assert self.core is not None
        if hasattr(self.player, "start_thread"):
            self.player.start_thread()
        deadline = None if duration is None else self.clock.monotonic() + duration
        self.ready.set()
        try:
            self._execute(self.core.handle(c.Tick()))
            while not self.stop_requested.is_set():
                if deadline is not None and self.clock.monotonic() >= deadline:
                    break
                wake_at = self.core.next_wakeup()
                wait = max(0.0, min(wake_at - self.clock.wall(), 1.0))
                try:
                    ev = self.events.get(timeout=wait)
                except queue.Empty:
                    ev = c.Tick()
                self._step(ev)
                # A steady stream of adapter events must not starve the timers: tick anyway
                # when a deadline has passed or a second went by without a tick.
                if not isinstance(ev, c.Tick) and (
                    self.clock.wall() >= wake_at
                    or self.clock.monotonic() - self._last_tick_mono >= 1.0
                ):
                    self._step(c.Tick())
                self.iterations += 1
        finally:
            self.shutdown()

    def _step(self, ev: object) -> None:
        assert self.core is not None
        self._check_jump()
        if isinstance(ev, _Call):
            self._serve_call(ev)
            return
        if isinstance(ev, _Submitted):
            if not ev.future.set_running_or_notify_cancel():
                log.warning(
                    "command %s dropped: its caller gave up waiting", type(ev.event).__name__
                )
                return
            try:
                actions = self.core.handle(ev.event)
                self._execute(actions)
                ev.future.set_result(actions)
            except Exception as exc:  # a bad command must never kill the core
                log.exception("command failed")
                ev.future.set_exception(exc)
            return
        if isinstance(ev, c.Tick):
            self._last_tick_mono = self.clock.monotonic()
        self._execute(self.core.handle(ev))
        self._housekeeping()

    def _check_jump(self) -> None:
        assert self.core is not None
        wall, mono = self.clock.wall(), self.clock.monotonic()
        drift = (wall - self._last_wall) - (mono - self._last_mono)
        self._last_wall, self._last_mono = wall, mono
        if abs(drift) > JUMP_THRESHOLD_S:
            log.warning("wall clock jumped by %+.1f s", drift)
            # The kernel's sync state decides how the jump is judged: read it now, not later.
            self._execute(self.core.handle(c.ClockSync(kernel_clock_synced())))
            self._execute(self.core.handle(c.ClockJump(drift)))

    def _housekeeping(self) -> None:
        assert self.core is not None
        mono = self.clock.monotonic()
        self._retry_pending()
        busy = getattr(self.player, "busy_since", None)
        if (
            busy is not None
            and mono - busy > self.cfg.vlc.hang_seconds
            and self._hang_reported_for != busy
        ):
            self._hang_reported_for = busy
            log.error("libvlc has not returned for %.0f s", mono - busy)
            self._execute(self.core.handle(c.PlayerHung(mono - busy)))
        if mono - self._last_sync_mono >= SYNC_CHECK_S:
            self._last_sync_mono = mono
            self._execute(self.core.handle(c.ClockSync(kernel_clock_synced())))
        if mono - self._last_lkg_mono >= LKG_INTERVAL_S:
            self._last_lkg_mono = mono
            self._side_job("last_known_good", self._save_lkg)
        if mono - self._last_dir_poll >= self.cfg.schedule_poll_seconds:
            self._last_dir_poll = mono
            self._side_job("schedule_inbox", self._poll_schedule_dir)
            self._side_job("schedule_files", self._reload_if_changed)
        for hook in self.hooks_per_tick:
            self._side_job(getattr(hook, "__qualname__", "tick hook"), hook)

    def _reload_if_changed(self) -> None:
        if self.schedules.mtimes() != self._schedule_mtimes:
            self.reload_schedules("schedule files changed on disk")

    def _side_job(self, name: str, job: Callable[[], None]) -> None:
        """Run one side job of the loop; a failure is logged and alarmed, and the loop goes on."""
        try:
            job()
        except Exception as exc:
            self._job_failed(name, exc)
            return
        self._job_ok(name)

    def _job_failed(self, name: str, exc: BaseException) -> None:
        """One ``side_job_failed`` alarm stays raised while any side job keeps failing."""
        first = name not in self.failing_jobs
        self.failing_jobs[name] = f"{type(exc).__name__}: {exc}"
        if not first:
            return
        log.error("side job %s failed; the agent goes on without it: %s", name, exc, exc_info=exc)
        if len(self.failing_jobs) == 1:
            detail = {"job": name, "error": self.failing_jobs[name][:300]}
            self._execute([c.Alarm("side_job_failed", "raised", "warning", detail)])

    def _job_ok(self, name: str) -> None:
        """Cleared when every side job that failed has succeeded again."""
        if self.failing_jobs.pop(name, None) is None:
            return
        log.info("side job %s works again", name)
        if not self.failing_jobs:
            self._execute([c.Alarm("side_job_failed", "cleared", "info", {"job": name})])

    def _save_lkg(self) -> None:
        """Persist the core's last-known-good time (the core applies the rules that move it)."""
        if self.core is None:
            return
        try:
            self.lkg.save(self.core.lkg)
        except OSError as exc:
            log.warning("cannot save the last-known-good time: %s", exc)

    # -- schedules -------------------------------------------------------------------------

    def reload_schedules(self, why: str, applied: Any = None) -> None:
        """Hand the stored layers to the core again; ``applied`` is a document just applied
        (a ``ScheduleDoc`` with its ``layer`` set), used as it is instead of being read again."""
        assert self.core is not None
        self._schedule_mtimes = self.schedules.mtimes()
        layers, since = self._load_layers({applied.layer: applied} if applied else None)
        self._execute(self.core.handle(c.ScheduleChanged(layers, since)))
        log.info("schedules reloaded (%s): %s", why, {k: v.version for k, v in layers.items()})

    def apply_schedule(
        self, data: bytes, source: str, layer: str | None = None, parsed: Any = None
    ) -> Any:
        """Validate, persist and load a schedule document; returns the ApplyResult.

        ``parsed`` is what ``agent.domain.schedule.parse_untrusted(data, source)`` returned or raised
        (a ``ScheduleDoc`` or a ``ScheduleRejected``): adapters read documents from outside on
        their own thread, so that the core thread never parses one.
        """
        assert self.store is not None
        result = self.schedules.apply(
            data,
            source,
            layer=layer,
            terminal=self.cfg.terminal,
            county=self.cfg.county,
            parsed=parsed,
        )
        level = "info" if result.status == "applied" else "warning"
        version = "(no valid version)" if result.version is None else f"v{result.version}"
        message = f"Schedule {result.layer} {version} from {source}: {result.status}"
        if result.reasons:
            message += " — " + "; ".join(result.reasons[:5])
        self._log(
            c.Log(
                level,
                f"schedule_{result.status}",
                message,
                {"layer": result.layer, "version": result.version, "reasons": result.reasons[:20]},
            )
        )
        if result.status == "applied":
            self.reload_schedules(f"applied {result.layer} {version}", applied=result.doc)
        return result

    def _poll_schedule_dir(self) -> None:
        """Hand settled inbox documents to the inbox's worker (it parses them off this thread)."""
        if self.inbox is not None:
            self.inbox.poll(self._apply_inbox_document, self._inbox_report)

    def _apply_inbox_document(self, data: bytes, source: str, parsed: Any) -> Any:
        return self.apply_schedule(data, source, parsed=parsed)

    def _inbox_report(self, name: str, failure: BaseException | None) -> None:
        if failure is None:
            self._job_ok("schedule_inbox")
        else:
            self._job_failed("schedule_inbox", OSError(f"{name}: {failure}"))

    # -- executing actions -----------------------------------------------------------------

    def _execute(self, actions: list[c.Action]) -> None:
        for action in actions:
            if self.pending_writes and self._behind_held(action):
                continue
            try:
                self._do(action)
            except Exception as exc:
                self._action_failed(action, exc)

    def _behind_held(self, action: c.Action) -> bool:
        """While writes are held, a record or alarm queues behind them (their order is kept),
        and a checkpoint of a held record is left out: the held record carries its progress."""
        if isinstance(action, MUST_PERSIST):
            self._hold(action)
            return True
        if isinstance(action, c.Checkpoint):
            key = f"record/{action.record_id}"
            return any(_write_key(held) == key for held in self.pending_writes)
        return False

    def _action_failed(self, action: c.Action, exc: Exception) -> None:
        """A record or alarm that was not written is held; a minor write is counted as lost.

        SQLite rolls a failed transaction back, so the store stays consistent; playback goes on.
        """
        kind = classify_error(exc) if isinstance(action, STORE_WRITES) else None
        if isinstance(action, MUST_PERSIST):
            self._hold(action)
            if kind in STORE_TROUBLES:
                self._trouble(kind, exc)
            else:
                self._write_failed(action, exc)
        elif kind in STORE_TROUBLES:
            self.dropped_writes += 1
            self._trouble(kind, exc)
        else:
            log.exception("action %s failed", type(action).__name__)

    @property
    def disk_full_since(self) -> float | None:
        trouble = self.write_trouble.get("disk_full")
        return trouble.since if trouble else None

    def _trouble(self, kind: str, exc: BaseException) -> None:
        """The whole store refuses writes (full, read-only, locked, I/O error): note it once.

        Its alarm cannot be stored now; it is stored, raised at this time, when writes go in
        again. Meanwhile the status (``store_writes``) and the journal say it.
        """
        name = TROUBLE_ALARMS[kind]
        if name in self.write_trouble:
            return
        detail = {"state_dir": str(self.cfg.state_dir), "reason": kind, "error": str(exc)[:300]}
        self.write_trouble[name] = WriteTrouble(self.clock.wall(), detail)
        log.error(
            "%s: the store %s cannot be written (%s: %s); records and alarms are kept in "
            "memory until it can",
            name,
            self.cfg.db_path,
            kind,
            exc,
        )

    def _write_failed(self, action: c.Action, exc: BaseException) -> None:
        """One record or alarm failed to write while the store otherwise works (a constraint, a
        bug): it is held like the rest, and ``record_write_failed`` is raised at once (the
        alarms table most likely takes it)."""
        key = _write_key(action)
        if key not in self._failed_keys:
            self._failed_keys.add(key)
            log.error(
                "record_write_failed: %s was not written (%s: %s); it is held and tried again",
                key,
                type(exc).__name__,
                exc,
            )
        if "record_write_failed" in self.write_trouble:
            return
        detail: dict[str, Any] = {"write": key, "error": f"{type(exc).__name__}: {exc}"[:300]}
        if isinstance(action, c.SaveRecord):
            detail["record_id"] = action.record.record_id
        trouble = WriteTrouble(self.clock.wall(), detail)
        self.write_trouble["record_write_failed"] = trouble
        try:
            self._persist_alarm(
                c.Alarm("record_write_failed", "raised", "critical", detail), at=trouble.since
            )
            trouble.raise_stored = True
        except Exception as err:
            log.error("cannot store the record_write_failed alarm yet: %s", err)

    def _record_write_bug(self, record_id: str, what: str) -> None:
        """A write that matched no row: nothing is lost, but something is wrong; say which."""
        detail = {"record_id": record_id, "what": what}
        self._execute(
            [
                c.Log("error", "record_write_bug", f"record {record_id}: {what}", detail),
                c.Alarm("record_write_bug", "raised", "warning", detail),
            ]
        )

    def _hold(self, action: c.Action) -> None:
        """Keep a record or alarm in memory, in order, until the store takes it."""
        self.pending_writes.append(action)
        self._enforce_held_bound()

    def _enforce_held_bound(self) -> None:
        """At most ``held_max`` held writes. First, at no loss, a record save that a later held
        save of the same record supersedes is folded into it; then the oldest alarm goes; a
        record goes only when nothing else is left, written in full to the journal first.
        Alarms and records given up are counted (``held_dropped``, and in the trouble's alarm).
        """
        while len(self.pending_writes) > self.held_max:
            if self._fold_superseded_save():
                continue
            index = next(
                (i for i, a in enumerate(self.pending_writes) if not isinstance(a, c.SaveRecord)),
                0,
            )
            dropped = self.pending_writes.pop(index)
            kind = "record" if isinstance(dropped, c.SaveRecord) else "alarm"
            self.held_dropped[kind] = self.held_dropped.get(kind, 0) + 1
            if isinstance(dropped, c.SaveRecord):
                log.error(
                    "held writes at their bound (%d): record %s can no longer be kept in "
                    "memory; here it is in full, to be recovered from the journal: %s",
                    self.held_max,
                    dropped.record.record_id,
                    json.dumps(dropped.record.to_dict(), ensure_ascii=False),
                )
            else:
                log.error(
                    "held writes at their bound (%d): the oldest held %s was given up: %s",
                    self.held_max,
                    kind,
                    dropped,
                )

    def _fold_superseded_save(self) -> bool:
        """Drop the oldest held save whose record has a later held save; that one then inserts
        the record if the dropped one would have. True when one was folded."""
        latest: dict[str, int] = {}
        for i, held in enumerate(self.pending_writes):
            if isinstance(held, c.SaveRecord):
                latest[held.record.record_id] = i
        for i, held in enumerate(self.pending_writes):
            if isinstance(held, c.SaveRecord) and latest[held.record.record_id] != i:
                later = latest[held.record.record_id]
                after = self.pending_writes[later]
                assert isinstance(after, c.SaveRecord)
                self.pending_writes[later] = c.SaveRecord(after.record, new=held.new or after.new)
                del self.pending_writes[i]
                return True
        return False

    def _retry_pending(self) -> None:
        """Write what is held, in order, then store each trouble's alarm once writes go in.

        Tried at most every RETRY_S (a try may wait for a lock), and always when stopping.
        """
        if self.store is None or (not self.pending_writes and not self.write_trouble):
            return
        if time.monotonic() < self._next_retry_mono and not self.stop_requested.is_set():
            return
        try:
            if self._reopen_store() and self._flush_held():
                self._end_troubles()
        finally:
            self._next_retry_mono = time.monotonic() + RETRY_S

    def _flush_held_at_exit(self) -> None:
        """Last chance before the store closes: write what is held; a record that still cannot
        be written goes in full to the journal, since memory is about to go."""
        self._next_retry_mono = 0.0
        self._retry_pending()
        latest = {
            a.record.record_id: a.record for a in self.pending_writes if isinstance(a, c.SaveRecord)
        }
        for record_id, rec in latest.items():
            log.error(
                "stopping with record %s not in the store; here it is in full, to be "
                "recovered from the journal: %s",
                record_id,
                json.dumps(rec.to_dict(), ensure_ascii=False),
            )
        if self.pending_writes:
            log.error("stopping with %d write(s) the store did not take", len(self.pending_writes))

    def _reopen_store(self) -> bool:
        """A store opened degraded (full or read-only at start) is opened normally when it can."""
        store = self.store
        assert store is not None
        if store.degraded is None:
            return True
        try:
            if store.reopen():
                log.warning("the store %s can be written again", store.path)
                return True
        except StoreError as exc:
            log.error("the store %s cannot be opened again: %s", store.path, exc)
        return False

    def _flush_held(self) -> bool:
        """One pass over the held writes; False while the store refuses writes as a whole.

        A write that fails alone keeps its place and holds back only later writes of the same
        record or alarm; the others go in.
        """
        held, self.pending_writes = self.pending_writes, []
        kept: list[c.Action] = []
        blocked: set[str] = set()
        refused = False
        for action in held:
            key = _write_key(action)
            if refused or key in blocked:
                kept.append(action)
                continue
            try:
                self._do(action)
            except Exception as exc:
                kept.append(action)
                kind = classify_error(exc)
                if kind in STORE_TROUBLES:
                    refused = True
                    self._trouble(kind, exc)
                else:
                    blocked.add(key)
                    self._write_failed(action, exc)
        self.pending_writes = kept + self.pending_writes
        self._enforce_held_bound()
        return not refused

    def _end_troubles(self) -> None:
        """Writes go in again: store each trouble's alarm (raised at its start, then cleared)."""
        for name, trouble in list(self.write_trouble.items()):
            if name == "record_write_failed" and self.pending_writes:
                continue  # a write still fails on its own
            detail = {
                **trouble.detail,
                "dropped_writes": self.dropped_writes,
                "held_dropped": dict(self.held_dropped),
            }
            try:
                if not trouble.raise_stored:
                    self._persist_alarm(
                        c.Alarm(name, "raised", "critical", detail), at=trouble.since
                    )
                    trouble.raise_stored = True
                self._persist_alarm(c.Alarm(name, "cleared", "info", detail))
            except Exception as exc:
                log.error("cannot store the %s alarm yet: %s", name, exc)
                return
            del self.write_trouble[name]
            log.warning(
                "%s cleared: the store takes writes again and held writes are in "
                "(%d minor writes lost; held writes given up: %s)",
                name,
                self.dropped_writes,
                self.held_dropped or "none",
            )
        if not self.write_trouble:
            self.dropped_writes = 0
            self.held_dropped = {}
            self._failed_keys.clear()

    def _store_status(self) -> dict[str, Any]:
        """What the store has not taken yet; the troubles' alarms are stored only once it can."""
        return {
            "degraded": self.store.degraded if self.store is not None else None,
            "troubles": {
                name: {"since": utc_text(t.since), **t.detail}
                for name, t in self.write_trouble.items()
            },
            "held_writes": len(self.pending_writes),
            "dropped_writes": self.dropped_writes,
            "held_dropped": dict(self.held_dropped),
        }

    def _save_record(self, rec: Record, new: bool) -> None:
        """Insert or update a record, and queue it for the county when final, in one transaction.

        An update that matches no row is a bug somewhere: the record is inserted instead, so
        nothing is lost, and ``record_write_bug`` names it. An insert of a record that is
        already there (a held insert whose commit did go through) becomes an update.
        """
        store = self.store
        assert store is not None
        missing = False
        with store.transaction() as conn:
            if new:
                try:
                    store.insert_record(rec, conn)
                except sqlite3.IntegrityError:
                    if not store.update_record(rec, conn):
                        raise
            elif not store.update_record(rec, conn):
                missing = True
                store.insert_record(rec, conn)
            if rec.outcome in FINAL:
                self._enqueue_record(rec, conn)
        if missing:
            self._record_write_bug(rec.record_id, "an update matched no record; inserted instead")
        if rec.outcome in FINAL:
            self._notify("record", rec)

    def _persist_alarm(self, alarm: c.Alarm, at: float | None = None) -> None:
        from agent.adapters.sqlite.alarms import persist_alarm_change
        from agent.domain.health import AlarmChange

        assert self.store is not None
        change = AlarmChange(
            alarm.name, alarm.action, at or self.clock.wall(), alarm.severity, alarm.detail
        )  # type: ignore[arg-type]
        persist_alarm_change(
            self.store,
            change,
            self.cfg.terminal,
            self.cfg.county,
            clock_state=self.core.clock_state() if self.core else None,
        )
        self._notify("alarm", change)

    def _do(self, action: c.Action) -> None:
        store = self.store
        assert store is not None
        match action:
            case c.SaveRecord(record=rec, new=new):
                self._save_record(rec, new)
            case c.Checkpoint():
                if not store.checkpoint_record(
                    action.record_id, action.position, action.played, action.completion
                ):
                    self._record_write_bug(action.record_id, "a checkpoint matched no record")
            case c.Preroll():
                self.media.submit(
                    action.token, action.media, action.sha256, action.start_at, paused=True
                )
            case c.Play():
                self.media.submit(
                    action.token, action.media, action.sha256, action.start_at, paused=False
                )
            case c.Start():
                self.player.start(action.token)
            case c.Stop():
                self.media.cancel(action.token)
            case c.UnloadPlayer():
                self.player.unload()
            case c.Log():
                self._log(action)
            case c.Alarm():
                self._persist_alarm(action)
            case c.RestartPlayer():
                self._restart_player(action.reason)
            case c.ExitProcess():
                log.error("exiting so that systemd restarts the agent: %s", action.reason)
                self.exit_code = 3
                self.request_stop()
                key = f"process_restarts/{self.boot}"
                try:
                    store.put(key, str(int(store.get(key, "0") or 0) + 1))
                except (sqlite3.Error, OSError, ValueError) as exc:
                    # The budget is then not counted for this restart: systemd's own start
                    # limit still bounds a loop, and exiting is what matters now.
                    log.error("cannot count this restart (%s); exiting anyway", exc)
            case c.Reply():
                pass

    def _log(self, entry: c.Log) -> None:
        verdict = self.log_limiter.admit(entry.kind, self.clock.monotonic())
        if verdict is None:
            return
        if verdict:  # messages of this kind were held back: say how many, once
            self._log_now(
                c.Log(
                    "warning",
                    "log_suppressed",
                    f"{verdict} more '{entry.kind}' messages were suppressed (rate limit)",
                    {"kind": entry.kind, "suppressed": verdict},
                )
            )
        self._log_now(entry)

    def _log_now(self, entry: c.Log) -> None:
        level = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}.get(
            entry.level, logging.INFO
        )
        log.log(level, "%s: %s", entry.kind, entry.message)
        if self.store is not None:
            self.store.add_event(entry.level, entry.kind, entry.message, entry.data or None)
        self._notify("log", entry)

    def _notify(self, kind: str, payload: Any) -> None:
        for listener in self.listeners:
            try:
                listener(kind, payload)
            except Exception:
                log.exception("listener failed for %s", kind)

    def _run_shutdown_hooks(self) -> None:
        """Run the shutdown hooks on a helper thread while this thread still serves their calls.

        A hook such as the MQTT link's stop confirms the last PUBACKs through ``runtime.call``,
        which only this (the core) thread answers: run on this thread, it would wait for itself.
        Commands are refused from here on; calls are served until the hooks end or time runs out.
        """
        if not self.on_shutdown:
            return
        done = threading.Event()

        def run_hooks() -> None:
            for hook in self.on_shutdown:
                try:
                    hook()
                except Exception:
                    log.exception("shutdown hook failed")
            done.set()

        threading.Thread(target=run_hooks, name="shutdown-hooks", daemon=True).start()
        deadline = time.monotonic() + SHUTDOWN_HOOKS_S
        while not done.is_set() and time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(ev, _Call):
                self._serve_call(ev)
            elif isinstance(ev, _Submitted) and ev.future.set_running_or_notify_cancel():
                ev.future.set_exception(RuntimeError("the agent is stopping; nothing was done"))
        if not done.is_set():
            log.error("shutdown hooks still running after %.0f s; closing anyway", SHUTDOWN_HOOKS_S)

    def _serve_call(self, ev: _Call) -> None:
        if not ev.future.set_running_or_notify_cancel():
            return
        try:
            ev.future.set_result(ev.fn())
        except Exception as exc:
            log.exception("core-thread call failed")
            ev.future.set_exception(exc)

    def _drain_calls(self) -> None:
        """Run the adapter calls still queued (e.g. a last alarm or summary) before closing."""
        while True:
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(ev, _Call) and self.store is not None:
                self._serve_call(ev)
            elif isinstance(ev, _Submitted) and ev.future.set_running_or_notify_cancel():
                ev.future.set_exception(RuntimeError("the agent is stopping; nothing was done"))

    def _restart_player(self, reason: str) -> None:
        new = self.player_factory()
        if hasattr(new, "start_thread"):
            new.start_thread()
        # The media-check thread hands media to ``self.player`` under the gate's lock: swap it
        # under the same lock, so a check never talks to a player that is being thrown away.
        with self.media.lock:
            old, self.player = self.player, new
        # A hung worker may never return: shut it down from a throw-away thread.
        threading.Thread(target=old.shutdown, kwargs={"timeout": 5.0}, daemon=True).start()
        log.warning("player restarted: %s", reason)

    # -- shutdown --------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested.set()
        self.events.put(c.Tick())

    def shutdown(self) -> None:
        """Adapters stop first (while the store is open), then the records, then the store."""
        core, store = self.core, self.store
        self._run_shutdown_hooks()
        self._drain_calls()
        self._retry_pending()
        if core is not None and store is not None:
            self._execute(core.interrupt_current("the agent was stopped while this was playing"))
            self._flush_held_at_exit()
        if hasattr(self.player, "shutdown"):
            self.player.shutdown()
        self._save_lkg()
        if store is not None:
            self._store_event("info", "agent_stopped", "Agent stopped")
            store.close()
            self.store = None
