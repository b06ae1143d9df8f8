"""What the content service knows about each wanted file, and what it tells people about it.

The worker thread writes this state; the core thread reads it (for the status snapshot and the
heartbeat) under one lock. The alarms are judged here from the same state, so what the status
says and what the county is alarmed about never disagree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from agent.domain.content_plan import FileState, Readiness, Want, readiness
from agent.domain.records import utc_text

FILES_SHOWN = 40  # files listed in the status section (the ones not ready first)
MISSING_LISTED = 10  # paths named in an alarm's detail


@dataclass
class Tracked:
    """One wanted file: its last known state, progress and failures."""

    want: Want
    status: str = "missing"  # ready | fetching | waiting | failed | missing
    done: int = 0
    reason: str | None = None
    tries: int = 0
    retry_at: float | None = None  # monotonic time of the next attempt after a failure
    mirror: str | None = None


@dataclass
class Verdicts:
    """The content alarms that should be raised now, with their details."""

    raised: dict[str, dict[str, Any]] = field(default_factory=dict)


class ContentState:
    def __init__(self, alarm_after_tries: int) -> None:
        self.lock = threading.Lock()
        self.files: dict[str, Tracked] = {}
        self.no_space: dict[str, Any] | None = None
        self.alarm_after_tries = alarm_after_tries
        self.last: Readiness | None = None
        self.manifest_versions: dict[str, int] = {}

    # -- worker side -------------------------------------------------------------------------

    def replace_wants(self, wants: list[Want]) -> dict[str, Tracked]:
        """Track exactly ``wants`` (keeping what is known of files still wanted)."""
        with self.lock:
            old = self.files
            self.files = {}
            for want in wants:
                tracked = old.get(want.path)
                if tracked is None or tracked.want.sha256 != want.sha256:
                    tracked = Tracked(want)
                elif tracked.want.sources != want.sources:
                    # New mirrors (a new manifest): the old ones' failures say nothing of them.
                    tracked = Tracked(want, tracked.status, tracked.done)
                else:
                    tracked.want = want
                self.files[want.path] = tracked
            return dict(self.files)

    def set(self, path: str, status: str, reason: str | None = None, done: int = 0) -> None:
        with self.lock:
            tracked = self.files.get(path)
            if tracked is not None:
                tracked.status, tracked.reason, tracked.done = status, reason, done

    def progress(self, path: str, done: int) -> None:
        with self.lock:
            tracked = self.files.get(path)
            if tracked is not None:
                tracked.done = done

    def judge(self, now: float, alarm_s: float) -> tuple[Readiness, Verdicts]:
        """Readiness now, and which content alarms hold."""
        with self.lock:
            wants = [t.want for t in self.files.values()]
            state = {p: FileState(t.status, t.done, t.reason) for p, t in self.files.items()}
            failing = {
                p: (t.tries, t.reason)
                for p, t in self.files.items()
                if t.status != "ready" and t.tries >= self.alarm_after_tries
            }
            no_space = self.no_space
        ready = readiness(wants, state, now, alarm_s)
        verdicts = Verdicts()
        if ready.missing_soon:
            verdicts.raised["content_missing"] = {
                "files": list(ready.missing_soon[:MISSING_LISTED]),
                "count": len(ready.missing_soon),
                "soonest_slot": utc_text(ready.soonest_missing)
                if ready.soonest_missing is not None
                else None,
            }
        if failing:
            first = sorted(failing)[:MISSING_LISTED]
            verdicts.raised["content_fetch_failed"] = {
                "files": first,
                "count": len(failing),
                "reasons": {p: failing[p][1] for p in first},
            }
        if no_space is not None:
            verdicts.raised["content_no_space"] = dict(no_space)
        with self.lock:
            self.last = ready
        return ready, verdicts

    # -- core thread side --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Small, for the heartbeat: counts, bytes left and the soonest slot lacking its file."""
        with self.lock:
            ready = self.last
        if ready is None:
            return {}
        out = {
            "needed": ready.needed,
            "ready": ready.ready,
            "fetching": ready.fetching,
            "failed": ready.failed,
            "bytes_left": ready.bytes_left,
        }
        if ready.soonest_missing is not None:
            out["soonest_missing"] = utc_text(ready.soonest_missing)
        return out

    def section(self) -> dict[str, Any]:
        """The status snapshot's ``content`` section: readiness and the files not ready."""
        with self.lock:
            ready = self.last
            tracked = list(self.files.values())
            versions = dict(self.manifest_versions)
        order = {"fetching": 0, "failed": 1, "missing": 2, "waiting": 3, "ready": 4}
        tracked.sort(key=lambda t: (order.get(t.status, 5), _slot_key(t.want)))
        files = [_file_row(t) for t in tracked[:FILES_SHOWN]]
        return {
            "readiness": self.summary() if ready is not None else None,
            "manifest_versions": versions,
            "files": files,
            "files_total": len(tracked),
        }


def _slot_key(want: Want) -> float:
    return want.slot if want.slot is not None else float("inf")


def _file_row(t: Tracked) -> dict[str, Any]:
    want = t.want
    row: dict[str, Any] = {
        "path": want.path,
        "status": t.status,
        "size": want.size,
        "done": t.done if t.status != "ready" else want.size,
        "slot": utc_text(want.slot) if want.slot is not None else None,
        "courses": list(want.course_ids),
    }
    if t.reason:
        row["reason"] = t.reason
    if t.tries:
        row["tries"] = t.tries
    return row
