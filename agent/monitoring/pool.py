"""The worker threads that run the probes which can block (network, DNS, ICMP, external tools).

A probe that only reads kernel files runs on the monitor's own thread instead (``Cadence.quick``),
so an idle box does not wake a worker, and hand a result back, for a read of a few sysfs files.
The pool starts no thread before it has a job, and then only as many as the jobs need (up to
its size): a configuration whose probes are all quick has no worker thread at all.

A job whose probe overran is written off by the monitor (``replace``): a fresh worker takes the
stuck one's place, up to a cap over the pool's life, and the stuck one retires when its call
returns if the pool is over its size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.monitoring.probes.base import Probe, Sample

log = logging.getLogger("agent.monitoring.monitor")

HANDOFF_S = 0.1  # a job queued this long behind a slow one gets another worker


@dataclass
class Job:
    probe: Probe
    started: float
    deadline: float
    written_off: bool = False
    thread: threading.Thread | None = None
    done: bool = False


def measure(probe: Probe, deadline: float, wall: Callable[[], float]) -> Sample:
    """One ``collect``; a probe that raises or returns the wrong thing yields a failed sample
    (a probe bug must cost its own sample, never the thread that ran it)."""
    t0 = time.monotonic()
    try:
        sample = probe.collect(deadline)
        if not isinstance(sample, Sample):
            raise TypeError(f"collect() returned {type(sample).__name__}, not a Sample")
    except Exception as exc:
        log.exception("probe %s failed", probe.name)
        sample = Sample(at=wall(), ok=False, error=f"{type(exc).__name__}: {exc}")
    sample.elapsed_ms = (time.monotonic() - t0) * 1000.0
    return sample


class WorkerPool:
    """At most ``size`` threads (plus the stuck ones written off) taking jobs from one queue.

    Few wake-ups per turn: ``submit`` wakes one worker for all the jobs of a turn, and that one
    runs them in order while they are quick; the monitor calls ``hand_off`` when a job has sat in
    the queue for ``HANDOFF_S`` (one ahead of it is slow), which wakes or starts another worker,
    so a dead link's timeouts still run side by side. Results are kept here and ``notify()``
    (wake the monitor) is called once, when the turn's last job is done, not once per result; the
    monitor takes them with ``take_results`` whenever it is awake.
    """

    def __init__(self, size: int, notify: Callable[[], None], wall: Callable[[], float]) -> None:
        self.size = size
        self._notify = notify
        self._wall = wall
        self._cv = threading.Condition(threading.Lock())
        self._queue: deque[Job] = deque()
        self._results: list[tuple[Job, Sample]] = []
        self._running: dict[int, Job] = {}  # the jobs being measured, by id()
        self._alive = 0  # threads that will take another job
        self._idle = 0  # of those, the ones waiting and not yet told to wake
        self._handoff_at: float | None = None
        self._stopping = False
        self.threads: list[threading.Thread] = []

    # -- the monitor's side ---------------------------------------------------------------------

    def submit(self, jobs: list[Job]) -> None:
        """Queue one turn's jobs and wake one worker for them."""
        if not jobs:
            return
        with self._cv:
            self._queue.extend(jobs)
            self._handoff_at = time.monotonic() + HANDOFF_S
            self._wake_one()

    def handoff_due(self) -> float | None:
        """When (``time.monotonic()``) ``hand_off`` should run, if jobs are waiting."""
        with self._cv:
            if not self._queue or (self._idle == 0 and self._alive >= self.size):
                return None
            return self._handoff_at

    def hand_off(self) -> None:
        """Jobs have waited ``HANDOFF_S`` behind a slow one: put another worker on them."""
        with self._cv:
            now = time.monotonic()
            if self._queue and self._handoff_at is not None and now >= self._handoff_at:
                self._handoff_at = now + HANDOFF_S
                self._wake_one()

    def take_results(self) -> list[tuple[Job, Sample]]:
        with self._cv:
            out, self._results = self._results, []
        return out

    def replace(self) -> None:
        """A worker is stuck in a written-off call: put another in its place."""
        with self._cv:
            self._alive += 1
            self._start_thread()

    def stop(self, timeout: float, stuck: set[threading.Thread | None]) -> None:
        """Release every worker; wait (at most ``timeout``) for those not stuck in a probe."""
        with self._cv:
            self._stopping = True
            self._queue.clear()
            self._cv.notify_all()
        end = time.monotonic() + timeout
        for worker in list(self.threads):
            if worker not in stuck:  # a thread stuck in a probe will not come back in time
                worker.join(max(0.0, end - time.monotonic()))

    # -- inside (call with the lock held) --------------------------------------------------------

    def _wake_one(self) -> None:
        if self._idle > 0:
            self._idle -= 1
            self._cv.notify()
        elif self._alive < self.size:
            self._alive += 1
            self._start_thread()

    def _start_thread(self) -> None:
        name = f"probe-worker-{len(self.threads)}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _notify_if_done(self) -> None:
        """Wake the monitor once the turn is over: nothing queued, nothing running that counts
        (a written-off job no longer does; the monitor has reported it already)."""
        done = all(job.written_off for job in self._running.values())
        if done and self._results and not self._queue:
            self._notify()

    # -- the workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._stopping:
                    self._idle += 1
                    self._cv.wait()  # whoever notifies has taken this thread off ``_idle``
                if self._stopping:
                    return
                job = self._queue.popleft()
                self._running[id(job)] = job
            job.thread = threading.current_thread()
            sample = measure(job.probe, job.deadline, self._wall)
            job.done = True
            with self._cv:
                del self._running[id(job)]
                self._results.append((job, sample))
                if job.written_off:
                    self._notify()  # the monitor waits for this one to start the probe again
                else:
                    self._notify_if_done()
                if job.written_off and self._alive > self.size:
                    self._alive -= 1  # a replacement took this worker's place: retire
                    return
