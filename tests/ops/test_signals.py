"""A real agent process, busy playing and answering its control socket, gets a burst of signals.

SIGTERM and SIGINT stop it cleanly (open record closed as interrupted, store closed, exit 0);
SIGHUP re-reads the schedules. However many arrive and whenever they land (in the middle of the
core loop taking an event off its queue), the process neither hangs nor dies of one.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.cli.stationctl.client import AgentUnavailable, request
from agent.runtime.config import load_config
from agent.testing.media import write_wav
from tests.helpers import apply_schedule, one_off, schedule, start_agent, wait_for, write_config

BURSTS = {
    "sigterm": [signal.SIGTERM] * 60,
    "sighup then sigterm": [signal.SIGHUP] * 60 + [signal.SIGHUP, signal.SIGTERM] * 30,
}


def _query(db: Path, sql: str) -> list[tuple]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        con.close()


class Hammer:
    """Control-socket clients asking as fast as they can, so the core loop is always busy."""

    def __init__(self, sock: Path, clients: int = 3) -> None:
        self.sock, self.stop, self.answers = sock, threading.Event(), 0
        self.threads = [threading.Thread(target=self._ask, daemon=True) for _ in range(clients)]

    def _ask(self) -> None:
        while not self.stop.is_set():
            try:
                request(self.sock, "status", timeout=2.0)
                self.answers += 1
            except (AgentUnavailable, OSError):
                time.sleep(0.01)

    def __enter__(self) -> Hammer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)


def _storm(proc: subprocess.Popen[bytes], burst: list[int], seconds: float = 10.0) -> int | None:
    """Send ``burst``, then its last signal again and again until the process is gone."""
    end = time.monotonic() + seconds
    for sig in burst:
        if proc.poll() is not None:
            return proc.returncode
        os.kill(proc.pid, sig)
        time.sleep(0.0005)
    while proc.poll() is None and time.monotonic() < end:
        os.kill(proc.pid, burst[-1])
        time.sleep(0.0005)
    return proc.poll()


@pytest.mark.parametrize("burst", list(BURSTS), ids=list(BURSTS))
def test_a_burst_of_signals_while_busy_ends_in_a_clean_stop(tmp_path: Path, burst: str) -> None:
    cfg_path = write_config(tmp_path, log_level="debug", probes={"enabled": False})
    cfg = load_config(cfg_path)
    write_wav(cfg.content_dir / "long.wav", 120.0)
    apply_schedule(
        cfg.state_dir, schedule(1, [one_off("long", time.time() - 2, "long.wav", slot_minutes=10)])
    )
    log = tmp_path / "agent.log"
    proc = start_agent(cfg_path, log=log)
    try:
        wait_for(
            lambda: _query(cfg.db_path, "SELECT 1 FROM records WHERE started_at IS NOT NULL"),
            20,
            0.05,
            "the course to be playing",
        )
        with Hammer(cfg.socket_path) as hammer:
            wait_for(lambda: hammer.answers >= 20, 10, 0.01, "status answers")
            code = _storm(proc, BURSTS[burst])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    text = log.read_text(errors="replace")
    assert code == 0, f"exit status {code}; log tail:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    rows = _query(cfg.db_path, "SELECT outcome, reason FROM records")
    assert rows == [("interrupted", "the agent was stopped while this was playing")], rows
    assert _query(cfg.db_path, "SELECT 1 FROM events WHERE kind = 'agent_stopped'")
    if signal.SIGHUP in BURSTS[burst]:
        assert "schedules reloaded (SIGHUP)" in text
