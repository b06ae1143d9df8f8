"""The content service: course files reach the content folder by themselves, verified, in time.

One worker thread, never the core thread, does all the slow work in *passes*:

1. ask the core thread for a snapshot (schedule layers, library, last plays, what the player
   holds) and work out what is wanted (``agent.domain.content_plan.wanted``): the files of
   slots within ``content.horizon_days``, soonest first, then the library's;
2. find which are already there and verified (hashed once per file version);
3. take complete, matching files from the satellite intake folder;
4. fetch the missing ones one at a time over HTTP (within the download windows unless the slot
   is near, within the bandwidth cap), making room first by evicting files nobody needs soon;
5. publish readiness and judge the alarms (``content_missing``, ``content_fetch_failed``,
   ``content_no_space``) on the core thread.

Between passes it sleeps until something is due: a manifest or schedule change, a retry, a
window opening, a slot coming within the alarm distance, the intake poll, or the periodic
re-plan. A stop cancels a running download; its ``.part`` stays for the next start.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.content_files import ContentFolder
from agent.domain import core as c
from agent.domain.content_plan import Want, conflicts, fetch_allowed, next_window_start, wanted
from agent.domain.manifest import LibraryCourse
from agent.domain.planner import plan
from agent.domain.schedule import is_url
from agent.runtime.config import ContentConfig
from agent.runtime.content_intake import Intake
from agent.runtime.content_room import DiskBudget
from agent.runtime.content_state import ContentState, Tracked
from agent.runtime.host import Host

log = logging.getLogger("agent.content")

ALARMS = ("content_missing", "content_fetch_failed", "content_no_space")
SEVERITY = {"content_missing": "warning", "content_fetch_failed": "warning"}
INPUT_TIMEOUT_S = 30.0
WORKER_NICE = 10  # the worker's niceness: well behind the core thread and libvlc's threads
SOURCE_POLL_S = 3.0  # an imported folder's files not yet settled are looked at again this soon


@dataclass(frozen=True)
class Inputs:
    """What a pass needs from the core thread, taken in one hop."""

    layers: dict[str, Any]
    durations: dict[str, float]
    default_slot_s: float
    library: dict[str, LibraryCourse]
    last_played: dict[str, float]
    busy: frozenset[str]
    open_alarms: frozenset[str]


def lower_priority(niceness: int = WORKER_NICE) -> None:
    """Make the calling thread yield the CPU to the core and the player (Linux nice is per
    thread): a download at full speed must not delay a slot's start."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except OSError as exc:
        log.debug("content: cannot lower the worker's priority: %s", exc)


def retry_delay(tries: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Doubling back-off per file with jitter, so a fleet does not retry a mirror in step."""
    window = min(cap, base * 2 ** max(0, tries - 1))
    return window * (0.5 + 0.5 * rand())


class ContentService:
    def __init__(
        self,
        host: Host,
        execute: Callable[[list[c.Action]], None],
        library: Callable[[], dict[str, LibraryCourse]],
        last_played: Callable[[], dict[str, float]],
        cfg: ContentConfig | None = None,
        fetch: Callable[..., Any] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.host = host
        self.cfg = cfg or host.cfg.content
        self.folder = ContentFolder(host.cfg.content_dir)
        self.budget = DiskBudget(self.folder, self.cfg)
        self.intake = Intake(self.cfg.intake_dir, self.folder)
        self._execute = execute
        self._library = library
        self._last_played = last_played
        self._fetch = fetch
        self._rand = rand
        self.state = ContentState(self.cfg.alarm_after_tries)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._raised: set[str] | None = None  # None until the first pass read the store's
        self._thread: threading.Thread | None = None
        self._short: dict[str, Any] | None = None  # the first file of this pass without room
        self._told: tuple[Any, ...] | None = None  # the readiness counts last announced
        self.passes = 0

    # -- any thread --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="content", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Something changed (a manifest, a schedule): work out what is wanted again now."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._cancel.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        lower_priority()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                sleep_s = self.run_pass()
            except Exception:
                log.exception("content pass failed; trying again later")
                sleep_s = self.cfg.retry_seconds
            self._wake.wait(max(0.05, sleep_s))

    def run_pass(self) -> float:
        """One pass (see the module's doc); returns how long to sleep before the next."""
        self.passes += 1
        inputs = self._inputs()
        if inputs is None:
            return self.cfg.retry_seconds
        now = self.host.clock.wall()
        wants = self._wants(inputs, now)
        tracked = self.state.replace_wants(wants)
        self.budget.drop_stale_partials(wants)
        missing = [t for t in tracked.values() if not self._present(t)]
        for folder, move in self.intake.folders():
            if missing:
                how, taken = self.intake.take([t.want for t in missing], folder, move)
                for path in taken:
                    self._event("info", "content_received", f"{path} taken from the {how}", path)
                missing = [t for t in missing if not self._present(t)]
        self._publish(inputs)
        self._short = None
        for t in missing:
            if self._stop.is_set() or self._wake.is_set():
                break
            if self._try_fetch(t, inputs):
                self._publish(inputs)
                return 0.0  # something landed: look again at once
        self.state.no_space = self._short  # a whole pass found (or not) a file without room
        self._publish(inputs)
        return self._sleep_for(missing)

    def _inputs(self) -> Inputs | None:
        def take() -> Inputs | None:
            host = self.host
            core, store = host.core, host.store
            if core is None or store is None:
                return None
            from agent.adapters.sqlite.alarms import active_alarms

            busy = {s.course.media for s in (core.current, core.prerolled) if s is not None}
            return Inputs(
                layers=dict(core.layers),
                durations=dict(core.durations),
                default_slot_s=core.s.default_slot_s,
                library=self._library(),
                last_played=self._last_played(),
                busy=frozenset(busy),
                open_alarms=frozenset(active_alarms(store)),
            )

        try:
            return self.host.call(take, timeout=INPUT_TIMEOUT_S)
        except Exception as exc:
            log.warning("content: the core did not answer (%s); later", exc)
            return None

    def _wants(self, inputs: Inputs, now: float) -> list[Want]:
        horizon = now + self.cfg.horizon_days * 86400
        planned = plan(inputs.layers, now - 3600, horizon, inputs.default_slot_s, inputs.durations)
        occurrences = [
            (
                max(occ.start, now),
                occ.item.course.media,
                occ.item.course.sha256,
                occ.item.course.size,
                occ.item.course.id,
                occ.item.course.title,
            )
            for occ in planned.occurrences
            if occ.end > now and not is_url(occ.item.course.media)
        ]
        for problem in conflicts(occurrences, inputs.library):
            log.warning("content: %s", problem)
        return wanted(occurrences, inputs.library)

    def _present(self, t: Tracked) -> bool:
        want = t.want
        try:
            if want.size is None or want.sha256 is None:
                ok = self.folder.dest(want.path).is_file()
            else:
                ok = self.folder.verified(want.path, want.size, want.sha256)
        except (OSError, ValueError) as exc:
            self.state.set(want.path, "missing", f"cannot check: {exc}")
            return False
        if ok:
            t.tries, t.retry_at = 0, None
            self.state.set(want.path, "ready")
        elif t.status == "ready":
            self.state.set(want.path, "missing")
        return ok

    def add_source(self, folder: Path) -> None:
        """Copy wanted files from ``folder`` (``stationctl library import``), then look again."""
        self.intake.add_stick(folder)
        self.kick()

    def _try_fetch(self, t: Tracked, inputs: Inputs) -> bool:
        """Fetch one missing file if it may be fetched now; True when it landed."""
        want, cfg = t.want, self.cfg
        if not want.sources or want.size is None or want.sha256 is None:
            self.state.set(want.path, "missing", "no source: not in any course manifest")
            return False
        mono = self.host.clock.monotonic()
        if t.retry_at is not None and mono < t.retry_at:
            self.state.set(want.path, "failed", t.reason, t.done)
            return False
        now = self.host.clock.wall()
        urgent_s = cfg.urgent_hours * 3600
        if not fetch_allowed(want, now, self.host.cfg.tz, cfg.windows, urgent_s):
            self.state.set(want.path, "waiting", "outside the download windows", t.done)
            return False
        keep = {w.want.path for w in self.state.files.values()} | set(inputs.busy)
        room = self.budget.make_room(want, keep, inputs.last_played)
        if room.short is not None:
            self._short = self._short or room.short
            self.state.no_space = self._short
        if not room.fits:
            self.state.set(want.path, "missing", "no space", t.done)
            return False
        if room.evicted:
            self._event(
                "info",
                "content_evicted",
                f"{len(room.evicted)} file(s) removed ({room.freed / 1e6:.1f} MB) to make room "
                f"for {want.path}",
                want.path,
                {"evicted": room.evicted[:20]},
            )
        self.state.set(want.path, "fetching", None, t.done)
        self._publish(inputs)
        try:
            from agent.adapters.http_fetch import FetchError  # urllib3 and ssl: only when fetching

            result = (self._fetch or _fetch_file())(
                want.sources,
                self.folder.dest(want.path),
                want.size,
                want.sha256,
                part_dir=self.folder.partial_dir,
                max_kbps=cfg.max_kbps,
                stall_seconds=cfg.stall_seconds,
                connect_timeout=cfg.connect_timeout_seconds,
                ca_file=cfg.ca_file,
                progress=self._progress_for(want),
                cancel=self._cancel,
            )
        except FetchError as exc:
            if exc.reason == "cancelled":
                self.state.set(want.path, "waiting", "stopped", t.done)
                return False
            t.tries += 1
            delay = retry_delay(t.tries, cfg.retry_seconds, cfg.max_retry_seconds, self._rand)
            t.retry_at = self.host.clock.monotonic() + delay
            reason = f"{exc.reason}: {str(exc)[:200]}"
            self.state.set(want.path, "failed", reason, t.done)
            log.warning(
                "content: %s failed (try %d, next in %.0f s): %s", want.path, t.tries, delay, exc
            )
            return False
        t.tries, t.retry_at, t.mirror = 0, None, result.mirror
        self.state.set(want.path, "ready")
        mb = want.size / 1e6
        self._event(
            "info",
            "content_fetched",
            f"{want.path} fetched ({mb:.1f} MB from {result.mirror}, "
            f"{result.resumed_from} bytes resumed, {result.seconds:.0f} s)",
            want.path,
            {"mirror": result.mirror, "resumed_from": result.resumed_from, "size": want.size},
        )
        return True

    def _progress_for(self, want: Want) -> Callable[[int, int], None]:
        """Progress into the status at every call; into the log at each tenth of the file
        (ten lines per file, however long it takes)."""
        logged = {"tenth": -1}

        def progress(done: int, total: int) -> None:
            self.state.progress(want.path, done)
            tenth = 10 * done // total if total else 0
            if tenth > logged["tenth"]:
                logged["tenth"] = tenth
                log.info(
                    "content: fetching %s: %d%% (%.2f of %.2f MB)",
                    want.path,
                    100 * done // total if total else 0,
                    done / 1e6,
                    total / 1e6,
                )

        return progress

    def _sleep_for(self, missing: list[Tracked]) -> float:
        cfg, clock = self.cfg, self.host.clock
        now, mono = clock.wall(), clock.monotonic()
        waits = [cfg.replan_seconds]
        if missing and cfg.intake_dir is not None:
            waits.append(cfg.intake_poll_seconds)
        if missing and self.intake.importing:
            waits.append(min(cfg.intake_poll_seconds, SOURCE_POLL_S))
        alarm_s, urgent_s = cfg.alarm_hours * 3600, cfg.urgent_hours * 3600
        for t in missing:
            if t.retry_at is not None:
                waits.append(t.retry_at - mono)
            slot = t.want.slot
            if slot is not None:
                for distance in (alarm_s, urgent_s):
                    if slot - distance > now:
                        waits.append(slot - distance - now)
            if t.status == "waiting" and cfg.windows:
                opens = next_window_start(now, self.host.cfg.tz, cfg.windows)
                if opens is not None:
                    waits.append(opens - now)
        return max(0.05, min(waits))

    # -- what people see ----------------------------------------------------------------------

    def _publish(self, inputs: Inputs) -> None:
        """Judge the alarms from the state now and carry out the changes on the core thread."""
        now = self.host.clock.wall()
        ready, verdicts = self.state.judge(now, self.cfg.alarm_hours * 3600)
        counts = (ready.needed, ready.ready, ready.fetching, ready.failed, ready.soonest_missing)
        if counts != self._told:
            self._told = counts
            summary = self.state.summary()
            self.host.call_soon(lambda: self.host.notify("content_changed", summary))
        if self._raised is None:
            self._raised = {name for name in ALARMS if name in inputs.open_alarms}
        actions: list[c.Action] = []
        for name in ALARMS:
            detail = verdicts.raised.get(name)
            if detail is not None and name not in self._raised:
                actions.append(c.Alarm(name, "raised", SEVERITY.get(name, "warning"), detail))
                self._raised.add(name)
            elif detail is None and name in self._raised:
                actions.append(c.Alarm(name, "cleared", "info", {}))
                self._raised.discard(name)
        if actions:
            self.host.call_soon(lambda: self._execute(actions))

    def _event(
        self, level: str, kind: str, message: str, path: str, extra: dict[str, Any] | None = None
    ) -> None:
        log.info("content: %s", message)
        entry = c.Log(level, kind, message, {"path": path, **(extra or {})})
        self.host.call_soon(lambda: self._execute([entry]))


def _fetch_file() -> Callable[..., Any]:
    """The HTTP fetcher, imported on the first download: urllib3 and ssl cost about 2-4 MB of
    RSS that a terminal with every file in place never needs."""
    from agent.adapters.http_fetch import fetch_file

    return fetch_file
