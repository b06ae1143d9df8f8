#!/usr/bin/env python3
"""A day of probes at default intervals: CPU seconds, bytes written, bytes sent; and collectd
(Debian collectd-core) collecting the same box metrics at the same interval, side by side.

What is MEASURED here, in one run, over a window of --seconds (default 300):
  * our Monitor with the default probe config, in its own process (loopback targets only);
  * collectd -f with cpu, load, memory, df, interface, thermal, uptime and processes plugins at
    Interval 60 (our default for the same metrics), writing with its csv plugin, ReadThreads 3;
  * per process: CPU seconds (user+system), RSS (end and peak), bytes handed to write() (wchar)
    and bytes that reached the block layer (write_bytes), all from /proc/PID.
  * per probe: CPU per collect() (in this process, 50 rounds);
  * what the core writes for the probes in a day: 24 hourly link summaries and two alarm
    episodes persisted into a real SQLite store (WAL, synchronous=FULL), bytes written measured.
What is EXTRAPOLATED (and labelled so in the output):
  * CPU per day: (a) linearly from the window, (b) from per-probe cost x runs per day at default
    intervals plus the scheduler's measured overhead;
  * bytes sent per day: outbox payload sizes (measured) plus probe packets on the wire
    (estimated from packet sizes; MQTT/TLS framing not counted).

    /tmp/venv/bin/python scripts/bench/probes_day.py [--seconds 300] [--json]
Requires collectd-core (apt-get install -y --no-install-recommends collectd-core); without it the
collectd column is reported as unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _probe_fixtures import Fixture  # noqa: E402

from agent.adapters.sqlite.alarms import persist_alarm_change, persist_link_summary  # noqa: E402
from agent.adapters.sqlite.store import Store  # noqa: E402
from agent.domain.health import AlarmChange  # noqa: E402
from agent.monitoring.probes import ProbesConfig  # noqa: E402

DAY = 86400.0

CHILD = textwrap.dedent(
    """
    import json, os, sys, time, resource
    from pathlib import Path
    import psutil
    me = psutil.Process()
    rss_bare = me.memory_info().rss
    sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
    from _probe_fixtures import Fixture
    from agent.monitoring.monitor import Monitor
    fx = Fixture()
    fx.cfg.icmp.hosts = []          # default config: no ping hosts
    fx.cfg.datacast.receive_dir = None
    probes = fx.probes(both_modes=False)   # telecom mode, default intervals
    rss_imported = me.memory_info().rss
    emitted = []
    m = Monitor(fx.cfg, None, lambda kind, payload: emitted.append(len(json.dumps(payload))), probes=probes,
                shutdown_marker=fx.root / "state/shutdown.json")
    m.start()
    print(json.dumps({{"ready": True, "rss_bare": rss_bare, "rss_imported": rss_imported}}), flush=True)
    sys.stdin.readline()           # the parent closes stdin when the window is over
    m.stop()
    stats = m.snapshot()["runner"]["stats"]
    fx.close()
    print(json.dumps({{"stats": stats, "emitted": emitted, "rss_end": me.memory_info().rss}}), flush=True)
    """
)

COLLECTD_CONF = """
Hostname "bench"
FQDNLookup false
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 60
ReadThreads 3
WriteThreads 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "{dir}/collectd.log"
</Plugin>
LoadPlugin cpu
LoadPlugin load
LoadPlugin memory
LoadPlugin df
<Plugin df>
  MountPoint "{mount}"
</Plugin>
LoadPlugin interface
<Plugin interface>
  Interface "lo"
  IgnoreSelected true
</Plugin>
LoadPlugin thermal
LoadPlugin uptime
LoadPlugin processes
<Plugin processes>
  Process "collectd"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "{dir}/csv"
  StoreRates true
</Plugin>
"""


def io_of(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = int(value)
    except OSError:
        pass
    return out


class Watch:
    """CPU, RSS and write counters of one process over the window."""

    def __init__(self, pid: int) -> None:
        self.p = psutil.Process(pid)
        self.cpu0 = self._cpu()
        self.io0 = io_of(pid)
        self.peak = 0

    def _cpu(self) -> float:
        t = self.p.cpu_times()
        return t.user + t.system

    def tick(self) -> None:
        try:
            self.peak = max(self.peak, self.p.memory_info().rss)
        except psutil.Error:
            pass

    def result(self) -> dict[str, Any]:
        io1 = io_of(self.p.pid)
        return {
            "cpu_s": self._cpu() - self.cpu0,
            "rss_end": self.p.memory_info().rss,
            "rss_peak": self.peak,
            "wchar": io1.get("wchar", 0) - self.io0.get("wchar", 0),
            "write_bytes": io1.get("write_bytes", 0) - self.io0.get("write_bytes", 0),
        }


def per_probe_cpu(rounds: int = 50) -> tuple[dict[str, float], dict[str, float]]:
    fx = Fixture()
    fx.cfg.icmp.hosts = []
    fx.cfg.datacast.receive_dir = None
    probes = fx.probes(both_modes=False)
    for p in probes:
        p.collect(time.monotonic() + p.timeout)
    cost: dict[str, list[float]] = {p.name: [] for p in probes}
    for _ in range(rounds):
        for p in probes:
            c = time.process_time()
            p.collect(time.monotonic() + p.timeout)
            cost[p.name].append(time.process_time() - c)
        fx.drain()
    fx.close()
    intervals = {p.name: p.interval for p in probes}
    return {n: sorted(v)[len(v) // 2] for n, v in cost.items()}, intervals


def store_writes_per_day() -> dict[str, Any]:
    """Persist a day's probe output (24 summaries, two alarm episodes) into a real store."""
    with tempfile.TemporaryDirectory(prefix="probes-day-store-") as tmp:
        store = Store(Path(tmp) / "agent.db")
        me = psutil.Process()
        before = io_of(me.pid)
        payload_bytes = 0
        t0 = 1_800_000_000.0
        summary = {
            "mode": "telecom",
            "seconds": 3600.0,
            "cycles": 60,
            "availability": 0.9833,
            "attempts": 60,
            "failures": 1,
            "loss": 0.0167,
            "rtt_p50_ms": 48.2,
            "rtt_p95_ms": 210.7,
            "rtt_max_ms": 812.0,
            "jitter_ms": 21.4,
            "longest_outage_s": 60.0,
        }
        for h in range(24):
            persist_link_summary(
                store,
                {**summary, "period_start": t0 + h * 3600, "period_end": t0 + (h + 1) * 3600},
                "t-0001",
                "c-01",
            )
        for k, name in enumerate(("link_down", "disk_low")):
            at = t0 + 7200 * (k + 1)
            persist_alarm_change(
                store,
                AlarmChange(name, "raised", at, "warning", {"targets": {"broker:8883": "timeout"}}),
                "t-0001",
                "c-01",
            )
            persist_alarm_change(
                store,
                AlarmChange(name, "cleared", at + 600, "warning", {}, raised_at=at),
                "t-0001",
                "c-01",
            )
        after = io_of(me.pid)
        for (payload,) in store.db.execute("SELECT payload FROM outbox"):
            payload_bytes += len(payload.encode())
        messages = store.outbox_depth()
        store.close()
    return {
        "messages": messages,
        "payload_bytes": payload_bytes,
        "wchar": after.get("wchar", 0) - before.get("wchar", 0),
        "write_bytes": after.get("write_bytes", 0) - before.get("write_bytes", 0),
    }


def wire_bytes_per_day(
    cfg: ProbesConfig, tcp_targets: int = 1, dns_names: int = 1, icmp_hosts: int = 0
) -> dict[str, float]:
    """Estimated IP bytes sent by the probes in a day at default intervals (not measured)."""
    tcp_connect = 60 + 52 + 52 + 52  # SYN (with options), ACK, FIN, ACK
    dns_query = 2 * (20 + 8 + 12 + 30 + 4)  # A and AAAA over UDP, ~30-byte name
    echo = 20 + 8 + 8
    return {
        "tcp": DAY / cfg.tcp.interval_seconds * tcp_targets * tcp_connect,
        "dns": DAY / cfg.dns.interval_seconds * dns_names * dns_query,
        "icmp": DAY / cfg.icmp.interval_seconds * icmp_hosts * cfg.icmp.count * echo,
        "gateway": DAY
        / cfg.gateway.interval_seconds
        * (tcp_connect if cfg.gateway.tcp_port else 0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    W = args.seconds

    work = Path(tempfile.mkdtemp(prefix="probes-day-"))
    collectd_bin = shutil.which("collectd") or (
        "/usr/sbin/collectd" if Path("/usr/sbin/collectd").exists() else None
    )

    # --- both processes, same window ---------------------------------------------------------
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD.format(root=str(ROOT), bench=str(Path(__file__).resolve().parent)),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    start_info = json.loads(child.stdout.readline())
    cd = None
    csv_bytes = 0
    if collectd_bin:
        (work / "collectd").mkdir()
        conf = work / "collectd/collectd.conf"
        conf.write_text(COLLECTD_CONF.format(dir=work / "collectd", mount=os.path.realpath(work)))
        cd = subprocess.Popen(
            [collectd_bin, "-f", "-C", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        time.sleep(2.0)  # both past start-up before the window opens
        ours = Watch(child.pid)
        theirs = Watch(cd.pid) if cd else None
        end = time.monotonic() + W
        while time.monotonic() < end:
            ours.tick()
            if theirs:
                theirs.tick()
            time.sleep(1.0)
        ours_r = ours.result()
        theirs_r = theirs.result() if theirs else None
        child.stdin.close()
        child_end = json.loads(child.stdout.readline())
        child.wait(10)
        if cd:
            cd.terminate()
            cd.wait(10)
            csv_bytes = sum(
                f.stat().st_size for f in (work / "collectd/csv").rglob("*") if f.is_file()
            )
    finally:  # never leave collectd or the monitor child behind
        for proc in (cd, child):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    shutil.rmtree(work, ignore_errors=True)

    # --- model: per probe, at default intervals ----------------------------------------------
    cost, intervals = per_probe_cpu()
    runs_in_window = {n: v["runs"] for n, v in child_end["stats"].items()}
    probe_cpu_in_window = sum(cost[n] * runs_in_window.get(n, 0) for n in cost)
    overhead_per_s = max(0.0, (ours_r["cpu_s"] - probe_cpu_in_window) / W)
    model_day = sum(cost[n] * DAY / intervals[n] for n in cost) + overhead_per_s * DAY
    writes = store_writes_per_day()
    wire = wire_bytes_per_day(ProbesConfig())

    result = {
        "window_s": W,
        "measured": {
            "ours": {
                **ours_r,
                "rss_python_bare": start_info["rss_bare"],
                "rss_after_imports": start_info["rss_imported"],
            },
            "collectd": theirs_r and {**theirs_r, "csv_bytes": csv_bytes},
            "runs_in_window": runs_in_window,
            "per_probe_cpu_ms": {n: round(v * 1000, 3) for n, v in cost.items()},
            "store_writes_for_a_day_of_probe_output": writes,
        },
        "extrapolated_day": {
            "ours_cpu_s_linear": ours_r["cpu_s"] * DAY / W,
            "ours_cpu_s_model": model_day,
            "ours_scheduler_overhead_cpu_s_per_s": overhead_per_s,
            "collectd_cpu_s_linear": theirs_r and theirs_r["cpu_s"] * DAY / W,
            "ours_bytes_written": writes["wchar"],
            "collectd_bytes_written_wchar": theirs_r and theirs_r["wchar"] * DAY / W,
            "ours_bytes_sent_outbox_payloads": writes["payload_bytes"],
            "ours_bytes_sent_probe_packets_estimated": round(sum(wire.values())),
            "probe_packets_by_probe": {k: round(v) for k, v in wire.items()},
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m, e = result["measured"], result["extrapolated_day"]
    o, c = m["ours"], m["collectd"]
    mb = 1e6
    print(
        f"probes day benchmark: MEASURED window {W:.0f} s, both processes side by side, interval 60 s"
    )
    print(f"{'':34s}{'station agent probes':>22s}{'collectd':>14s}")
    print(
        f"{'CPU seconds in window':34s}{o['cpu_s']:>22.3f}{(c['cpu_s'] if c else float('nan')):>14.3f}"
    )
    print(
        f"{'RSS at end (MB)':34s}{o['rss_end'] / mb:>22.1f}{(c['rss_end'] / mb if c else float('nan')):>14.1f}"
    )
    print(
        f"{'RSS peak (MB)':34s}{o['rss_peak'] / mb:>22.1f}{(c['rss_peak'] / mb if c else float('nan')):>14.1f}"
    )
    print(f"{'  of which bare Python (MB)':34s}{o['rss_python_bare'] / mb:>22.1f}")
    print(f"{'  after agent imports (MB)':34s}{o['rss_after_imports'] / mb:>22.1f}")
    print(f"{'bytes to write() in window':34s}{o['wchar']:>22d}{(c['wchar'] if c else 0):>14d}")
    print(
        f"{'bytes to block layer in window':34s}{o['write_bytes']:>22d}{(c['write_bytes'] if c else 0):>14d}"
    )
    if c:
        print(f"{'collectd csv files written':34s}{'':>22s}{c['csv_bytes']:>14d}")
    print(f"probe runs in window: {m['runs_in_window']}")
    print(f"per-probe CPU per collect (ms, measured): {m['per_probe_cpu_ms']}")
    w = m["store_writes_for_a_day_of_probe_output"]
    print(
        f"a day of probe output persisted by the core (MEASURED on a real store): {w['messages']} outbox messages, "
        f"{w['payload_bytes']} payload bytes, {w['wchar']} bytes to write(), {w['write_bytes']} to the block layer"
    )
    print("EXTRAPOLATED to a day at default intervals:")
    print(
        f"  our CPU: {e['ours_cpu_s_linear']:.1f} s (linear from window), {e['ours_cpu_s_model']:.1f} s (per-probe model)"
    )
    if c:
        print(f"  collectd CPU: {e['collectd_cpu_s_linear']:.1f} s (linear from window)")
        print(f"  collectd bytes to write(): {e['collectd_bytes_written_wchar']:.0f}")
    print(
        f"  our bytes written: {e['ours_bytes_written']} (the store writes above; the monitor itself writes nothing per sample)"
    )
    print(
        f"  our bytes sent: {e['ours_bytes_sent_outbox_payloads']} outbox payload bytes (measured) + "
        f"{e['ours_bytes_sent_probe_packets_estimated']} probe packet bytes (ESTIMATED from packet sizes: {e['probe_packets_by_probe']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
