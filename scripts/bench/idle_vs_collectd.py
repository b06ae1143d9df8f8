"""The idle agent beside collectd, in one run: context switches, CPU, threads, RSS per process.

An idle terminal should cost about what a small C collector costs. This starts, side by side and
measured over the same window:

  * the agent offline (no ``mqtt:`` section),
  * the agent with MQTT to a private Mosquitto on a free loopback port,
  * collectd (Debian collectd-core) with the cpu, memory, df, interface, load and thermal
    plugins and its MQTT write plugin to the same broker, ``Interval 60``,
  * and that Mosquitto, for reference.

Each agent gets a course six hours away (so it is idle, with a schedule) through the same helpers
``idle_footprint.py`` uses, with the shipped ``schedule_poll_seconds`` (the tests' config polls
ten times faster). Per process, over the window: voluntary + involuntary context switches
per second, summed over every thread (``/proc/PID/task/*/status``; a thread that exits keeps the
count it had at the last one-second sample, one born and gone between samples is missed), CPU as
a share of one core (``/proc/PID/task/*/schedstat``, nanoseconds; the whole-process tick count
from ``/proc/PID/stat`` beside it), threads and RSS at the end (and the most seen). Children
(``ping``, ``cec-ctl``) are not counted. ``--threads`` adds each thread's rate, by name: the agents
then load a ``sitecustomize`` that gives each thread's kernel name its Python name (Python 3.11
leaves them all "python"). Everything stays on loopback: the gateway probe only reads
the route and neighbour tables (``tcp_port: 0``), which it would otherwise send to this
machine's default router.

    apt-get install --no-install-recommends collectd-core libmosquitto1 mosquitto
    .venv/bin/python scripts/bench/idle_vs_collectd.py [--minutes 5] [--json] [--threads]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from idle_footprint import start_broker  # noqa: E402

from agent.runtime.config import AgentConfig, load_config  # noqa: E402
from agent.testing.media import write_wav  # noqa: E402
from tests.helpers import apply_schedule, one_off, schedule, start_agent, write_config  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Python 3.11 leaves every thread's kernel name at "python"; with --threads the agents load this
# (as ``sitecustomize`` on PYTHONPATH) so /proc/PID/task/TID/comm carries the Python thread name.
NAME_THREADS = """\
import ctypes, threading
_prctl = ctypes.CDLL(None).prctl
_run = threading.Thread._bootstrap_inner
def _named(self):
    _prctl(15, self.name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    _run(self)
threading.Thread._bootstrap_inner = _named
"""
SHIPPED_POLL_S = AgentConfig.__dataclass_fields__["schedule_poll_seconds"].default
# No packet leaves loopback: the gateway probe reads /proc only.
LOOPBACK_PROBES = {"gateway": {"tcp_port": 0}}

COLLECTD_CONF = """\
Hostname "bench"
FQDNLookup false
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 60
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "{dir}/collectd.log"
</Plugin>
LoadPlugin cpu
LoadPlugin memory
LoadPlugin df
<Plugin df>
  MountPoint "/"
</Plugin>
LoadPlugin interface
<Plugin interface>
  Interface "lo"
  IgnoreSelected true
</Plugin>
LoadPlugin load
LoadPlugin thermal
LoadPlugin mqtt
<Plugin mqtt>
  <Publish "county">
    Host "127.0.0.1"
    Port {port}
    ClientId "collectd-bench"
    Prefix "collectd"
  </Publish>
</Plugin>
"""


@dataclass
class Counters:
    voluntary: int = 0
    involuntary: int = 0
    runtime_ns: int = 0


def thread_name(pid: int, tid: str) -> str:
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return "?"


def read_thread(pid: int, tid: str) -> Counters | None:
    """One thread's switch counts and CPU time; None if it has just exited."""
    base = f"/proc/{pid}/task/{tid}"
    try:
        status = Path(f"{base}/status").read_text()
        runtime = int(Path(f"{base}/schedstat").read_text().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    values = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return Counters(
        int(values["voluntary_ctxt_switches"]), int(values["nonvoluntary_ctxt_switches"]), runtime
    )


def process_ticks(pid: int) -> int:
    """utime + stime of the whole process, exited threads included (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Tracker:
    """Per-thread counters of one process from the start of the window to the last sample."""

    name: str
    pid: int
    first: dict[str, Counters] = field(default_factory=dict)
    last: dict[str, Counters] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    ticks0: int = 0
    threads_max: int = 0
    rss_max_kb: int = 0

    def start(self) -> None:
        self.first = self._threads()
        self.last = dict(self.first)
        self.ticks0 = process_ticks(self.pid)

    def _threads(self) -> dict[str, Counters]:
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            counters = read_thread(self.pid, tid)
            if counters is not None:
                out[tid] = counters
                if tid not in self.names:
                    self.names[tid] = thread_name(self.pid, tid)
        return out

    def sample(self) -> None:
        now = self._threads()
        for tid, counters in now.items():
            self.first.setdefault(tid, Counters())  # born inside the window: counted from zero
            self.last[tid] = counters
        self.threads_max = max(self.threads_max, len(now))
        self.rss_max_kb = max(self.rss_max_kb, rss_kb(self.pid))

    def per_thread(self, window_s: float) -> list[tuple[str, float]]:
        """Context switches per second of each thread, busiest first ("name/tid", rate)."""
        rates = [
            (
                f"{self.names.get(tid, '?')}/{tid}",
                (
                    c.voluntary
                    + c.involuntary
                    - self.first[tid].voluntary
                    - self.first[tid].involuntary
                )
                / window_s,
            )
            for tid, c in self.last.items()
        ]
        return sorted(((t, round(r, 3)) for t, r in rates), key=lambda x: -x[1])

    def result(self, window_s: float) -> dict[str, float | int | str]:
        vol = sum(self.last[t].voluntary - self.first[t].voluntary for t in self.last)
        invol = sum(self.last[t].involuntary - self.first[t].involuntary for t in self.last)
        runtime = sum(self.last[t].runtime_ns - self.first[t].runtime_ns for t in self.last)
        ticks = process_ticks(self.pid) - self.ticks0
        return {
            "process": self.name,
            "pid": self.pid,
            "threads": len(os.listdir(f"/proc/{self.pid}/task")),
            "threads_max": self.threads_max,
            "rss_mb": round(rss_kb(self.pid) / 1024, 1),
            "rss_max_mb": round(self.rss_max_kb / 1024, 1),
            "ctx_per_s": round((vol + invol) / window_s, 3),
            "voluntary_per_s": round(vol / window_s, 3),
            "involuntary_per_s": round(invol / window_s, 3),
            "cpu_pct_of_core": round(100 * runtime / 1e9 / window_s, 4),
            "cpu_pct_of_core_ticks": round(100 * ticks / CLK_TCK / window_s, 4),
        }


def launch_agent(work: Path, extra: dict, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The agent idle with a schedule: its one course is six hours away."""
    work.mkdir(parents=True)
    cfg_path = write_config(
        work,
        log_level="info",
        probes=LOOPBACK_PROBES,
        schedule_poll_seconds=SHIPPED_POLL_S,
        **extra,
    )
    cfg = load_config(cfg_path)
    write_wav(cfg.content_dir / "later.wav", 5.0)
    apply_schedule(
        cfg.state_dir, schedule(1, [one_off("later", time.time() + 6 * 3600, "later.wav")])
    )
    return start_agent(cfg_path, log=work / "agent.log", env=env)


def launch_collectd(work: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("collectd") or "/usr/sbin/collectd"
    if not Path(binary).exists():
        raise SystemExit(
            "collectd not found: apt-get install --no-install-recommends collectd-core libmosquitto1"
        )
    work.mkdir(parents=True)
    conf = work / "collectd.conf"
    conf.write_text(COLLECTD_CONF.format(dir=work, port=port))
    return subprocess.Popen(
        [binary, "-f", "-C", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def markdown(rows: list[dict], window_s: float) -> str:
    head = (
        "| process | ctx switches/s (vol + invol) | voluntary/s | involuntary/s "
        "| CPU % of a core | CPU % (ticks) | threads (max) | RSS MB (max) |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['process']} | {r['ctx_per_s']} | {r['voluntary_per_s']} | "
        f"{r['involuntary_per_s']} | {r['cpu_pct_of_core']} | {r['cpu_pct_of_core_ticks']} | "
        f"{r['threads']} ({r['threads_max']}) | {r['rss_mb']} ({r['rss_max_mb']}) |\n"
        for r in rows
    )
    return f"Idle, side by side, over the same {window_s:.0f} s window:\n\n{head}{body}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="measuring window (default 5)")
    ap.add_argument("--settle", type=float, default=15.0, help="seconds before the window")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument(
        "--threads",
        action="store_true",
        help="also print each thread's switches per second, by thread name",
    )
    args = ap.parse_args()
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    with tempfile.TemporaryDirectory(dir=str(ROOT)) as tmp:  # on the real disk, not tmpfs
        work = Path(tmp)
        broker, port = start_broker(work)
        env: dict[str, str] = {}
        if args.threads:
            (work / "names").mkdir()
            (work / "names" / "sitecustomize.py").write_text(NAME_THREADS)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(work / "names"), *filter(None, [os.environ.get("PYTHONPATH")])]
            )
        try:
            procs.append(("agent, offline", launch_agent(work / "offline", {}, env)))
            mqtt = {"mqtt": {"host": "127.0.0.1", "port": port, "protocol": "5"}}
            procs.append(("agent, MQTT", launch_agent(work / "mqtt", mqtt, env)))
            procs.append(("collectd 5.12, MQTT", launch_collectd(work / "collectd", port)))
            time.sleep(args.settle)
            for name, proc in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"{name} exited with {proc.returncode} before the window")
            trackers = [Tracker(name, proc.pid) for name, proc in procs]
            trackers.append(Tracker("mosquitto (shared broker)", broker.pid))
            for tracker in trackers:
                tracker.start()
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.minutes * 60:
                time.sleep(1.0)
                for tracker in trackers:
                    tracker.sample()
            window = time.monotonic() - t0
            rows = [tracker.result(window) for tracker in trackers]
            threads = {t.name: t.per_thread(window) for t in trackers}
        finally:
            for _name, proc in procs:
                proc.terminate()
            for _name, proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            broker.terminate()
            broker.wait(10)
    print(markdown(rows, window))
    if args.threads:
        for name, rates in threads.items():
            print(f"{name}: " + ", ".join(f"{tid} {rate}/s" for tid, rate in rates))
    if args.json:
        print(json.dumps({"window_s": round(window, 1), "processes": rows}))


if __name__ == "__main__":
    main()
