"""The probe runner: probes on their intervals, each with a deadline, waking only for work.

Threads: one scheduler thread ("probe-monitor") that owns all state (latest samples, link window,
alarm judge, runner counters, summary builder) and calls ``emit``; up to ``cfg.workers`` worker
threads (``agent.monitoring.pool``) that only call ``probe.collect(deadline)`` for the probes that
can block. A probe that overruns its deadline is reported as failed at the deadline, its worker is
written off and replaced (up to a cap), and that probe is not started again until the stuck call
returns; so one hung probe costs one thread, never the others' turns, and never the caller's.

An idle box should not wake for nothing, so the scheduler sleeps until its next real deadline,
runs the quick probes (``Cadence.quick``: a few reads of kernel files) on its own thread instead
of handing each to a worker and waiting for the result, and takes every probe turn that falls due
within ``ALIGN_S`` (or 5 % of the probe's interval, if less) in the same wake-up; a cycle about to
leave the link window is dropped in that wake-up too (within 1 % of the window). A quick probe
that takes longer than its timeout on the monitor thread runs on a worker from then on. The
other probes of a turn go to the pool together: one worker runs them in order while they are
quick, another joins as soon as one is slow, and the monitor is woken once, when the turn's jobs
are all done (so a result may wait for the turn's slowest probe, at most its timeout).

Other threads (the core's heartbeat and status) never touch the scheduler's state: after each
change it publishes a frozen ``MonitorView``, and ``summary()``, ``snapshot()`` and ``latest()``
read only the latest one (a single reference read). A reader can neither see a half-updated
window nor break the scheduler's iteration over it ("deque mutated during iteration").

The monitor knows no probe by name: verdicts, heartbeat fields and summary feeds come from each
probe's registration (``agent.monitoring.probes.registry``), the link's from ``probes.link``.

The monitor does not touch SQLite: alarm changes and summaries go out through ``emit`` and the
core thread persists them (see ``agent.adapters.sqlite.alarms``).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agent.adapters.kernel_clock import SystemClock
from agent.domain.clockrules import Clock
from agent.domain.linkstats import LinkWindow, SummaryBuilder, WindowStats
from agent.monitoring.judge import AlarmJudge
from agent.monitoring.pool import Job, WorkerPool, measure
from agent.monitoring.probes import Probe, ProbesConfig, Roots, build_probes
from agent.monitoring.probes.base import RunContext, Sample
from agent.monitoring.probes.registry import REGISTRY, ProbeSpec

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any]], None]
DEADLINE_GRACE = 0.25  # seconds past a probe's deadline before the monitor writes it off
MAX_WRITTEN_OFF = 8  # replacement workers for hung calls, at most, over the monitor's life
ALIGN_S = 2.0  # a turn due this soon after a wake-up is taken in it (at most 5 % of the interval)
WINDOW_EARLY = 0.01  # a cycle this close to leaving the link window (share of it) goes at once


class _Wake:
    """Put on the wake-up queue to wake the scheduler before its next due time: ``stop``, or
    the worker pool when a turn's jobs are done."""


@dataclass(frozen=True)
class MonitorView:
    """What the monitor thread last published: read-only, safe to hold on any thread."""

    latest: Mapping[str, Sample]
    window: WindowStats
    alarms: Mapping[str, float]
    runner: Mapping[str, Mapping[str, int]]
    written_off: int


_WAKE = _Wake()


class Monitor:
    """Runs the probes; see the module docstring. ``emit(kind, payload)`` kinds:

    - ``"alarm"``: ``AlarmChange.to_dict()`` for each raised or cleared alarm;
    - ``"link_summary"``: ``SummaryBuilder.build()`` once per ``summary_minutes`` (and a partial
      one at ``stop()``);
    - ``"sample"``: ``{"probe": name, "sample": {...}}`` when ``cfg.emit_samples`` is on.
    """

    def __init__(
        self,
        cfg: ProbesConfig,
        clock: Clock | None = None,
        emit: Emit | None = None,
        *,
        probes: Sequence[Probe] | None = None,
        roots: Roots | None = None,
        tcp_targets: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        disk_paths: Sequence[Path] = (),
        shutdown_marker: Path | None = None,
        active_alarms: dict[str, float] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock: Clock = clock or SystemClock()
        self.emit: Emit = emit or (lambda kind, payload: None)
        self.probes: list[Probe] = list(
            probes
            if probes is not None
            else build_probes(
                cfg, roots, tcp_targets=tcp_targets, dns_names=dns_names, disk_paths=disk_paths
            )
        )
        self._judge = AlarmJudge(cfg.alarms, cfg.mode, probes=self.probes)
        for name, raised_at in (active_alarms or {}).items():
            self._judge.restore(name, raised_at)
        self._window = LinkWindow(cfg.window_minutes * 60.0)
        self.run_context = RunContext(shutdown_marker=shutdown_marker)
        self._latest: dict[str, Sample] = {}
        self._stats: dict[str, dict[str, int]] = {
            p.name: {"runs": 0, "timeouts": 0, "errors": 0, "skipped_busy": 0} for p in self.probes
        }
        self._wakeups: queue.SimpleQueue[_Wake] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = WorkerPool(cfg.workers, lambda: self._wakeups.put(_WAKE), self.clock.wall)
        # Probes run on the monitor's thread: those declared quick, until one overruns.
        self._inline = {p.name for p in self.probes if getattr(p, "quick", False)}
        self._written_off = 0
        self._hung: list[Job] = []
        self._summary: SummaryBuilder | None = None
        self._summary_due = 0.0
        self._window_exits: deque[float] = deque()  # when each cycle in the window leaves it
        self._view = self._build_view(self.clock.monotonic())

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("monitor already started")
        self._hooks("begin")
        mono = self.clock.monotonic()
        self._summary = SummaryBuilder(self.cfg.mode, self.clock.wall(), mono)
        self._summary_due = mono + self.cfg.summary_minutes * 60.0
        self._thread = threading.Thread(target=self._run, name="probe-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling, emit the partial summary, release the workers; never waits on a hung probe."""
        self._stop.set()
        self._wakeups.put(_WAKE)
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.stop(min(timeout, 1.0), {j.thread for j in self._hung if not j.done})
        self._hooks("end")

    def _hooks(self, which: str) -> None:
        """Call each probe's ``begin``/``end`` hook; one that fails is logged, not fatal."""
        for probe in self.probes:
            hook = getattr(probe, which, None)
            if hook is None:
                continue
            try:
                hook(self.run_context)
            except Exception:
                log.exception("probe %s: %s() failed", probe.name, which)

    @property
    def workers(self) -> list[threading.Thread]:
        """The worker threads started so far (none until a probe that can block is due)."""
        return list(self._pool.threads)

    # -- scheduler -------------------------------------------------------------------------

    def _run(self) -> None:
        """Start what is due, then sleep (no polling) until the next due time, the end of a
        turn's jobs, a job's deadline, or stop."""
        due = {p.name: self.clock.monotonic() for p in self.probes}
        running: dict[str, Job] = {}
        while not self._stop.is_set():
            now = self.clock.monotonic()
            inline: list[Probe] = []
            jobs: list[Job] = []
            for probe in self.probes:
                if now + min(ALIGN_S, probe.interval * 0.05) < due[probe.name]:
                    continue
                if probe.name in running:
                    self._stats[probe.name]["skipped_busy"] += 1
                elif probe.name in self._inline:
                    inline.append(probe)
                else:
                    # Deadlines live on the real monotonic clock: probes compare against it.
                    job = Job(probe, now, time.monotonic() + probe.timeout)
                    running[probe.name] = job
                    jobs.append(job)
                # Keep the cadence of the schedule, but never try to catch up on missed turns.
                due[probe.name] = max(due[probe.name] + probe.interval, now + probe.interval * 0.5)
            for probe in inline:  # before the workers start: no two threads want the GIL
                self._run_inline(probe)
            self._pool.submit(jobs)
            changed = bool(inline)
            real_now = time.monotonic()
            handoff = self._pool.handoff_due()
            if handoff is not None and real_now >= handoff:
                self._pool.hand_off()
            for job in list(running.values()):
                if not job.written_off and real_now > job.deadline + DEADLINE_GRACE:
                    self._write_off(job)
            for job, sample in self._pool.take_results():
                if running.get(job.probe.name) is job:
                    del running[job.probe.name]
                if not job.written_off:
                    self._handle(job.probe, sample)
                    changed = True
            now = self.clock.monotonic()
            if now >= self._summary_due:
                self._flush_summary(now)
            early = self._window.seconds * WINDOW_EARLY
            changed = self._window.expire(now + early) or changed
            while self._window_exits and self._window_exits[0] < now + early:
                self._window_exits.popleft()
            if changed:
                self._publish(now)
            try:
                self._wakeups.get(timeout=self._sleep_s(due, running))
            except queue.Empty:
                continue
            while True:  # one pass handles every wake-up that queued meanwhile
                try:
                    self._wakeups.get_nowait()
                except queue.Empty:
                    break
        self._flush_summary(self.clock.monotonic())
        self._publish(self.clock.monotonic())

    def _run_inline(self, probe: Probe) -> None:
        """A quick probe, measured here; one that overran its timeout goes to the workers."""
        sample = measure(probe, time.monotonic() + probe.timeout, self.clock.wall)
        if sample.elapsed_ms > probe.timeout * 1000.0:
            self._inline.discard(probe.name)
            log.warning(
                "probe %s took %.1f s on the monitor thread (timeout %.1f s): it runs on a "
                "worker from now on",
                probe.name,
                sample.elapsed_ms / 1000.0,
                probe.timeout,
            )
        self._handle(probe, sample)

    def _sleep_s(self, due: Mapping[str, float], running: Mapping[str, Job]) -> float:
        """Seconds until the scheduler has something to do: a probe's turn, the summary, a cycle
        leaving the link window (its figures change), a running probe's write-off, or jobs
        waiting behind a slow one (``WorkerPool.hand_off``)."""
        times = [*due.values(), self._summary_due]
        if self._window_exits:
            times.append(self._window_exits[0])
        wait = min(times) - self.clock.monotonic()
        pending = [j.deadline + DEADLINE_GRACE for j in running.values() if not j.written_off]
        handoff = self._pool.handoff_due()
        if handoff is not None:
            pending.append(handoff)
        if pending:
            wait = min(wait, min(pending) - time.monotonic())
        return max(0.0, wait)

    def _write_off(self, job: Job) -> None:
        """The probe overran: report it failed now and put a fresh worker in its place."""
        job.written_off = True
        self._hung = [j for j in self._hung if not j.done] + [job]
        self._stats[job.probe.name]["timeouts"] += 1
        log.warning("probe %s overran its %.1f s deadline", job.probe.name, job.probe.timeout)
        self._handle(
            job.probe,
            Sample(
                at=self.clock.wall(),
                ok=False,
                error=f"deadline of {job.probe.timeout:g} s exceeded",
            ),
        )
        if self._written_off < MAX_WRITTEN_OFF:
            self._written_off += 1
            self._pool.replace()
        self._publish(self.clock.monotonic())

    def _handle(self, probe: Probe, sample: Sample) -> None:
        now, mono = self.clock.wall(), self.clock.monotonic()
        stats = self._stats[probe.name]
        stats["runs"] += 1
        if not sample.ok:
            stats["errors"] += 1
        self._latest[probe.name] = sample
        seen = self._judge.observe(sample, now, mono)
        changes = list(seen.changes)
        if seen.cycle is not None:
            self._window.add_cycle(mono, seen.cycle.up, seen.cycle.attempts)
            self._window_exits.append(mono + self._window.seconds)
            if self._summary is not None:
                self._summary.add_cycle(mono, seen.cycle.up, seen.cycle.attempts)
            changes += self._judge.window(self._window.stats(mono), now, mono)
        if self._summary is not None and seen.spec is not None and seen.spec.period is not None:
            try:
                seen.spec.period(sample, self._summary, mono)
            except Exception:  # errors as data: the summary goes on without this sample
                log.exception("probe %s: summary feed failed", probe.name)
        for change in changes:
            self._emit("alarm", change.to_dict())
        if self.cfg.emit_samples:
            self._emit("sample", {"probe": probe.name, "sample": _plain(sample)})

    def _flush_summary(self, mono: float) -> None:
        if self._summary is None:
            return
        summary = self._summary.build(self.clock.wall(), mono)
        self._summary = SummaryBuilder(self.cfg.mode, summary["period_end"], mono)
        self._summary_due = mono + self.cfg.summary_minutes * 60.0
        if summary["cycles"] or summary.get("lock_samples") or summary.get("lock_seconds"):
            self._emit("link_summary", summary)

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            self.emit(kind, payload)
        except Exception:  # the consumer's bug must not stop the monitoring
            log.exception("emit(%s) failed", kind)

    # -- publishing (monitor thread) -------------------------------------------------------

    def _build_view(self, mono: float) -> MonitorView:
        return MonitorView(
            latest=MappingProxyType(dict(self._latest)),
            window=self._window.stats(mono),
            alarms=MappingProxyType(self._judge.active()),
            runner=MappingProxyType(
                {name: MappingProxyType(dict(c)) for name, c in self._stats.items()}
            ),
            written_off=self._written_off,
        )

    def _publish(self, mono: float) -> None:
        """Replace the published view; readers keep whichever one they already hold."""
        self._view = self._build_view(mono)

    # -- views (any thread: they read only the published view) -----------------------------

    @property
    def view(self) -> MonitorView:
        return self._view

    def latest(self, name: str) -> Sample | None:
        return self._view.latest.get(name)

    def summary(self) -> dict[str, Any]:
        """A small dict for the heartbeat (well under 1 KB as JSON): the link's fields, then
        each registered probe's fields from its latest sample, then the open alarms."""
        view = self._view
        out: dict[str, Any] = {"mode": self.cfg.mode}
        out.update(self._judge.link.summary(view.window, view.alarms))
        for spec in REGISTRY.specs():
            sample = view.latest.get(spec.name)
            if spec.summary is not None and isinstance(sample, spec.sample):
                out.update(_fields(spec, sample, self.cfg.mode))
        out["alarms"] = sorted(view.alarms)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything we know, for the retained ``status`` message and ``stationctl status``."""
        view = self._view
        return {
            "mode": self.cfg.mode,
            "probes": {name: _plain(sample) for name, sample in view.latest.items()},
            "link_window": view.window.to_dict(),
            "alarms": dict(view.alarms),
            "runner": {
                "stats": {k: dict(v) for k, v in view.runner.items()},
                "workers_written_off": view.written_off,
            },
        }


def _plain(sample: Sample) -> dict[str, Any]:
    data = dataclasses.asdict(sample)
    data["kind"] = type(sample).__name__
    return data


def _fields(spec: ProbeSpec, sample: Sample, mode: str) -> dict[str, Any]:
    try:
        return dict(spec.summary(sample, mode)) if spec.summary is not None else {}
    except Exception:  # errors as data: the heartbeat goes out without this probe's fields
        log.exception("probe %s: summary fields failed", spec.name)
        return {}
