"""The county's side of ``scripts/demo``: a private broker when the config names none, and the
collector plus a watcher running in the demo's process, printing what the county sees."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from agent.cli.county.broker import PrivateBroker
from agent.cli.county.client import CountyClient, ToolError
from agent.cli.county.collector import Collector
from agent.cli.county.watch import describe
from agent.domain import topics as t

PATH_KEYS = ("content_dir", "state_dir", "schedule_dir", "control_socket")


def with_private_broker(config: Path, cfg: Any) -> tuple[Path, PrivateBroker | None]:
    """The config to run the agent with: as given when it has an ``mqtt:`` section; otherwise a
    copy pointed at a private Mosquitto started here (written beside the demo state)."""
    if cfg.mqtt is not None:
        return config, None
    demo_dir = cfg.state_dir.parent
    broker = PrivateBroker(demo_dir / "broker").start()
    doc = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    base = config.resolve().parent
    for key in PATH_KEYS:
        if isinstance(doc.get(key), str) and not Path(doc[key]).is_absolute():
            doc[key] = str((base / doc[key]).resolve())
    doc["mqtt"] = {
        "host": broker.host,
        "port": broker.port,
        "keepalive": 10,
        "heartbeat_seconds": 5,
        "backoff_min_seconds": 1,
        "backoff_max_seconds": 10,
    }
    derived = demo_dir / "demo-mqtt.yaml"
    derived.write_text(
        "# Written by scripts/demo: the demo config pointed at its private broker.\n"
        + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    print(f"demo: private Mosquitto on {broker.host}:{broker.port} (log {broker.log_path})")
    return derived, broker


def demo_keys(demo_dir: Path, county: str, roots_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The demo's own province root and county key (made once, under ``demo_dir/keys``), the
    county key certified afresh, and the root installed in the terminal's ``roots_dir``."""
    from agent.cli.county.keys import certify, load_private, new_key

    folder = demo_dir / "keys"
    root_path, key_path = folder / "demo-root.key", folder / f"{county}-demo.key"
    root = load_private(root_path) if root_path.exists() else new_key(folder, "demo-root", "root")
    key = (
        load_private(key_path)
        if key_path.exists()
        else new_key(folder, f"{county}-demo", "county", county)
    )
    roots_dir.mkdir(parents=True, exist_ok=True)
    (roots_dir / "demo-root.pub").write_text((folder / "demo-root.pub").read_text())
    return key, certify(root, key.key_id, county, key.public())


def sign_for_demo(
    data: bytes, signer: tuple[Any, dict[str, Any]], kind: str, terminal: str | None = None
) -> bytes:
    """``data`` in its signed envelope, as ``countyctl sign`` writes it (for one terminal's
    layer when ``terminal`` is given, else the county's)."""
    from agent.cli.county.sign import sign_bytes

    key, cert = signer
    return sign_bytes(data, key, cert, kind=kind, terminal=terminal)


class CountySide:
    """The durable collector and a watcher of everything under the county, in threads."""

    def __init__(self, cfg: Any, db: Path) -> None:
        self.cfg = cfg
        self.stop_flag = threading.Event()
        self.collector = Collector(
            cfg.mqtt, db, county=cfg.county, on_line=lambda line: self.say(f"collector: {line}")
        )
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def say(self, line: str) -> None:
        with self.lock:
            print(f"[county] {line}", flush=True)

    def start(self) -> CountySide:
        for target in (self._collect, self._watch):
            th = threading.Thread(target=target, daemon=True)
            th.start()
            self.threads.append(th)
        self.collector.ready.wait(10)
        return self

    def _collect(self) -> None:
        self.collector.run(self.stop_flag)

    def publish_library(self, data: bytes) -> None:
        """Publish the county's course manifest, retained, as ``countyctl push-library`` does."""
        cc = CountyClient(self.cfg.mqtt, f"county-demo-library-{time.time_ns() % 10**9}")
        cc.connect()
        try:
            cc.publish(t.county_library(self.cfg.county), data, qos=1, retain=True)
        finally:
            cc.close()

    def _watch(self) -> None:
        cc = CountyClient(self.cfg.mqtt, f"county-demo-watch-{time.time_ns() % 10**9}")
        try:
            cc.connect()
            cc.subscribe([f"{t.PREFIX}/{self.cfg.county}/#"])
        except ToolError as exc:
            self.say(f"watcher cannot connect: {exc}")
            return
        try:
            while not self.stop_flag.is_set():
                try:
                    msg = cc.messages.get(timeout=0.2)
                except queue.Empty:
                    continue
                line = describe(msg.topic, msg.payload)
                if line:
                    self.say(line)
        finally:
            cc.close()

    def stop(self) -> None:
        time.sleep(0.5)  # let the last state and acks arrive
        self.stop_flag.set()
        for th in self.threads:
            th.join(5)
        self.say(
            f"collector stored {self.collector.stored} record(s), "
            f"dropped {self.collector.duplicates} duplicate(s)"
        )
