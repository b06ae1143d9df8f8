"""Bytes on the wire per terminal per day, at the default MQTT settings.

Runs the real agent against a private Mosquitto (plain TCP, then TLS with client certificates)
and reads the kernel's own counters for the agent's socket (``ss -ti``: payload bytes and
segments each way); wire bytes = payload + 52 bytes of IPv4/TCP header (with timestamps) per
segment. Measured separately:

- a connection: TCP (+TLS) handshake, CONNECT/CONNACK, subscriptions, the retained schedules the
  broker hands over (a terminal layer and a 10-item county layer), "online", the status snapshot
  and the schedule acks;
- a heartbeat period: the heartbeat (QoS 0) and the keepalive PINGREQ/PINGRESP. The defaults are
  60 s and 60 s; the run uses 2 s and 2 s (same traffic per period, a day in minutes);
- a viewing record: PUBLISH + PUBACK, the collector's ``record/ack`` + PUBACK (records one at a
  time, as they come from a real station, so nothing is shared between them).

A day = 1440 heartbeat periods + ``--records`` records + ``--connects`` connections.

    .venv/bin/python scripts/bench/mqtt_bytes.py [--records 10] [--connects 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent.adapters.mqtt.config import MqttConfig, TlsConfig  # noqa: E402
from agent.cli.county.broker import BrokerTls, PrivateBroker  # noqa: E402
from agent.cli.county.client import CountyClient  # noqa: E402
from agent.domain import topics as t  # noqa: E402
from tests.helpers import start_agent, write_config  # noqa: E402
from tests.mqtt.conftest import COUNTY, TERMINAL, enqueue_records, outbox_count  # noqa: E402

HEADER = 52  # IPv4 20 + TCP 20 + timestamps option 12, per segment
PERIOD = 2.0  # heartbeat and keepalive in the compressed run (defaults: 60 and 60)


def socket_counters(pid: int, port: int) -> dict[str, int] | None:
    out = subprocess.run(
        ["ss", "-tinpH", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
    ).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if f"pid={pid}," in line:
            info = " ".join(lines[i : i + 2])
            vals = dict(re.findall(r"\b(bytes_sent|bytes_received|segs_out|segs_in):(\d+)", info))
            return {k: int(v) for k, v in vals.items()}
    return None


def wire(c: dict[str, int]) -> int:
    return (
        c.get("bytes_sent", 0)
        + c.get("bytes_received", 0)
        + HEADER * (c.get("segs_out", 0) + c.get("segs_in", 0))
    )


def delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}


def make_pki(d: Path) -> dict[str, Path]:
    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ossl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3", "-subj", "/CN=ca"
    )
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", TERMINAL, "county"):
        ossl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        ext = ["-extfile", "san.cnf"] if name == "server" else []
        ossl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "3", *ext,
        )  # fmt: skip
        os.chmod(d / f"{name}.key", 0o600)
    return {p.name: p for p in d.iterdir()}


def schedules() -> tuple[bytes, bytes]:
    def item(i: int) -> dict[str, object]:
        return {
            "id": f"w{i}",
            "weekly": {"days": ["mon", "wed", "fri"], "time": f"{8 + i}:30".zfill(5)},
            "course": {"id": f"C-{i:02d}", "title": f"农业技术 第{i}讲", "media": f"c/{i}.mp4"},
        }

    terminal = {"version": 3, "timezone": "Asia/Shanghai", "items": [item(1)]}
    county = {"version": 5, "timezone": "Asia/Shanghai", "items": [item(i) for i in range(10)]}
    return json.dumps(terminal, ensure_ascii=False).encode(), json.dumps(
        county, ensure_ascii=False
    ).encode()


def measure(tls: bool, tmp: Path, pki: dict[str, Path], n_records: int) -> dict[str, float]:
    broker_tls = (
        BrokerTls(pki["ca.crt"], pki["server.crt"], pki["server.key"], True) if tls else None
    )
    broker = PrivateBroker(tmp / f"broker-{tls}", tls=broker_tls).start()
    ctls = TlsConfig(pki["ca.crt"], pki["county.crt"], pki["county.key"]) if tls else None
    county = MqttConfig(host=broker.host, port=broker.port, tls=ctls)
    mqtt: dict[str, object] = {"host": broker.host, "port": broker.port}
    mqtt.update({"heartbeat_seconds": PERIOD, "keepalive": int(PERIOD)})
    if tls:
        mqtt["tls"] = {
            "ca_file": str(pki["ca.crt"]),
            "cert_file": str(pki[f"{TERMINAL}.crt"]),
            "key_file": str(pki[f"{TERMINAL}.key"]),
        }
    work = tmp / f"agent-{tls}"
    work.mkdir()
    cfg = write_config(work, mqtt=mqtt)
    cc = CountyClient(county, "county-setup")
    cc.connect()
    term_doc, county_doc = schedules()
    cc.publish(t.topic(COUNTY, TERMINAL, t.SCHEDULE), term_doc, retain=True)
    cc.publish(t.county_schedule(COUNTY), county_doc, retain=True)
    cc.close()
    collector = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.county", "collect", "--db", str(work / "county.db")]
        + ["--county", COUNTY, "--host", broker.host, "--port", str(broker.port)]
        + (
            ["--tls-ca", str(pki["ca.crt"]), "--tls-cert", str(pki["county.crt"])]
            + ["--tls-key", str(pki["county.key"])]
            if tls
            else []
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    agent = start_agent(cfg, log=work / "agent.log")
    try:
        deadline = time.monotonic() + 20
        c0 = None
        while c0 is None and time.monotonic() < deadline:
            c0 = socket_counters(agent.pid, broker.port)
            time.sleep(0.02)
        assert c0 is not None, "the agent did not connect"
        # let the connection settle: acks of the two schedules, status; stop before heartbeat 1
        time.sleep(PERIOD * 0.9)
        c1 = socket_counters(agent.pid, broker.port) or {}
        connect = wire(c1)  # counters start with the socket, so this is the whole connection
        # heartbeat periods
        periods = 10
        time.sleep(PERIOD * 0.2)
        h0 = socket_counters(agent.pid, broker.port) or {}
        time.sleep(PERIOD * periods)
        h1 = socket_counters(agent.pid, broker.port) or {}
        per_period = wire(delta(h0, h1)) / periods
        # records, one at a time
        r0 = socket_counters(agent.pid, broker.port) or {}
        t_rec0 = time.monotonic()
        for i in range(n_records):
            enqueue_records(work / "state", 1, start_seq=100 + i)
            deadline = time.monotonic() + 10
            while outbox_count(work / "state") > 0 and time.monotonic() < deadline:
                time.sleep(0.02)
        t_rec = time.monotonic() - t_rec0
        r1 = socket_counters(agent.pid, broker.port) or {}
        rec_bytes = wire(delta(r0, r1)) - per_period * (t_rec / PERIOD)
    finally:
        agent.terminate()
        agent.wait(15)
        collector.terminate()
        collector.wait(10)
        broker.stop()
    return {
        "connection": round(connect),
        "heartbeat_period": round(per_period),
        "record": round(rec_bytes / n_records),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10, help="viewing records per day")
    ap.add_argument("--connects", type=int, default=4, help="connections per day")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(tmpname)
        (tmp / "pki").mkdir()
        pki = make_pki(tmp / "pki")
        for tls in (False, True):
            m = measure(tls, tmp, pki, 5)
            day = 1440 * m["heartbeat_period"] + args.records * m["record"]
            day += args.connects * m["connection"]
            m["per_day"] = round(day)
            results["tls" if tls else "plain"] = m
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(
        "Bytes on the wire per terminal per day (defaults: heartbeat 60 s, keepalive 60 s; "
        f"{args.records} records, {args.connects} connections a day; IPv4+TCP headers included)"
    )
    print(f"{'':<10} {'connection':>11} {'hb period':>10} {'record':>8} {'per day':>12}")
    for key, m in results.items():
        print(
            f"{key:<10} {m['connection']:>9} B {m['heartbeat_period']:>8} B {m['record']:>6} B "
            f"{m['per_day'] / 1e6:>9.2f} MB"
        )


if __name__ == "__main__":
    main()
