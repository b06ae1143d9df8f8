"""The scenarios: start the services, the fleet's processes, run the phases, gather the figures.

- ``steady``: a day compressed: records at ``record_every`` seconds per terminal (a day of a
  handful of courses in a minute), heartbeats at their real interval, link flaps.
- ``broker-restart``: the broker goes away for ``down`` seconds (the private Mosquitto is
  stopped and started again; with an outside broker the caller is asked to restart it) and every
  terminal must be back online, in the broker's retained view too.
- ``outage``: the county's 8 hours without a collector, compressed into ``outage`` seconds:
  terminals keep their records, the broker queues for the collector's persistent session, and
  the backlog flushes when the collector returns.

Every scenario ends the same way: no more records or flaps, wait until every outbox is empty,
check that everyone is online, stop the fleet (offline, reason shutdown), compare what the
terminals made with what the database holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.cli.county.broker import PrivateBroker
from agent.cli.county.simulate.services import CollectorProcess, Meter, Watcher
from agent.cli.county.simulate.verify import Report, check_database, percentile
from agent.cli.county.simulate.worker import WorkerConfig, config_json
from agent.cli.county.storage import open_storage
from agent.domain.records import utc_text

SCENARIOS = ("steady", "broker-restart", "outage")


@dataclass
class SimOptions:
    scenario: str
    db: str
    terminals: int = 100
    processes: int = 1
    county: str = "c-01"
    host: str | None = None  # None: a private Mosquitto started for the run
    port: int = 1883
    duration: float = 30.0  # steady phase (seconds)
    down: float = 5.0  # broker-restart: seconds the broker stays away
    outage: float = 20.0  # outage: seconds without a collector
    drain_timeout: float = 180.0
    workdir: Path | None = None
    worker: WorkerConfig = field(
        default_factory=lambda: WorkerConfig(0, 0, "", "", 0, "", record_every=10.0, flap_every=300)
    )
    say: Callable[[str], None] = lambda line: None


class FleetProcess:
    """One worker process and its latest stats line."""

    def __init__(self, cfg: WorkerConfig, cfg_path: Path) -> None:
        cfg_path.write_text(config_json(cfg))
        self.cfg = cfg
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.county.simulate.worker", str(cfg_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.stats: dict[str, Any] = {}
        self.done = threading.Event()
        self.meter = Meter(f"sim-{cfg.first}")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            self.stats = obj
            if obj.get("t") == "done":
                self.done.set()
        self.done.set()

    def send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def result(self) -> dict[str, Any]:
        return json.loads(Path(self.cfg.result).read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class Run:
    def __init__(self, o: SimOptions, stack: ExitStack, workdir: Path) -> None:
        self.o = o
        self.stack = stack
        self.workdir = workdir
        self.broker: PrivateBroker | None = None
        self.fleet: list[FleetProcess] = []
        self.broker_meter = Meter("broker")
        self.collector_meter = Meter("collector")
        self.rows: list[tuple[float, int, int]] = []  # (monotonic, rows, deliveries)
        self.events: dict[str, float] = {}
        self.notes: list[str] = []
        self.stop_sampling = threading.Event()
        self.marks = 0

    # -- the fleet's sums ---------------------------------------------------------------------

    def total(self, key: str) -> int:
        return sum(int(f.stats.get(key, 0)) for f in self.fleet)

    def wait(self, pred: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.2)
        self.notes.append(f"timed out after {timeout:.0f} s waiting for {what}")
        self.o.say(f"timed out waiting for {what}")
        return False

    def all_online(self) -> bool:
        n = self.o.terminals
        return self.total("online") == n and self.watcher.online() == n

    # -- services -----------------------------------------------------------------------------

    def start_services(self) -> None:
        o = self.o
        if o.host is None:
            self.broker = PrivateBroker(
                self.workdir / "broker",
                persistence=True,
                extra=["max_inflight_messages 200", "max_connections -1"],
            ).start()
            self.stack.callback(self.broker.stop)
            self.host, self.port = self.broker.host, self.broker.port
        else:
            self.host, self.port = o.host, o.port
        self.since = utc_text(time.time() - 1.0)
        self.storage = open_storage(o.db)
        self.stack.callback(self.storage.close)
        self.collector = CollectorProcess(
            o.db, o.county, self.host, self.port, self.workdir / "collector.log"
        )
        self.collector.start()
        self.stack.callback(self.collector.stop)
        self.watcher = Watcher(o.county, self.host, self.port).start()
        self.stack.callback(self.watcher.stop)
        threading.Thread(target=self._sample, daemon=True).start()
        self.stack.callback(self.stop_sampling.set)

    def _sample(self) -> None:
        while not self.stop_sampling.wait(1.0):
            broker = self.broker.proc.pid if self.broker and self.broker.proc else None
            self.broker_meter.sample(broker)
            self.collector_meter.sample(self.collector.pid)
            for f in self.fleet:
                f.meter.sample(f.proc.pid if f.proc.poll() is None else None)
            try:
                row = self.storage.rows(
                    "SELECT COUNT(*) AS n, COALESCE(SUM(deliveries), 0) AS d FROM records "
                    "WHERE county=? AND first_received_at >= ?",
                    (self.o.county, self.since),
                )[0]
                self.rows.append((time.monotonic(), int(row["n"]), int(row["d"])))
            except Exception as exc:  # a sample missed is not a failure of the run
                self.notes.append(f"row count sample failed: {str(exc)[:200]}")

    def start_fleet(self) -> None:
        o = self.o
        per = -(-o.terminals // o.processes)
        for i, first in enumerate(range(1, o.terminals + 1, per)):
            cfg = replace(
                o.worker,
                first=first,
                count=min(per, o.terminals + 1 - first),
                county=o.county,
                host=self.host,
                port=self.port,
                result=str(self.workdir / f"worker-{i}.json"),
            )
            f = FleetProcess(cfg, self.workdir / f"worker-{i}.cfg.json")
            self.fleet.append(f)
            self.stack.callback(f.kill)

    # -- phases ---------------------------------------------------------------------------------

    def run(self) -> Report:
        o = self.o
        self.start_services()
        started = time.monotonic()
        self.start_fleet()
        o.say(f"{o.terminals} terminals in {len(self.fleet)} process(es) connecting")
        n = o.terminals
        self.wait(lambda: self.total("back") == n, o.worker.ramp + 120, "every terminal connected")
        self.events["all_connected_s"] = time.monotonic() - started
        version = int(time.time())
        self.watcher.push_schedule(version)
        self.wait(lambda: self.watcher.acked(version) == o.terminals, 60, "every schedule ack")
        schedule_acked = self.watcher.acked(version)
        o.say(
            f"all connected after {self.events['all_connected_s']:.1f} s; "
            f"schedule acked by {schedule_acked}"
        )
        getattr(self, "_" + o.scenario.replace("-", "_"))()
        o.say("draining: no more records; waiting for every outbox to empty")
        for f in self.fleet:
            f.send("quiet")
        t0 = time.monotonic()
        drained = self.wait(
            lambda: self.total("outbox") == 0 and self.total("created") > 0,
            o.drain_timeout,
            "every outbox empty",
        )
        self.events["drain_s"] = time.monotonic() - t0
        back = self.wait(self.all_online, 60, "every terminal online at the end")
        online_end, watcher_end = self.total("online"), self.watcher.online()
        last = {k: self.total(k) for k in ("created", "revised", "acked", "connects", "attempts",
                                            "flaps", "heartbeats", "republished", "outbox")}  # fmt: skip
        for f in self.fleet:
            f.send("stop")
        for f in self.fleet:
            f.done.wait(30)
            f.proc.wait(30)
        elapsed = time.monotonic() - started
        time.sleep(1.5)  # the last samples
        self.stop_sampling.set()
        results = [f.result() for f in self.fleet]
        records = [r for res in results for r in res["records"]]
        latencies = sorted(x for res in results for x in res["latencies"])
        db = check_database(self.storage, o.county, self.since, records)
        return Report(
            scenario=o.scenario,
            terminals=o.terminals,
            processes=len(self.fleet),
            elapsed_s=round(elapsed, 1),
            online_end=online_end,
            online_end_broker_view=watcher_end,
            all_back_online=back,
            drained=drained,
            schedule_acked=schedule_acked,
            counts=last,
            database=db,
            latency_s={
                "n": len(latencies),
                "p50": percentile(latencies, 50),
                "p99": percentile(latencies, 99),
                "max": latencies[-1] if latencies else None,
            },
            collector=self._collector_figures(),
            broker=self.broker_meter.to_json() if self.broker else None,
            simulator=[f.meter.to_json() for f in self.fleet],
            events={k: round(v, 1) for k, v in self.events.items()},
            notes=self.notes,
        )

    def _steady(self) -> None:
        self.o.say(f"steady: {self.o.duration:.0f} s")
        time.sleep(self.o.duration)

    def _broker_restart(self) -> None:
        o = self.o
        time.sleep(o.duration / 2)
        n = o.terminals
        if self.broker is not None:
            o.say(f"broker-restart: stopping the broker for {o.down:.0f} s")
            self.broker.stop()
            down_at = time.monotonic()
            # The mark is taken while nothing can connect: a link that reaches the new broker
            # in the moment after its start must count as back (it would not after a later mark,
            # and the wait below would then last until its next flap).
            self.mark()
            time.sleep(max(0.0, down_at + o.down - time.monotonic()))
            self.broker.start()
            t0 = time.monotonic()
            self.wait(lambda: self.total("back") == n, 300 + 2 * o.down, "every terminal back")
        else:
            o.say(f"broker-restart: restart the broker at {self.host}:{self.port} now")
            self.wait(lambda: self.total("online") < n // 10, 600, "the broker to go away")
            # Some links may already be back when the drop is seen: count who is online, from
            # stats lines newer than the drop.
            t0 = time.monotonic()
            self.wait(self.all_online, 300 + 2 * o.down, "every terminal back")
        self.events["restart_all_back_s"] = time.monotonic() - t0
        o.say(
            f"every terminal back {self.events['restart_all_back_s']:.1f} s after the restart "
            f"(the broker's retained view: {self.watcher.online()} online)"
        )
        time.sleep(o.duration / 2)

    def mark(self) -> None:
        """From now on ``back`` counts only the links that connect after this call; returns once
        every worker's stats line says it took the mark (older lines would count stale links)."""
        self.marks += 1
        for f in self.fleet:
            f.send("mark")
        want = self.marks
        self.wait(lambda: all(f.stats.get("marks") == want for f in self.fleet), 30, "the mark")

    def _outage(self) -> None:
        o = self.o
        time.sleep(o.duration / 2)
        o.say(f"outage: the collector is away for {o.outage:.0f} s")
        self.collector.stop()
        away = time.monotonic()
        time.sleep(o.outage)
        self.backlog = self.total("unacked_records")
        o.say(f"outage over: {self.backlog} record(s) waiting in the outboxes; collector back")
        self.collector.start()
        back = time.monotonic()
        self.events["outage_s"] = back - away
        self.wait(  # flushed: every record still waiting was made after the collector returned
            lambda: (
                max(float(f.stats.get("oldest_unacked_s", 0.0)) for f in self.fleet)
                < time.monotonic() - back - 1.0
            ),
            o.drain_timeout,
            "the backlog flush",
        )
        self.events["flush_s"] = time.monotonic() - back
        o.say(f"backlog flushed in {self.events['flush_s']:.1f} s")
        time.sleep(o.duration / 2)

    def _collector_figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.collector_meter.to_json(), "starts": self.collector.starts}
        rows = self.rows
        best = 0.0
        j = 0
        for i in range(len(rows)):
            while rows[i][0] - rows[j][0] > 5.0:
                j += 1
            if rows[i][0] - rows[j][0] >= 4.0:
                best = max(best, (rows[i][1] - rows[j][1]) / (rows[i][0] - rows[j][0]))
        out["rows_per_s_peak_5s"] = round(best, 1)
        if rows and rows[-1][0] > rows[0][0]:
            out["rows_per_s_mean"] = round(
                (rows[-1][1] - rows[0][1]) / (rows[-1][0] - rows[0][0]), 1
            )
        if "outage_s" in self.events:
            flush = self.events.get("flush_s") or 0.0
            out["backlog_records"] = self.backlog
            out["flush_s"] = round(flush, 1)
            out["flush_records_per_s"] = round(self.backlog / flush, 1) if flush > 0 else None
        return out


def simulate(o: SimOptions) -> Report:
    if o.scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {o.scenario!r}; known: {', '.join(SCENARIOS)}")
    with ExitStack() as stack:
        workdir = o.workdir
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-sim-")))
        workdir.mkdir(parents=True, exist_ok=True)
        return Run(o, stack, workdir).run()
