"""agent.testing.fakes."""

from __future__ import annotations


class FakeClock:
    """A clock tests move by hand; ``jump`` moves the wall clock only (as NTP does)."""

    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self._wall = wall
        self._mono = mono

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def jump(self, seconds: float) -> None:
        self._wall += seconds
