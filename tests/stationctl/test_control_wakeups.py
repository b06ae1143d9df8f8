"""The control socket's thread sleeps until a client comes, and still stops at once."""

from __future__ import annotations

import time
from pathlib import Path

from agent.adapters.control_socket import ControlServer
from agent.cli.stationctl.client import request
from tests.stationctl.fixture import build_station
from tests.stationctl.test_control import FakeRuntime


def _switches(native_id: int) -> int:
    text = Path(f"/proc/self/task/{native_id}/status").read_text()
    line = next(x for x in text.splitlines() if x.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def test_an_idle_control_socket_does_not_wake_and_stops_at_once(tmp_path: Path) -> None:
    build_station(tmp_path)
    rt = FakeRuntime(tmp_path / "state")
    server = ControlServer(rt)
    server.start()
    try:
        assert request(rt.cfg.socket_path, "ping")["ok"]
        time.sleep(0.2)
        tid = server.thread.native_id
        before = _switches(tid)
        time.sleep(3.0)
        assert _switches(tid) - before <= 1, "the accepting thread woke with no client"
        assert request(rt.cfg.socket_path, "ping")["ok"]
    finally:
        started = time.monotonic()
        server.stop()
        rt.close()
    assert time.monotonic() - started < 0.5
    assert not server.thread.is_alive()
