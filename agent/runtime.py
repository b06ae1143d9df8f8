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
import errno
import logging
import os
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import core as c
from agent.clock import Clock, LastKnownGood, SystemClock, boot_id, kernel_clock_synced, plausible
from agent.config import AgentConfig
from agent.media import HashCache, MediaError, is_url
from agent.media import check as check_media
from agent.player import PlayerEvent, VlcPlayer
from agent.schedule import LAYERS, ScheduleRejected, ScheduleStore
from agent.store import Record, Store, utc_text

log = logging.getLogger("agent")

JUMP_THRESHOLD_S = 2.0
LKG_INTERVAL_S = 1800.0  # each write costs ~24 KB of flash (fsync); see docs/performance.md
SYNC_CHECK_S = 60.0
SCHEDULE_FILE_SUFFIXES = (".yaml", ".yml", ".json")
FINAL = ("completed", "stopped", "error", "interrupted", "skipped", "missed")


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
    )


def _local(ts: float, tz: Any) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def record_message(rec: Record, county: str) -> dict[str, Any]:
    """The record as published: the stored fields plus the envelope (ts, county)."""
    payload = rec.to_dict()
    payload["ts"] = utc_text(time.time())
    payload["county"] = county
    return payload


MUST_PERSIST = (c.SaveRecord, c.Alarm)


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
        self._lock = threading.Lock()
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
        with self._lock:
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
            with self._lock:
                if token in self._cancelled:
                    continue
                player = self.rt.player
                if paused:
                    player.preroll(token, mrl, start_at)
                else:
                    player.play(token, mrl, start_at)


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "full" in text or "no space" in text


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
        self.schedules = ScheduleStore(cfg.state_dir)
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
        # Writes that failed because the disk was full, retried in order until they succeed.
        self.pending_writes: list[c.Action] = []
        self.dropped_writes = 0
        self.disk_full_since: float | None = None
        self._hang_reported_for: float | None = None
        self.log_limiter = LogLimiter()

    # -- setup -----------------------------------------------------------------------------

    def open(self) -> None:
        cfg = self.cfg
        for d in (cfg.state_dir, cfg.content_dir):
            d.mkdir(parents=True, exist_ok=True)
        if cfg.schedule_dir:
            cfg.schedule_dir.mkdir(parents=True, exist_ok=True)
        self.store, self.corrupt_store_moved = Store.open_or_recover(cfg.db_path)
        store = self.store
        if self.corrupt_store_moved:
            store.add_event(
                "error",
                "store_corrupt",
                f"The database was damaged; moved aside to {self.corrupt_store_moved.name} and started fresh",
            )
            log.error("store was corrupt; moved aside to %s", self.corrupt_store_moved)
        self._close_open_records()
        lkg = self.lkg.load()
        now = self.clock.wall()
        layers, since = self._load_layers()
        history = self._load_history(now)
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
        )
        used = int(store.get(f"process_restarts/{self.boot}", "0") or 0)
        self.core.s.process_restarts_left = max(
            0, cfg.playback.max_process_restarts_per_boot - used
        )
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
        store.add_event(
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

    def _close_open_records(self) -> None:
        """After a crash or power cut: every open record becomes ``interrupted`` at its checkpoint."""
        store = self.store
        assert store is not None
        open_recs = store.open_records()
        if not open_recs:
            return
        with store.transaction() as conn:
            for rec in open_recs:
                rec.outcome = "interrupted"
                rec.reason = "the agent stopped while this was playing (crash or power cut)"
                rec.ended_at = rec.ended_at or utc_text(self.clock.wall())
                rec.rev += 1
                store.update_record(rec, conn)
                self._enqueue_record(rec, conn)
                store.add_event(
                    "warning",
                    "record_interrupted",
                    f"{rec.title}: interrupted at {rec.position:.0f} s",
                    {"record_id": rec.record_id},
                    conn=conn,
                )
        log.warning("closed %d open record(s) as interrupted", len(open_recs))

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

    def _load_layers(self) -> tuple[dict[str, Any], dict[str, float]]:
        layers, since = {}, {}
        for layer in LAYERS:
            try:
                doc = self.schedules.load(layer)
            except ScheduleRejected as exc:
                log.error("stored %s schedule is unreadable, ignoring it: %s", layer, exc)
                continue
            if doc is not None:
                layers[layer] = doc
                since[layer] = self.schedules.path(layer).stat().st_mtime
        return layers, since

    def _load_durations(self) -> dict[str, float]:
        assert self.store is not None
        rows = self.store.db.execute(
            "SELECT course_id, MAX(media_duration) FROM records WHERE media_duration > 0 GROUP BY course_id"
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
        """Hand a command to the core thread and wait for its actions (control socket, MQTT)."""
        fut: Future[list[c.Action]] = Future()
        self.events.put(_Submitted(event, fut))
        return fut.result(timeout)

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
            try:
                ev.future.set_result(ev.fn())
            except Exception as exc:
                log.exception("core-thread call failed")
                ev.future.set_exception(exc)
            return
        if isinstance(ev, _Submitted):
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
            self._execute(self.core.handle(c.ClockSync(kernel_clock_synced(), self.lkg.value)))
        if mono - self._last_lkg_mono >= LKG_INTERVAL_S:
            self._last_lkg_mono = mono
            self._save_lkg()
        if mono - self._last_dir_poll >= self.cfg.schedule_poll_seconds:
            self._last_dir_poll = mono
            self._poll_schedule_dir()
            mtimes = self.schedules.mtimes()
            if mtimes != self._schedule_mtimes:
                self.reload_schedules("schedule files changed on disk")
        for hook in self.hooks_per_tick:
            hook()

    def _save_lkg(self) -> None:
        now = self.clock.wall()
        if plausible(now, self.lkg.value):
            try:
                self.lkg.save(now)
            except OSError as exc:
                log.warning("cannot save the last-known-good time: %s", exc)

    # -- schedules -------------------------------------------------------------------------

    def reload_schedules(self, why: str) -> None:
        assert self.core is not None
        self._schedule_mtimes = self.schedules.mtimes()
        layers, since = self._load_layers()
        self._execute(self.core.handle(c.ScheduleChanged(layers, since)))
        log.info("schedules reloaded (%s): %s", why, {k: v.version for k, v in layers.items()})

    def apply_schedule(self, data: bytes, source: str, layer: str | None = None) -> Any:
        """Validate, persist and load a schedule document; returns the ApplyResult."""
        assert self.store is not None
        result = self.schedules.apply(
            data, source, layer=layer, terminal=self.cfg.terminal, county=self.cfg.county
        )
        level = "info" if result.status == "applied" else "warning"
        message = f"Schedule {result.layer} v{result.version} from {source}: {result.status}"
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
            self.reload_schedules(f"applied {result.layer} v{result.version}")
        return result

    def _poll_schedule_dir(self) -> None:
        d = self.cfg.schedule_dir
        if d is None:
            return
        try:
            entries = sorted(
                p
                for p in d.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix in SCHEDULE_FILE_SUFFIXES
            )
        except OSError as exc:
            log.warning("cannot read schedule folder %s: %s", d, exc)
            return
        for path in entries:
            try:
                st = path.stat()
                if time.time() - st.st_mtime < 2.0:
                    continue  # a datacast may still be writing it
                data = path.read_bytes()
            except OSError:
                continue
            result = self.apply_schedule(data, str(path))
            target = d / ("applied" if result.status == "applied" else result.status)
            target.mkdir(exist_ok=True)
            dest = target / path.name
            shutil.move(str(path), str(dest))
            if result.reasons:
                dest.with_name(dest.name + ".reason.txt").write_text(
                    "\n".join(result.reasons) + "\n"
                )

    # -- executing actions -----------------------------------------------------------------

    def _execute(self, actions: list[c.Action]) -> None:
        for action in actions:
            if self.pending_writes and isinstance(action, MUST_PERSIST):
                self.pending_writes.append(action)  # keep the order behind earlier failures
                continue
            try:
                self._do(action)
            except (sqlite3.OperationalError, OSError) as exc:
                if not _is_disk_full(exc):
                    log.exception("action %s failed", type(action).__name__)
                    continue
                self._disk_full(action, exc)
            except Exception:
                log.exception("action %s failed", type(action).__name__)

    def _disk_full(self, action: c.Action, exc: BaseException) -> None:
        """The state folder is full: keep what must not be lost in memory and retry it later.

        SQLite rolls a failed transaction back, so the store stays consistent; playback goes on.
        """
        if isinstance(action, MUST_PERSIST):
            self.pending_writes.append(action)
        else:
            self.dropped_writes += 1
        if self.disk_full_since is None:
            self.disk_full_since = self.clock.wall()
            log.error(
                "disk_full: the state folder %s is full (%s); records are kept in memory "
                "until space returns",
                self.cfg.state_dir,
                exc,
            )

    def _retry_pending(self) -> None:
        if not self.pending_writes and self.disk_full_since is None:
            return
        while self.pending_writes:
            action = self.pending_writes[0]
            try:
                self._do(action)
            except (sqlite3.OperationalError, OSError) as exc:
                if _is_disk_full(exc):
                    return
                log.exception("pending %s failed for good", type(action).__name__)
            self.pending_writes.pop(0)
        if self.disk_full_since is not None:
            since, self.disk_full_since = self.disk_full_since, None
            detail = {"state_dir": str(self.cfg.state_dir), "dropped_writes": self.dropped_writes}
            try:
                self._persist_alarm(c.Alarm("disk_full", "raised", "critical", detail), at=since)
                self._persist_alarm(c.Alarm("disk_full", "cleared", "info", detail))
            except (sqlite3.OperationalError, OSError) as exc:
                log.error("cannot record the disk_full alarm yet: %s", exc)
                self.disk_full_since = since
                return
            log.warning(
                "disk_full cleared: space is back, pending writes flushed (%d minor writes dropped)",
                self.dropped_writes,
            )
            self.dropped_writes = 0

    def _persist_alarm(self, alarm: c.Alarm, at: float | None = None) -> None:
        from agent.alarms import persist_alarm_change
        from agent.health import AlarmChange

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
                with store.transaction() as conn:
                    if new:
                        store.insert_record(rec, conn)
                    else:
                        store.update_record(rec, conn)
                    if rec.outcome in FINAL:
                        self._enqueue_record(rec, conn)
                if rec.outcome in FINAL:
                    self._notify("record", rec)
            case c.Checkpoint():
                store.checkpoint_record(
                    action.record_id, action.position, action.played, action.completion
                )
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
                store.put(
                    f"process_restarts/{self.boot}",
                    str(int(store.get(f"process_restarts/{self.boot}", "0") or 0) + 1),
                )
                log.error("exiting so that systemd restarts the agent: %s", action.reason)
                self.exit_code = 3
                self.request_stop()
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

    def _drain_calls(self) -> None:
        """Run the adapter calls still queued (e.g. a last alarm or summary) before closing."""
        while True:
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(ev, _Call) and self.store is not None:
                try:
                    ev.future.set_result(ev.fn())
                except Exception as exc:
                    ev.future.set_exception(exc)

    def _restart_player(self, reason: str) -> None:
        old = self.player
        # A hung worker may never return: shut it down from a throw-away thread.
        threading.Thread(target=old.shutdown, kwargs={"timeout": 5.0}, daemon=True).start()
        self.player = self.player_factory()
        if hasattr(self.player, "start_thread"):
            self.player.start_thread()
        log.warning("player restarted: %s", reason)

    # -- shutdown --------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested.set()
        self.events.put(c.Tick())

    def shutdown(self) -> None:
        core, store = self.core, self.store
        for hook in self.on_shutdown:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")
        self._drain_calls()
        self._retry_pending()
        if core is not None and store is not None:
            self._execute(core.interrupt_current("the agent was stopped while this was playing"))
        if hasattr(self.player, "shutdown"):
            self.player.shutdown()
        self._save_lkg()
        if store is not None:
            store.add_event("info", "agent_stopped", "Agent stopped")
            store.close()
            self.store = None
