"""How far each course file is from being playable, as the running agent reports it.

The agent's status snapshot has a ``content`` section (``agent.runtime.content_state``): the
files it wants, each ``ready``, ``fetching``, ``waiting``, ``failed`` or ``missing``, with bytes
done. It lists at most a few dozen files, the ones not ready first; so a file it does not list
is ready when the list was cut after a ready one, and unknown otherwise. Pure functions of the
status dict (plus :func:`agent_status` to ask for one), so ``library`` and ``schedule`` render
the same words and tests need no agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.cli.i18n import N_, _

STATES = ("ready", "fetching", "waiting", "failed", "missing", "unknown")
# How bad a state is when a course has several files: the course is as far as its worst file.
_WORST = {"failed": 0, "missing": 1, "unknown": 2, "waiting": 3, "fetching": 4, "ready": 5}

# The fetcher's failure codes (``agent.adapters.http_fetch.FetchError.reason``) in plain words.
REASONS = {
    "http_status": N_("the server refused"),
    "hash_mismatch": N_("the file arrived damaged"),
    "size_mismatch": N_("the file has the wrong size"),
    "stalled": N_("the download stalled"),
    "network": N_("no connection to the server"),
    "tls": N_("secure connection failed"),
    "too_large": N_("the file is larger than announced"),
    "disk": N_("cannot write to the storage"),
    "no space": N_("not enough space"),
}


@dataclass(frozen=True)
class FileReadiness:
    """One file's (or one course's) state: ``done`` of ``size`` bytes, and why it failed."""

    state: str
    done: int = 0
    size: int | None = None
    reason: str | None = None

    @property
    def percent(self) -> int | None:
        if not self.size:
            return None
        return max(0, min(100, int(100 * self.done / self.size)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "done": self.done,
            "size": self.size,
            "percent": self.percent,
            "reason": self.reason,
            "label": label(self),
        }


class ContentIndex:
    """The content section's files by path; ``known`` is False when the agent gave none."""

    def __init__(self, section: Mapping[str, Any] | None) -> None:
        self.known = isinstance(section, Mapping)
        rows = section.get("files") if isinstance(section, Mapping) else None
        self.rows: dict[str, Mapping[str, Any]] = {}
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, Mapping) and isinstance(row.get("path"), str):
                self.rows[row["path"]] = row
        total = section.get("files_total") if isinstance(section, Mapping) else None
        listed = list(self.rows.values())
        self.complete = not isinstance(total, int) or total <= len(listed)
        self.tail_ready = bool(listed) and listed[-1].get("status") == "ready"

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> ContentIndex:
        """From a whole status snapshot (the control socket's ``status`` data or the retained
        MQTT status); unknown when there is no snapshot or no content section."""
        if not isinstance(status, Mapping):
            return cls(None)
        return cls(status.get("content"))

    def file(self, path: str, size: int | None = None) -> FileReadiness:
        if not self.known:
            return FileReadiness("unknown", 0, size)
        row = self.rows.get(path)
        if row is None:
            if not self.complete and self.tail_ready:
                return FileReadiness("ready", size or 0, size)
            return FileReadiness("unknown", 0, size)
        state = row.get("status") if row.get("status") in STATES else "unknown"
        row_size = row.get("size") if isinstance(row.get("size"), int) else size
        done = row.get("done") if isinstance(row.get("done"), int) else 0
        if state == "ready":
            done = row_size or done
        reason = row.get("reason") if isinstance(row.get("reason"), str) else None
        return FileReadiness(str(state), int(done), row_size, reason)

    def course(self, files: Iterable[Mapping[str, Any]]) -> FileReadiness:
        """A course's readiness: its worst file's state, progress over all its bytes."""
        parts = [self.file(str(f.get("path")), _int(f.get("size"))) for f in files]
        if not parts:
            return FileReadiness("unknown")
        worst = min(parts, key=lambda p: _WORST.get(p.state, 2))
        sizes = [p.size for p in parts]
        size = sum(s for s in sizes if s) if all(sizes) else None
        done = sum(p.done for p in parts)
        return FileReadiness(worst.state, done, size, worst.reason)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reason_text(reason: str | None) -> str:
    """A failure reason in plain words (the code before ':' when it is a known one)."""
    if not reason:
        return ""
    code = reason.split(":", 1)[0].strip()
    if code in REASONS:
        return _(REASONS[code])
    if reason in REASONS:
        return _(REASONS[reason])
    return reason[:80]


def label(r: FileReadiness) -> str:
    """ready / downloading 45% / waiting for window / failed (reason) / missing / unknown."""
    if r.state == "ready":
        return _("ready")
    if r.state == "fetching":
        pct = r.percent
        return _("downloading {pct}%").format(pct=pct) if pct is not None else _("downloading")
    if r.state == "waiting":
        return _("waiting for window")
    if r.state == "failed":
        return _("failed ({reason})").format(reason=reason_text(r.reason) or "?")
    if r.state == "missing":
        why = reason_text(r.reason)
        return _("missing ({reason})").format(reason=why) if why else _("missing")
    return _("unknown")


def size_text(n: int | None) -> str:
    if n is None:
        return "?"
    if n >= 1024**3:
        return _("{n} GB").format(n=f"{n / 1024**3:.1f}")
    if n >= 1024**2:
        return _("{n} MB").format(n=f"{n / 1024**2:.1f}")
    return _("{n} KB").format(n=f"{max(n, 0) / 1024:.0f}")


def agent_status(socket_path: Any, timeout: float = 5.0) -> dict[str, Any] | None:
    """The running agent's status snapshot; None when it cannot be asked (readiness unknown)."""
    from agent.cli.stationctl.client import AgentUnavailable, request

    try:
        answer = request(socket_path, "status", timeout=timeout)
    except (AgentUnavailable, OSError, ValueError):
        return None
    data = answer.get("data") if answer.get("ok") else None
    return data if isinstance(data, dict) else None
