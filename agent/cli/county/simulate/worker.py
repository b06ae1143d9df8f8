"""One process of the simulated fleet: many terminals on one selector loop, no thread each.

The parent starts ``python -m agent.cli.county.simulate.worker CONFIG.json`` and talks over
pipes: the worker prints one JSON line a second (``{"t": "stats", ...}``) and reads commands on
stdin (``quiet``: no more records and link flaps, so the backlog can drain; ``mark``: count
in ``back`` only the terminals connected from now on; ``stop``: offline
with reason shutdown, disconnect, write the result file, exit). The result file lists every
record made (``record_id``, newest ``rev``, ``seq``, terminal) and every creation-to-ack latency,
for the checks against the collector's database.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import random
import selectors
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.cli.county.simulate.link import Link, LinkSettings
from agent.cli.county.simulate.terminal import SimTerminal
from agent.domain.backoff import Backoff

MISC_SLICES = 5  # keepalive bookkeeping: a fifth of the links every 0.2 s


@dataclass
class WorkerConfig:
    first: int  # the number of the first terminal (t-0001 is 1)
    count: int
    county: str
    host: str
    port: int
    result: str  # where to write the result file
    protocol: str = "5"
    keepalive: int = 60
    heartbeat: float = 60.0
    record_every: float = 60.0  # mean seconds between records, per terminal (0: none)
    revise: float = 0.1  # share of records sent again later with rev 2
    flap_every: float = 0.0  # mean seconds between link flaps, per terminal (0: none)
    ack_timeout: float = 30.0
    backoff_min: float = 2.0
    backoff_max: float = 60.0
    stable_after: float = 5.0
    ramp: float = 10.0  # the first connects spread over this many seconds
    seed: int = 1
    validate_all: bool = False


def terminal_id(n: int) -> str:
    return f"t-{n:04d}"


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.sel = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.tick = itertools.count()
        self.rng = random.Random(cfg.seed * 1_000_003 + cfg.first)
        self.quiet = False
        self.stopping = False
        self.mark = 0.0  # "back" counts the terminals connected since this (monotonic)
        self.marks = 0  # how many marks: the parent knows which stats count from its mark
        settings = LinkSettings(
            cfg.host,
            cfg.port,
            cfg.keepalive,
            cfg.backoff_min,
            cfg.backoff_max,
            cfg.stable_after,
        )
        self.links: list[Link] = []
        for n in range(cfg.first, cfg.first + cfg.count):
            rng = random.Random(self.rng.getrandbits(64))
            term = SimTerminal(
                terminal_id(n),
                cfg.county,
                cfg.protocol,
                cfg.ack_timeout,
                rng,
                validate_all=cfg.validate_all,
            )
            backoff = Backoff(cfg.backoff_min, cfg.backoff_max, rng.random)
            self.links.append(Link(term, settings, self.sel, self.at, backoff))

    def at(self, when: float, what: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (when, next(self.tick), what))

    # -- the terminals' own clocks ------------------------------------------------------------

    def start(self) -> None:
        now = time.monotonic()
        cfg = self.cfg
        for link in self.links:
            rng = link.term.rng
            self.at(now + rng.uniform(0, cfg.ramp), link.connect)
            self.at(now + cfg.ramp + rng.uniform(0, cfg.heartbeat), lambda lk=link: self._beat(lk))
            if cfg.record_every > 0:
                self._next_record(link, now + cfg.ramp)
            if cfg.flap_every > 0:
                self._next_flap(link, now + cfg.ramp)

    def _beat(self, link: Link) -> None:
        link.heartbeat()
        jitter = link.term.rng.uniform(0.9, 1.1)
        self.at(time.monotonic() + self.cfg.heartbeat * jitter, lambda: self._beat(link))

    def _next_record(self, link: Link, after: float) -> None:
        when = after + link.term.rng.expovariate(1.0 / self.cfg.record_every)
        self.at(when, lambda: self._record(link))

    def _record(self, link: Link) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        rid = link.term.new_record(now, time.time())
        if link.term.rng.random() < self.cfg.revise:
            later = now + link.term.rng.uniform(0.2, 1.0) * self.cfg.record_every
            self.at(later, lambda: self._revise(link, rid))
        link.pump()
        self._next_record(link, now)

    def _revise(self, link: Link, rid: str) -> None:
        if not self.quiet:
            link.term.revise(rid, time.monotonic(), time.time())
            link.pump()

    def _next_flap(self, link: Link, after: float) -> None:
        when = after + link.term.rng.expovariate(1.0 / self.cfg.flap_every)
        self.at(when, lambda: self._flap(link))

    def _flap(self, link: Link) -> None:
        if not self.quiet:
            link.flap()
            self._next_flap(link, time.monotonic())

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        os.set_blocking(sys.stdin.fileno(), False)
        self.sel.register(sys.stdin, selectors.EVENT_READ, None)
        self.start()
        next_misc = next_stats = time.monotonic()
        misc_slice = 0
        stop_by: float | None = None
        buf = b""
        while True:
            now = time.monotonic()
            wait = min(next_misc, next_stats) - now
            if self.timers:
                wait = min(wait, self.timers[0][0] - now)
            for key, mask in self.sel.select(max(0.0, wait)):
                if key.data is None:
                    chunk = os.read(sys.stdin.fileno(), 4096)
                    if not chunk:
                        chunk = b"stop\n"  # the parent is gone
                        self.sel.unregister(sys.stdin)
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if self._command(line.decode().strip()) and stop_by is None:
                            stop_by = time.monotonic() + 3.0
                else:
                    key.data.on_ready(mask)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, what = heapq.heappop(self.timers)
                what()
            if now >= next_misc:
                for link in self.links[misc_slice::MISC_SLICES]:
                    link.misc()
                misc_slice = (misc_slice + 1) % MISC_SLICES
                next_misc = now + 1.0 / MISC_SLICES
            if now >= next_stats:
                self._emit({"t": "stats", **self.stats()})
                next_stats = now + 1.0
            if stop_by is not None and (
                now >= stop_by or all(lk.client is None for lk in self.links)
            ):
                break
        self._write_result()
        self._emit({"t": "done", **self.stats()})

    def _command(self, cmd: str) -> bool:
        """Returns True when the worker should stop."""
        if cmd == "quiet":
            self.quiet = True
        elif cmd == "mark":
            self.mark = time.monotonic()
            self.marks += 1
        elif cmd == "stop" and not self.stopping:
            self.stopping = True
            self.quiet = True
            for link in self.links:
                link.close()
            return True
        return False

    def stats(self) -> dict[str, Any]:
        terms = [lk.term for lk in self.links]
        now = time.monotonic()
        return {
            "terminals": len(self.links),
            "online": sum(1 for lk in self.links if lk.state == "up"),
            "marks": self.marks,
            "back": sum(1 for lk in self.links if lk.connects and lk.connected_at >= self.mark),
            "created": sum(tm.counts.created for tm in terms),
            "revised": sum(tm.counts.revised for tm in terms),
            "acked": sum(tm.counts.acked for tm in terms),
            "unacked_records": sum(tm.outbox.records() for tm in terms),
            "oldest_unacked_s": max(
                (now - q for tm in terms if (q := tm.outbox.oldest_record()) is not None),
                default=0.0,
            ),
            "outbox": sum(len(tm.outbox) for tm in terms),
            "heartbeats": sum(tm.counts.heartbeats for tm in terms),
            "schedule_acks": sum(tm.counts.schedule_acks for tm in terms),
            "applied": _versions(tm.applied.get("county") for tm in terms),
            "connects": sum(lk.connects for lk in self.links),
            "attempts": sum(lk.attempts for lk in self.links),
            "flaps": sum(lk.flaps for lk in self.links),
            "republished": sum(tm.outbox.policy.counters.republished for tm in terms),
        }

    def _write_result(self) -> None:
        out = {
            "records": [
                [lk.term.terminal, rid, rev, lk.term.seqs[rid]]
                for lk in self.links
                for rid, rev in lk.term.made.items()
            ],
            "latencies": [x for lk in self.links for x in lk.term.latencies],
            "offline": [lk.term.terminal for lk in self.links if lk.connects == 0],
        }
        Path(self.cfg.result).write_text(json.dumps(out))

    def _emit(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def _versions(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        key = str(v)
        out[key] = out.get(key, 0) + 1
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cfg = WorkerConfig(**json.loads(Path(args[0]).read_text()))
    Worker(cfg).run()
    return 0


def config_json(cfg: WorkerConfig) -> str:
    return json.dumps(asdict(cfg))


if __name__ == "__main__":
    sys.exit(main())
