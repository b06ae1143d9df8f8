"""Rules of time for a terminal without a trustworthy clock: plausible, synced, last-known-good.

Terminals often have no RTC: at boot the wall clock may say 1970 or last month, then jump when
NTP syncs. The kernel's word (synced or not) and a last-known-good time kept on disk decide how far
the wall clock is believed; these pure rules say how (``docs/architecture.md``, Time). Reading the
kernel and the disk is the adapter's job (``agent.adapters.kernel_clock``).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from agent.domain.release import RELEASE_DATE

SYNCED = "synced"


UNSYNCED = "unsynced"


IMPLAUSIBLE = "implausible"


RELEASE_EPOCH = dt.datetime.fromisoformat(RELEASE_DATE).replace(tzinfo=dt.UTC).timestamp()


# How far below the last-known-good time the clock may read before we call it implausible:
# the LKG is written every few minutes, so the real time is always a bit past it.
LKG_TOLERANCE_S = 120.0


class Clock(Protocol):
    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


def plausible(wall: float, lkg: float) -> bool:
    return wall >= RELEASE_EPOCH and wall >= lkg - LKG_TOLERANCE_S


def clock_state(wall: float, lkg: float, synced: bool | None) -> str:
    """A synchronised clock is authoritative; the last-known-good time only judges the others."""
    if synced and wall >= RELEASE_EPOCH:
        return SYNCED
    if not plausible(wall, lkg):
        return IMPLAUSIBLE
    return UNSYNCED


def next_lkg(
    lkg: float,
    anchor: float,
    elapsed_s: float,
    wall: float,
    synced: bool | None,
    max_step_s: float,
) -> float:
    """The last-known-good time, given the clock now.

    ``anchor`` is the last value that was trusted (loaded at start, or set by a synchronised
    clock) and ``elapsed_s`` the monotonic time since then. A synchronised clock sets the value
    outright, lower or higher. An unsynchronised clock may raise it, never lower it, and never
    past the anchor plus the real elapsed time plus ``max_step_s``: a wrong future reading (an RTC
    saying 2036) then holds a corrected clock for at most that step. An implausible reading
    changes nothing.
    """
    if synced and wall >= RELEASE_EPOCH:
        return wall
    if not plausible(wall, lkg):
        return lkg
    if not anchor:
        return max(lkg, wall)
    ceiling = anchor + max(0.0, elapsed_s) + max_step_s
    return max(lkg, min(wall, ceiling))
