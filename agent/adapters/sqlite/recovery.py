"""When the database file itself is in trouble: moving a corrupt one aside, naming who holds a lock.

Moving aside happens at most once per boot (a marker file beside the store names the boot), so
a failing card does not eat store after store; the boot id is passed in by the caller.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from agent.adapters.sqlite.errors import StoreCorrupt, StoreRefused
from agent.domain.records import utc_now_text
from agent.runtime.files import atomic_write

MOVED_MARKER = "store-moved-aside.json"


def _read_marker(marker: Path) -> dict[str, Any]:
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def move_aside(path: Path, boot: str, reason: str) -> Path:
    """Move a corrupt store (and its -wal/-shm) aside, at most once per boot.

    The marker beside the store names the boot that last moved one aside; a second corruption
    in the same boot means the card itself is failing, and moving store after store aside would
    lose the evidence and the data: refuse until a person removes the marker (or the file).
    """
    marker = path.parent / MOVED_MARKER
    prior = _read_marker(marker)
    if prior.get("boot_id") == boot:
        raise StoreRefused(
            f"the database {path} is damaged ({reason}), and a damaged database was already "
            f"moved aside in this boot (to {prior.get('moved_to')} at {prior.get('at')}); the "
            f"storage may be failing, so it is not moved aside again. A person must check the "
            f"card, then delete {marker} (or move {path} away) and restart the agent"
        )
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    moved = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while moved.exists():
        n += 1
        moved = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    note = {"boot_id": boot, "moved_to": moved.name, "at": utc_now_text(), "reason": reason}
    try:
        atomic_write(marker, json.dumps(note, ensure_ascii=False).encode())
    except OSError as exc:
        raise StoreCorrupt(
            f"the database {path} is damaged ({reason}) but {marker} cannot be written ({exc}), "
            f"so it is not moved aside; free space in {path.parent}"
        ) from exc
    os.replace(path, moved)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(moved) + suffix))
    return moved


def _holders(path: Path) -> list[str]:
    """Processes that have the database (or its -wal/-shm) open, as "pid (name)"."""
    names = {str(path), str(path) + "-wal", str(path) + "-shm"}
    found: list[str] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(os.readlink(fd) in names for fd in fds):
                comm = (proc / "comm").read_text().strip()
                found.append(f"{proc.name} ({comm})")
        except OSError:
            continue
    return found


def locked_message(path: Path, waited: float) -> str:
    holders = _holders(path.resolve())
    who = ", ".join(holders) if holders else "no process found; a file lock on another host?"
    return (
        f"the database {path} stayed locked for {waited:.0f} s by another process "
        f"(holding it open: {who}); is a second agent or a stuck tool running? Stop it and "
        f"restart the agent"
    )
