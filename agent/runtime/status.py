"""The status snapshot's declared shape: what the terminal says about itself.

Built once, on the core thread (``agent.runtime.snapshot``), then used as it is by the MQTT
link (the retained ``status`` message, the heartbeat's summary) and by the control socket,
which ``stationctl status`` asks. On the wire it is the JSON of :meth:`StatusSnapshot.to_dict`
(docs/protocol.md, "status"); stationctl reads it back with :meth:`StatusSnapshot.from_dict`,
which accepts a snapshot from an agent of another version (missing fields are None).

Adapters add named sections (``mqtt``, ``monitor``, ``alarms``, ``store_writes``; the monitor's
``link`` summary): they are kept as the adapter gave them, and the few facts stationctl shows
from them are read in one place, :class:`LinkFacts` and :class:`BrokerFacts`.

Stdlib only, so stationctl can import it without loading the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.domain.records import utc_text

Section = dict[str, Any]


@dataclass(frozen=True)
class Playing:
    """What plays now (``Core.playing()``)."""

    record_id: str
    course_id: str
    title: str
    trigger: str
    phase: str
    position: float
    length: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Playing:
        return cls(**{name: d.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Upcoming:
    """One of the next slots (``start`` in UTC, ``local_start`` in the terminal's zone)."""

    start: str
    local_start: str
    item_id: str
    course_id: str
    title: str
    media: str
    layer: str
    priority: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Upcoming:
        return cls(**{name: d.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Summary:
    """Small and cheap (the heartbeat carries it): what plays, versions, backlog, and the
    summary sections adapters add (``link``)."""

    uptime_s: float
    playing: Playing | None
    schedule_versions: dict[str, int]
    clock: str
    outbox: int
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "uptime_s": self.uptime_s,
            "playing": self.playing.to_dict() if self.playing else None,
            "schedule_versions": dict(self.schedule_versions),
            "clock": self.clock,
            "outbox": self.outbox,
            **self.sections,
        }


SUMMARY_FIELDS = ("uptime_s", "playing", "schedule_versions", "clock", "outbox")
STATUS_FIELDS = (
    "terminal",
    "county",
    "started_at",
    "boot_id",
    "timezone",
    "upcoming",
    "open_records",
    "records_unsent",
)


@dataclass(frozen=True)
class StatusSnapshot:
    """The full picture: the summary, who and where the terminal is, the next slots, the
    records not yet final or not yet sent, and the adapters' status sections."""

    summary: Summary
    terminal: str
    county: str
    started_at: str
    boot_id: str
    timezone: str
    upcoming: tuple[Upcoming, ...]
    open_records: int
    records_unsent: int
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (the ``status`` message's fields before the link's envelope)."""
        out = self.summary.to_dict()
        out.update(
            {
                "terminal": self.terminal,
                "county": self.county,
                "started_at": self.started_at,
                "boot_id": self.boot_id,
                "timezone": self.timezone,
                "upcoming": [u.to_dict() for u in self.upcoming],
                "open_records": self.open_records,
                "records_unsent": self.records_unsent,
            }
        )
        out.update(self.sections)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StatusSnapshot:
        """Read a snapshot back (stationctl); every other key is a section."""
        playing = d.get("playing")
        known = set(SUMMARY_FIELDS) | set(STATUS_FIELDS)
        summary = Summary(
            uptime_s=d.get("uptime_s"),  # type: ignore[arg-type]
            playing=Playing.from_dict(playing) if isinstance(playing, Mapping) else None,
            schedule_versions=dict(d.get("schedule_versions") or {}),
            clock=d.get("clock") if isinstance(d.get("clock"), str) else None,  # type: ignore[arg-type]
            outbox=d.get("outbox"),  # type: ignore[arg-type]
        )
        return cls(
            summary=summary,
            upcoming=tuple(
                Upcoming.from_dict(u) for u in d.get("upcoming") or () if isinstance(u, Mapping)
            ),
            sections={k: v for k, v in d.items() if k not in known},
            **{k: d.get(k) for k in STATUS_FIELDS if k != "upcoming"},
        )

    def section(self, name: str) -> Any:
        """An adapter's section (status or summary), as the adapter gave it; None if absent."""
        if name in self.sections:
            return self.sections[name]
        return self.summary.sections.get(name)

    def all_sections(self) -> dict[str, Any]:
        return {**self.summary.sections, **self.sections}

    def fact(self, name: str) -> Any:
        """A plain fact an adapter's section reports (``display``, ``mode``, ``rtt_ms``...)."""
        return _fact(self, name)

    @property
    def link(self) -> LinkFacts:
        return LinkFacts.of(self)

    @property
    def broker(self) -> BrokerFacts:
        return BrokerFacts.of(self)

    @property
    def display(self) -> str | None:
        """``connected``, ``disconnected`` or ``unknown`` as the display probe last saw it."""
        value = self.fact("display")
        return value if isinstance(value, str) else None


def _fact(snap: StatusSnapshot, name: str) -> Any:
    """A fact the monitor's ``link`` summary carries (or a section of that name holding it
    as a plain value); an agent whose monitor reports it in another section is read from the
    first section that has it."""
    sections = snap.all_sections()
    plain = sections.get(name)
    if plain is not None and not isinstance(plain, Mapping):
        return plain
    link = sections.get("link")
    ordered = [link, *sections.values()] if isinstance(link, Mapping) else sections.values()
    for section in ordered:
        if isinstance(section, Mapping):
            value = section.get(name)
            if value is not None and not isinstance(value, Mapping):
                return value
    return None


@dataclass(frozen=True)
class LinkFacts:
    """The link as the monitor judges it: ``up``/``down`` (telecom), ``locked``/``unlocked``
    (satellite), with the round trip and loss of the last window."""

    state: str | None
    mode: str | None
    rtt_ms: float | None
    loss_pct: float | None

    @classmethod
    def of(cls, snap: StatusSnapshot) -> LinkFacts:
        link = snap.section("link")
        if isinstance(link, Mapping):
            state = link.get("link") or link.get("state")
        else:
            state = _fact(snap, "link")
        return cls(
            state=state if isinstance(state, str) else None,
            mode=_fact(snap, "mode"),
            rtt_ms=_fact(snap, "rtt_ms"),
            loss_pct=_fact(snap, "loss_pct"),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


CONNECTED_STATES = ("connected", "online", "up")
LAST_CONTACT_KEYS = ("last_contact", "last_seen", "connected_since", "last_connected")


@dataclass(frozen=True)
class BrokerFacts:
    """The county MQTT broker, from the link's ``mqtt`` section (state, connected_since) or a
    ``broker`` section (connected, last_contact)."""

    connected: bool | None
    last_contact: str | None
    configured: bool

    @classmethod
    def of(cls, snap: StatusSnapshot) -> BrokerFacts:
        section = None
        for name in ("broker", "mqtt"):
            if isinstance(snap.section(name), Mapping):
                section = snap.section(name)
                break
        if section is None:
            return cls(connected=None, last_contact=None, configured=False)
        connected = section.get("connected")
        if connected is None and isinstance(section.get("state"), str):
            connected = section["state"] in CONNECTED_STATES
        last = next((section[k] for k in LAST_CONTACT_KEYS if section.get(k)), None)
        if isinstance(last, int | float):
            last = utc_text(float(last))
        return cls(connected=connected, last_contact=last, configured=True)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
