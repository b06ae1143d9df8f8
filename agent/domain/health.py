"""Health state machines: named verdicts in, alarm changes out. Pure: no threads, no I/O, no clock.

This module knows no probe. Whoever owns an alarm turns a sample into a ``Verdict`` per alarm
name; here each name has one hysteresis machine. A verdict's condition is tri-state: the alarm's
condition holds (``True``), does not hold (``False``), or unknown (``None``: the probe could not
tell, or the value sits inside a hysteresis band). A machine raises after N verdicts in a row
with the condition holding (and, optionally, after it has held for T seconds), clears after M in a
row without it. Unknown verdicts change nothing and do not break a run, so a TV that stops
answering CEC keeps its last known state and a flapping link gives one alarm, not a hundred.

Times are passed in: ``now`` (wall clock, epoch seconds) stamps the changes, ``mono`` (monotonic)
measures durations, so an NTP step cannot make an alarm fire or clear early.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class AlarmChange:
    """One alarm raised or cleared. ``raised_at`` on a clear tells when the trouble began."""

    name: str
    action: Literal["raised", "cleared"]
    at: float
    severity: str
    detail: dict[str, Any] = field(default_factory=dict)
    raised_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """One sample's word on one alarm: ``condition`` True (bad), False (good) or None (unknown).

    ``detail`` travels with the change the verdict causes (what the technician reads).
    """

    condition: bool | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HysteresisSettings:
    """How one alarm's machine counts: see the module docstring."""

    severity: str
    raise_after: int = 1
    clear_after: int = 1
    raise_after_seconds: float = 0.0


class Hysteresis:
    """One alarm's state machine (see the module docstring)."""

    def __init__(
        self,
        name: str,
        severity: str,
        raise_after: int = 1,
        clear_after: int = 1,
        raise_after_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self.severity = severity
        self.raise_after = raise_after
        self.clear_after = clear_after
        self.raise_after_seconds = raise_after_seconds
        self.active = False
        self.raised_at: float | None = None
        self.bad_count = 0
        self.good_count = 0
        self.bad_since: float | None = None

    @classmethod
    def from_settings(cls, name: str, s: HysteresisSettings) -> Hysteresis:
        return cls(name, s.severity, s.raise_after, s.clear_after, s.raise_after_seconds)

    def restore(self, raised_at: float) -> None:
        """Start as raised (the alarm was open in the store when the agent restarted)."""
        self.active, self.raised_at = True, raised_at

    def update(
        self, bad: bool | None, now: float, mono: float, detail: dict[str, Any]
    ) -> AlarmChange | None:
        if bad is None:
            return None
        if bad:
            self.good_count = 0
            self.bad_count += 1
            if self.bad_since is None:
                self.bad_since = mono
            if (
                not self.active
                and self.bad_count >= self.raise_after
                and mono - self.bad_since >= self.raise_after_seconds
            ):
                self.active, self.raised_at = True, now
                return AlarmChange(self.name, "raised", now, self.severity, detail)
            return None
        self.bad_count = 0
        self.bad_since = None
        self.good_count += 1
        if self.active and self.good_count >= self.clear_after:
            raised_at, self.active, self.raised_at = self.raised_at, False, None
            return AlarmChange(self.name, "cleared", now, self.severity, detail, raised_at)
        return None


class HealthEngine:
    """One machine per alarm name; feed it verdicts by name, collect the changes."""

    def __init__(self, settings: Mapping[str, HysteresisSettings]) -> None:
        self.machines: dict[str, Hysteresis] = {
            name: Hysteresis.from_settings(name, s) for name, s in settings.items()
        }

    def restore(self, name: str, raised_at: float) -> None:
        """Mark an alarm open since ``raised_at``; a name no machine knows is ignored (an alarm
        of a probe that is no longer installed stays as the store has it)."""
        if name in self.machines:
            self.machines[name].restore(raised_at)

    def is_active(self, name: str) -> bool:
        machine = self.machines.get(name)
        return machine is not None and machine.active

    def active(self) -> dict[str, float]:
        return {n: m.raised_at or 0.0 for n, m in self.machines.items() if m.active}

    def judge(self, verdicts: Mapping[str, Verdict], now: float, mono: float) -> list[AlarmChange]:
        """Apply each verdict to its machine; a verdict for an unknown name is a caller's bug."""
        changes: list[AlarmChange] = []
        for name, verdict in verdicts.items():
            machine = self.machines.get(name)
            if machine is None:
                raise KeyError(
                    f"no alarm named {name!r} (known: {', '.join(sorted(self.machines))})"
                )
            change = machine.update(verdict.condition, now, mono, verdict.detail)
            if change is not None:
                changes.append(change)
        return changes
