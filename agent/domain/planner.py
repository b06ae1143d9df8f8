"""Planner: a pure function from schedule layers and a time window to occurrences.

No clock is read here: callers pass the window. Overlaps resolve by rank (layer, then priority),
then earliest start; a higher rank cuts a running lower one short, a lower or equal one that
starts while another runs is suppressed. Suppressed occurrences are returned too, so that they
can be recorded as ``missed`` with the reason (the county wants to know a session did not run).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from agent.domain.schedule import WEEKDAYS, Item, ScheduleDoc

# Terminal items win overlaps over county items, whatever their priorities.
LAYER_RANK = {"county": 0, "terminal": 1, "on_demand": 2}


@dataclass(frozen=True)
class Occurrence:
    """One planned showing of an item. Times are POSIX seconds (UTC instants)."""

    key: str
    layer: str
    version: int
    item: Item = field(compare=False, hash=False)
    start: float
    end: float
    priority: int

    @property
    def rank(self) -> tuple[int, int]:
        return (LAYER_RANK.get(self.layer, 0), self.priority)


@dataclass
class Plan:
    occurrences: list[Occurrence]  # accepted, with ``end`` cut where a higher rank preempts
    suppressed: list[tuple[Occurrence, Occurrence]]  # (suppressed, by)
    cut_by: dict[str, str] = field(default_factory=dict)  # key -> key of the preempting one


def slot_seconds(
    item: Item, default_slot_s: float, durations: dict[str, float] | None = None
) -> float:
    """How long an occurrence holds the screen, for overlap resolution.

    The item's own slot length wins, then the course's cap, then the media's length as learned
    from an earlier play, then the configured default.
    """
    if item.slot_minutes is not None:
        return item.slot_minutes * 60.0
    known = (durations or {}).get(item.course.id)
    if item.course.max_minutes is not None:
        cap = item.course.max_minutes * 60.0
        return min(cap, known) if known else cap
    if known:
        return known
    return default_slot_s


def occurrence_key(layer: str, item_id: str, start: float) -> str:
    stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{layer}/{item_id}/{stamp}"


def expand(
    doc: ScheduleDoc,
    layer: str,
    start: float,
    end: float,
    default_slot_s: float,
    durations: dict[str, float] | None = None,
) -> list[Occurrence]:
    """Every occurrence of ``doc`` whose planned interval intersects [start, end)."""
    tz = doc.tz
    out: list[Occurrence] = []
    for item in doc.items:
        length = slot_seconds(item, default_slot_s, durations)
        starts: list[float] = []
        if item.at is not None:
            at = item.at if item.at.tzinfo else item.at.replace(tzinfo=tz)
            starts.append(at.timestamp())
        else:
            weekly = item.weekly
            assert weekly is not None
            days = {WEEKDAYS.index(d) for d in weekly.days}
            first = dt.datetime.fromtimestamp(start - length, tz).date()
            last = dt.datetime.fromtimestamp(end, tz).date()
            day = first
            while day <= last:
                if (
                    day.weekday() in days
                    and (weekly.valid_from is None or day >= weekly.valid_from)
                    and (weekly.valid_until is None or day <= weekly.valid_until)
                ):
                    starts.append(dt.datetime.combine(day, weekly.local_time, tz).timestamp())
                day += dt.timedelta(days=1)
        for s in starts:
            if s < end and s + length > start:
                out.append(
                    Occurrence(
                        occurrence_key(layer, item.id, s),
                        layer,
                        doc.version,
                        item,
                        s,
                        s + length,
                        item.priority,
                    )
                )
    return out


def plan(
    layers: dict[str, ScheduleDoc],
    start: float,
    end: float,
    default_slot_s: float = 3600.0,
    durations: dict[str, float] | None = None,
) -> Plan:
    """Resolve all layers over [start, end) into a single non-overlapping sequence."""
    raw: list[Occurrence] = []
    for layer, doc in layers.items():
        raw.extend(expand(doc, layer, start, end, default_slot_s, durations))
    # Same start: the higher rank first, so the lower one is suppressed, not the other way.
    raw.sort(key=lambda o: (o.start, -o.rank[0], -o.rank[1], o.key))
    accepted: list[Occurrence] = []
    suppressed: list[tuple[Occurrence, Occurrence]] = []
    cut_by: dict[str, str] = {}
    active: Occurrence | None = None
    for occ in raw:
        if active is not None and active.end > occ.start:
            if occ.rank > active.rank:
                cut = Occurrence(
                    active.key,
                    active.layer,
                    active.version,
                    active.item,
                    active.start,
                    occ.start,
                    active.priority,
                )
                accepted[-1] = cut
                cut_by[active.key] = occ.key
                if cut.end <= cut.start:  # preempted at its very start
                    accepted.pop()
                    suppressed.append((active, occ))
                    cut_by.pop(active.key)
            else:
                suppressed.append((occ, active))
                continue
        accepted.append(occ)
        active = occ
    return Plan(accepted, suppressed, cut_by)
