"""Side jobs of the core loop (hooks, the inbox, the last-known-good time): each may fail alone.

A side job that raises is logged once and alarmed (``side_job_failed``, one alarm for all of
them), and the loop goes on without it; the alarm clears when every job that failed works again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.domain import core as c

log = logging.getLogger("agent")

Execute = Callable[[list[c.Action]], None]


class SideJobs:
    def __init__(self, execute: Execute) -> None:
        self._execute = execute
        self.failing: dict[str, str] = {}  # side job -> its last error, while it fails

    def run(self, name: str, job: Callable[[], None]) -> None:
        """Run one side job; a failure is logged and alarmed, and the loop goes on."""
        try:
            job()
        except Exception as exc:
            self.failed(name, exc)
            return
        self.ok(name)

    def failed(self, name: str, exc: BaseException) -> None:
        """One ``side_job_failed`` alarm stays raised while any side job keeps failing."""
        first = name not in self.failing
        self.failing[name] = f"{type(exc).__name__}: {exc}"
        if not first:
            return
        log.error("side job %s failed; the agent goes on without it: %s", name, exc, exc_info=exc)
        if len(self.failing) == 1:
            detail = {"job": name, "error": self.failing[name][:300]}
            self._execute([c.Alarm("side_job_failed", "raised", "warning", detail)])

    def ok(self, name: str) -> None:
        """Cleared when every side job that failed has succeeded again."""
        if self.failing.pop(name, None) is None:
            return
        log.info("side job %s works again", name)
        if not self.failing:
            self._execute([c.Alarm("side_job_failed", "cleared", "info", {"job": name})])
