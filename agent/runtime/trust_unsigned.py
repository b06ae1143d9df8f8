"""Unsigned documents an admin applied as root (``stationctl schedule apply --unsigned``).

stationctl never writes the agent's database; it appends one JSON line per such document to
``state_dir/trust/unsigned.jsonl``. The agent takes the file whenever it (re)loads the schedules
(at start, and on the reload stationctl asks for): each line becomes an event in the local log
and an ``event`` message to the county (``type: security``), so an override at the terminal is
never silent.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.domain import core as c
from agent.domain.records import utc_now_text

log = logging.getLogger("agent.trust")

EVENT_NAME = "unsigned_document_applied"
MAX_LINES = 100


def unsigned_log(state_dir: Path) -> Path:
    return Path(state_dir) / "trust" / "unsigned.jsonl"


def note_unsigned(state_dir: Path, entry: dict[str, Any]) -> None:
    """Append one override to the file the agent reports from (stationctl's side)."""
    path = unsigned_log(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"ts": utc_now_text(), **entry}, ensure_ascii=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def report_unsigned(cfg: Any, store: Any, log_entry: Callable[[c.Log], None]) -> int:
    """Turn every noted override into a local event and a queued ``event`` for the county.

    Returns how many were reported. The file is moved aside first, so a line stationctl
    appends meanwhile lands in a new file and is reported next time.
    """
    path = unsigned_log(cfg.state_dir)
    taking = path.with_suffix(".taking")
    try:
        if not taking.exists():
            os.replace(path, taking)
        lines = taking.read_text("utf-8", errors="replace").splitlines()[:MAX_LINES]
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return 0
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"line": line[:300]}
        entries.append(entry if isinstance(entry, dict) else {"line": str(entry)[:300]})
    with store.transaction() as conn:
        for n, entry in enumerate(entries):
            ts = str(entry.get("ts") or utc_now_text())
            payload = {
                "ts": ts if len(ts) <= 40 else utc_now_text(),
                "terminal": cfg.terminal,
                "county": cfg.county,
                "type": "security",
                "name": EVENT_NAME,
                "state": "raised",
                "severity": "warning",
                "detail": entry,
            }
            store.enqueue("event", f"unsigned:{ts}:{n}", "event", payload, conn=conn)
    for entry in entries:
        message = (
            f"unsigned {entry.get('kind', 'document')} {entry.get('file', '?')} applied by "
            f"{entry.get('user', '?')} with --unsigned (reported to the county)"
        )
        log_entry(c.Log("warning", EVENT_NAME, message, entry))
    taking.unlink(missing_ok=True)
    return len(entries)
