"""What a simulation run starts and watches besides the terminals: the collector (a
``countyctl collect`` subprocess, stopped for the outage scenario), a watcher that reads the
broker's retained view of the fleet, and CPU/RSS meters over ``/proc`` (the broker's, the
collector's and each simulator process's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.domain import protocol as p
from agent.domain import topics as t

TICK = os.sysconf("SC_CLK_TCK")


def proc_sample(pid: int) -> tuple[float, int] | None:
    """CPU seconds (user + system) and resident memory in KiB of a process, or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
    return (int(stat[11]) + int(stat[12])) / TICK, rss


@dataclass
class Meter:
    """CPU and memory of one role (e.g. the broker) over a run, across restarts (new pids)."""

    name: str
    cpu_s: float = 0.0
    peak_rss_kb: int = 0
    last_rss_kb: int = 0
    windows: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, total cpu_s)
    _seen: dict[int, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def sample(self, pid: int | None) -> None:
        if pid is not None:
            got = proc_sample(pid)
            if got is not None:
                cpu, rss = got
                self.cpu_s += cpu - self._seen.get(pid, 0.0)  # a new pid counts from its start
                self._seen[pid] = cpu
                self.last_rss_kb = rss
                self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.windows.append((time.monotonic(), self.cpu_s))

    def cores(self) -> float:
        """The mean share of one core since the meter started."""
        return self.cpu_s / max(1e-6, time.monotonic() - self.started)

    def peak_cores(self, span: float = 5.0) -> float:
        best, j = 0.0, 0
        w = self.windows
        for i in range(len(w)):
            while w[i][0] - w[j][0] > span:
                j += 1
            if w[i][0] - w[j][0] >= span * 0.8:
                best = max(best, (w[i][1] - w[j][1]) / (w[i][0] - w[j][0]))
        return best

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu_cores_mean": round(self.cores(), 3),
            "cpu_cores_peak_5s": round(self.peak_cores(), 3),
            "rss_mb_peak": round(self.peak_rss_kb / 1024, 1),
            "rss_mb_last": round(self.last_rss_kb / 1024, 1),
        }


class CollectorProcess:
    """``countyctl collect`` as its own process, so the outage scenario can stop and start it
    (SIGTERM: it finishes its batch, acknowledges and leaves its persistent session behind)."""

    def __init__(self, db: str, county: str, host: str, port: int, log: Path) -> None:
        self.args = [
            sys.executable, "-m", "agent.cli.county", "collect", "--db", db, "--county", county,
            "--host", host, "--port", str(port), "--retry-max", "2",
        ]  # fmt: skip
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, timeout: float = 30.0) -> None:
        mark = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the collector exited: {self._tail(mark)}")
            if " connected (session" in self._since(mark):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the collector did not connect in {timeout:.0f} s: {self._tail(mark)}")

    def _since(self, mark: int) -> str:
        """The whole log since ``mark``: the "connected" line is soon followed by one line per
        stored record, so a backlog flush pushes it out of any fixed tail."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(mark)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def _tail(self, mark: int) -> str:
        return self._since(mark)[-2000:]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Watcher:
    """The broker's view of the fleet: the newest ``state`` per terminal (a Will from a session
    older than the newest ``online`` is late and ignored, as docs/protocol.md says) and the
    retained ``schedule/ack``s. paho's own thread and reconnect: one client, not the fleet."""

    def __init__(self, county: str, host: str, port: int) -> None:
        self.county = county
        self.lock = threading.Lock()
        self.states: dict[str, tuple[int, str]] = {}  # terminal -> (session, state)
        self.acks: dict[str, int | None] = {}  # terminal -> applied county schedule version
        self.wills = 0
        self.connected = threading.Event()
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"fleet-sim-watch-{os.getpid()}",
            protocol=mqtt.MQTTv311,
        )
        c.reconnect_delay_set(1, 2)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = lambda *_: self.connected.clear()
        self.client = c
        self.host, self.port = host, port

    def start(self) -> Watcher:
        self.client.connect_async(self.host, self.port, 30)
        self.client.loop_start()
        if not self.connected.wait(15):
            raise RuntimeError(f"the watcher could not connect to {self.host}:{self.port}")
        return self

    def _on_connect(self, c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        c.subscribe([(t.fleet(self.county, t.STATE), 1), (t.fleet(self.county, t.SCHEDULE_ACK), 1)])
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parsed = t.parse(msg.topic)
        if parsed is None or not msg.payload:
            return
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if parsed.suffix == t.STATE and not p.validate("state", obj):
                old = self.states.get(parsed.terminal)
                if obj["reason"] == "will" and not msg.retain:
                    self.wills += 1
                if old is None or obj["session"] >= old[0]:
                    self.states[parsed.terminal] = (obj["session"], obj["state"])
            elif parsed.suffix == t.SCHEDULE_ACK and obj.get("layer") == "county":
                self.acks[parsed.terminal] = (obj.get("applied") or {}).get("county")

    def online(self) -> int:
        with self.lock:
            return sum(1 for _, s in self.states.values() if s == "online")

    def acked(self, version: int) -> int:
        with self.lock:
            return sum(1 for v in self.acks.values() if v == version)

    def push_schedule(self, version: int) -> None:
        """A county schedule layer (retained): every terminal answers on ``schedule/ack``."""
        doc = {"version": version, "timezone": "Asia/Shanghai", "items": []}
        self.client.publish(t.county_schedule(self.county), json.dumps(doc), 1, True)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
