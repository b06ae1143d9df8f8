"""sd_notify from the real agent: READY once the store is open, watchdog pings only while the
core thread makes progress. A fake notify socket stands in for systemd."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from agent.adapters import sdnotify
from agent.cli.daemon import start_watchdog
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from tests.helpers import start_agent, wait_for, write_config


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    got: list[tuple[float, str]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                got.append((time.monotonic(), line))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    yield path, got
    stop.set()
    t.join(2)
    sock.close()


def test_agent_process_says_ready_pings_and_stopping(tmp_path, notify_socket) -> None:
    path, got = notify_socket
    cfg = write_config(tmp_path)
    proc = start_agent(
        cfg, env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}, log=tmp_path / "log"
    )
    try:
        wait_for(lambda: any(line == "READY=1" for _, line in got), 15, 0.05, "READY=1")
        assert load_config(cfg).db_path.exists()  # the store was open before READY
        wait_for(lambda: sum(line == "WATCHDOG=1" for _, line in got) >= 3, 10, 0.05, "pings")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert any(line == "STOPPING=1" for _, line in got)


def test_pings_stop_while_the_core_thread_is_stuck(tmp_path, notify_socket, monkeypatch) -> None:
    path, got = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # 1 s: pings every 0.25 s while healthy
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_interval() == 1.0
    rt = Runtime(load_config(write_config(tmp_path)))
    rt.open()
    pinger = start_watchdog(rt)
    assert pinger is not None
    t = threading.Thread(target=rt.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: sum(line == "WATCHDOG=1" for _, line in got) >= 3, 5, 0.05, "pings")
        rt.call_soon(lambda: time.sleep(3.0))  # the core thread hangs for 3 s
        time.sleep(0.2)
        stuck_at = time.monotonic()
        time.sleep(2.5)
        during = [
            ts for ts, line in got if line == "WATCHDOG=1" and stuck_at + 0.6 < ts < stuck_at + 2.5
        ]
        assert during == []  # no ping while the core made no progress
        assert any(line.startswith("STATUS=core loop stalled") for _, line in got)
        n = sum(line == "WATCHDOG=1" for _, line in got)
        wait_for(lambda: sum(line == "WATCHDOG=1" for _, line in got) > n, 5, 0.05, "pings again")
    finally:
        pinger.stop(1)
        rt.request_stop()
        t.join(10)


def test_timers_tick_under_a_steady_stream_of_adapter_calls(tmp_path) -> None:
    rt = Runtime(load_config(write_config(tmp_path)))
    rt.open()
    ticks: list[float] = []
    rt.hooks_per_tick.append(lambda: ticks.append(time.monotonic()))
    t = threading.Thread(target=rt.run, kwargs={"duration": 4.0}, daemon=True)
    t.start()
    stop = time.monotonic() + 3.0
    while time.monotonic() < stop:  # an adapter calling every 50 ms
        rt.call_soon(lambda: None)
        time.sleep(0.05)
    t.join(10)
    assert len(ticks) >= 3  # the loop's own ticks kept coming (one a second at least)
