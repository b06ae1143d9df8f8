"""A per-kind rate limit for the event log, so a fault storm cannot bury what came before it."""

from __future__ import annotations


class LogLimiter:
    """At most ``burst`` event-log entries of one kind per ``window_s``; the rest are counted.

    A fault storm (a media failing every few seconds, a flapping link) must not push earlier,
    more useful diagnostics out of the journal or fill the state folder.
    """

    def __init__(self, burst: int = 20, window_s: float = 600.0) -> None:
        self.burst = burst
        self.window_s = window_s
        self._state: dict[str, list[float]] = {}  # kind -> [window start, count, suppressed]

    def admit(self, kind: str, now: float) -> int | None:
        """None: drop it. 0: log it. N > 0: log it, after saying N were suppressed."""
        st = self._state.get(kind)
        if st is None or now - st[0] >= self.window_s:
            suppressed = int(st[2]) if st else 0
            self._state[kind] = [now, 1, 0]
            return suppressed
        if st[1] < self.burst:
            st[1] += 1
            return 0
        st[2] += 1
        return None
