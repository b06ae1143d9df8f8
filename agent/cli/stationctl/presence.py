"""Is the agent running, and since when? Asked over its socket, told by its event log otherwise."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.sqlite.read_model import lifecycle
from agent.cli.stationctl.client import AgentUnavailable, request
from agent.domain.records import utc_text


@dataclass
class Presence:
    running: bool | None  # None: cannot tell (the socket refused us and the pid is unknown)
    answered: bool  # the agent answered on its socket
    reason: str | None = None  # why not: not_running | forbidden | timeout
    since: str | None = None  # running: started at; stopped: stopped at (or last sign of life)
    clean_stop: bool | None = None  # stopped: True when it logged agent_stopped
    pid: int | None = None
    snapshot: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "answered": self.answered,
            "reason": self.reason,
            "since": self.since,
            "clean_stop": self.clean_stop,
            "pid": self.pid,
        }


def pid_alive(pid: int | None, proc_root: Path = Path("/proc")) -> bool:
    if not pid:
        return False
    try:
        cmdline = (proc_root / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return b"agent" in cmdline


def last_sign_of_life(lkg_path: Path, last_event: str | None) -> str | None:
    """The later of the last event and the last-known-good time the agent keeps writing."""
    best = last_event
    try:
        lkg = float(lkg_path.read_text().strip())
        text = utc_text(lkg)
        if best is None or text > best:
            best = text
    except (OSError, ValueError):
        pass
    return best


def presence(
    socket_path: Path, db: sqlite3.Connection | None, lkg_path: Path, *, timeout: float = 3.0
) -> Presence:
    try:
        answer = request(socket_path, "status", timeout=timeout)
    except AgentUnavailable as exc:
        reason = exc.reason
    else:
        if answer.get("ok"):
            snap = answer.get("data") or {}
            return Presence(True, True, None, snap.get("started_at"), None, snap.get("pid"), snap)
        # It answered but gave no status: refused us (forbidden) or is too busy. It runs.
        reason = str(answer.get("error") or "refused")
        p = Presence(True, True, reason)
        if db is not None:
            life = lifecycle(db)
            if life["kind"] == "agent_started":
                p.since, p.pid = life["ts"], life["pid"]
        return p
    life = lifecycle(db) if db is not None else {"kind": None, "ts": None, "pid": None}
    if reason in ("forbidden", "timeout"):
        if life["kind"] == "agent_started" and pid_alive(life["pid"]):
            return Presence(True, False, reason, life["ts"], None, life["pid"])
        if db is None:
            return Presence(None, False, reason)
    p = Presence(False, False, reason)
    if life["kind"] == "agent_stopped":
        p.since, p.clean_stop = life["ts"], True
    elif life["kind"] == "agent_started":
        p.since = last_sign_of_life(lkg_path, life.get("last_event"))
        p.clean_stop = False
    return p
