"""sd_notify against real datagram sockets standing in for systemd's notify socket."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from agent.adapters import sdnotify
from agent.adapters.sdnotify import WatchdogGate, WatchdogPinger


@pytest.fixture
def path_socket(tmp_path: Path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, {"NOTIFY_SOCKET": str(path)}
    sock.close()


@pytest.fixture
def abstract_socket():
    name = f"station-agent-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    yield sock, {"NOTIFY_SOCKET": "@" + name}
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(65536).decode()


def test_ready_on_path_socket(path_socket):
    sock, env = path_socket
    assert sdnotify.ready(env=env)
    assert recv(sock) == "READY=1"


def test_ready_on_abstract_socket(abstract_socket):
    sock, env = abstract_socket
    assert sdnotify.ready("schedule v3 loaded", env=env)
    assert recv(sock) == "READY=1\nSTATUS=schedule v3 loaded"


def test_each_helper_sends_its_assignment(path_socket):
    sock, env = path_socket
    assert sdnotify.watchdog(env=env)
    assert recv(sock) == "WATCHDOG=1"
    assert sdnotify.stopping(env=env)
    assert recv(sock) == "STOPPING=1"
    assert sdnotify.status("playing course c-12", env=env)
    assert recv(sock) == "STATUS=playing course c-12"
    assert sdnotify.extend_timeout(2.5, env=env)
    assert recv(sock) == "EXTEND_TIMEOUT_USEC=2500000"
    assert sdnotify.notify("ERRNO=5", env=env)
    assert recv(sock) == "ERRNO=5"


def test_status_cannot_inject_assignments(path_socket):
    sock, env = path_socket
    assert sdnotify.status("bad\nREADY=1\r\nWATCHDOG=1", env=env)
    message = recv(sock)
    assert "\n" not in message
    assert message.startswith("STATUS=bad READY=1")
    assert sdnotify.status("x" * 5000, env=env)
    assert len(recv(sock)) <= len("STATUS=") + sdnotify.MAX_STATUS_CHARS


def test_reads_environment_by_default(path_socket, monkeypatch):
    sock, env = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", env["NOTIFY_SOCKET"])
    assert sdnotify.watchdog()
    assert recv(sock) == "WATCHDOG=1"


@pytest.mark.parametrize("value", [None, "", "@", "relative/path", "vsock:2:1234"])
def test_no_or_unusable_socket_is_a_quiet_no(value, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    env = {} if value is None else {"NOTIFY_SOCKET": value}
    assert sdnotify.ready(env=env) is False
    assert sdnotify.watchdog(env=env) is False


def test_missing_socket_file_returns_false(tmp_path):
    assert sdnotify.ready(env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_socket_that_is_not_datagram_returns_false(tmp_path):
    path = tmp_path / "stream"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        assert sdnotify.ready(env={"NOTIFY_SOCKET": str(path)}) is False
    finally:
        listener.close()


def test_oversized_or_empty_message_is_refused(path_socket):
    _, env = path_socket
    assert sdnotify.notify("", env=env) is False
    assert sdnotify.notify("STATUS=" + "y" * sdnotify.MAX_MESSAGE_BYTES, env=env) is False


def test_full_receive_queue_does_not_hang(tmp_path):
    path = tmp_path / "slow"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    env = {"NOTIFY_SOCKET": str(path)}
    try:
        started = time.monotonic()
        # The queue holds net.unix.max_dgram_qlen datagrams (10 by default, 512 where systemd
        # is PID 1); nobody reads, so one of these must be refused.
        results = [sdnotify.notify("STATUS=" + "z" * 100, env=env) for _ in range(2000)]
        elapsed = time.monotonic() - started
        assert results[0] is True
        assert False in results  # the queue filled up and we were told, not stuck
        assert elapsed < 2.0
    finally:
        sock.close()


def test_watchdog_interval():
    pid = str(os.getpid())
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": pid}) == 0.5
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}) is None
    for bad in ("", "0", "-5", "abc", "1.5"):
        assert sdnotify.watchdog_interval({"WATCHDOG_USEC": bad}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "1", "WATCHDOG_PID": "x"}) is None


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_gate_pings_only_after_recent_progress():
    clock = FakeClock()
    gate = WatchdogGate(20.0, clock=clock)
    assert gate.window == 10.0 and gate.ping_period == 5.0
    assert not gate.should_ping()  # nothing done yet: no ping before the core runs
    assert gate.since_progress() is None
    gate.progress()
    assert gate.should_ping()
    clock.t += 10.0
    assert gate.should_ping()  # exactly at the edge of the window
    clock.t += 0.001
    assert not gate.should_ping()  # core hung: pings stop
    gate.progress()
    assert gate.should_ping()


def test_gate_explicit_times_and_no_going_back():
    gate = WatchdogGate(4.0, clock=lambda: pytest.fail("clock must not be read"))
    gate.progress(now=50.0)
    gate.progress(now=49.0)  # a late, older report does not rewind progress
    assert gate.since_progress(now=51.0) == 1.0
    assert gate.should_ping(now=52.0)
    assert not gate.should_ping(now=52.5)


@pytest.mark.parametrize("interval", [0, -1.0, float("nan")])
def test_gate_rejects_bad_interval(interval):
    with pytest.raises(ValueError):
        WatchdogGate(interval)


def test_pinger_withholds_pings_when_core_hangs():
    clock = FakeClock()
    gate = WatchdogGate(8.0, clock=clock)
    sent: list[str] = []
    pinger = WatchdogPinger(
        gate, send=lambda: sent.append("WATCHDOG=1") or True, send_status=sent.append
    )
    # A healthy core: progress every second, the pinger asks every ping_period (2 s).
    for step in range(10):
        clock.t += 1.0
        gate.progress()
        if step % 2 == 1:
            assert pinger.tick()
    assert pinger.pings == 5
    # The core hangs; pings continue only while the last progress is within the window (4 s).
    outcomes = []
    for _ in range(6):
        clock.t += 2.0
        outcomes.append(pinger.tick())
    assert outcomes == [True, True, False, False, False, False]
    stall_notes = [s for s in sent if s != "WATCHDOG=1"]
    assert len(stall_notes) == 1 and "stalled for 6s" in stall_notes[0]
    # Recovery: pings resume, and a later stall is reported again.
    gate.progress()
    assert pinger.tick()


def test_pinger_thread_sends_real_pings_then_stops_when_core_stops(path_socket):
    sock, env = path_socket
    gate = WatchdogGate(0.2)  # real monotonic clock; ping_period 50 ms, window 100 ms
    pinger = WatchdogPinger(
        gate,
        send=lambda: sdnotify.watchdog(env=env),
        send_status=lambda text: sdnotify.status(text, env=env),
    )
    stop_core = threading.Event()

    def core() -> None:
        while not stop_core.is_set():
            gate.progress()
            time.sleep(0.01)

    core_thread = threading.Thread(target=core)
    core_thread.start()
    pinger.start()
    try:
        assert recv(sock) == "WATCHDOG=1"
        stop_core.set()  # the "core" stops making progress
        core_thread.join()
        messages = []
        sock.settimeout(0.5)
        while True:
            try:
                messages.append(recv(sock))
            except TimeoutError:
                break
        # After the stall: a status line, then silence (the queue drained within the timeout).
        assert any(m.startswith("STATUS=core loop stalled") for m in messages)
        assert messages[-1].startswith("STATUS=")
    finally:
        stop_core.set()
        pinger.stop(timeout=2.0)
    assert pinger._thread is None
