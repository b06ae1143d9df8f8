"""Topic names: the one place that spells them (the agent and the county tools both use it).

Every terminal lives under ``rde/v1/{county}/{terminal}/``; ``rde/v1/{county}/all/schedule`` is
the county-wide schedule layer, ``rde/v1/{county}/all/library`` the county's course manifest and
``rde/v1/{county}/all/trust`` the root-signed revocation list (retained; ``docs/trust.md``).
Ids come from the config check (letters, digits, ``_``, ``-``; no ``.``), so they never contain MQTT
wildcards or separators; ``all`` is reserved.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "rde/v1"
ALL = "all"

# up: terminal -> county
STATE = "state"
HEARTBEAT = "heartbeat"
STATUS = "status"
RECORD = "record"
EVENT = "event"
LINK_SUMMARY = "link/summary"
SCHEDULE_ACK = "schedule/ack"
LIBRARY_ACK = "library/ack"
TRUST_ACK = "trust/ack"
CMD_REPLY = "cmd/reply"
# down: county -> terminal
RECORD_ACK = "record/ack"
SCHEDULE = "schedule"
LIBRARY = "library"  # course manifests (docs/manifest.md)
CMD = "cmd"
TRUST = "trust"  # the revocation list, county-wide only

UP = (
    STATE,
    HEARTBEAT,
    STATUS,
    RECORD,
    EVENT,
    LINK_SUMMARY,
    SCHEDULE_ACK,
    LIBRARY_ACK,
    TRUST_ACK,
    CMD_REPLY,
)
DOWN = (RECORD_ACK, SCHEDULE, LIBRARY, CMD, TRUST)
SUFFIXES = UP + DOWN


def root(county: str, terminal: str) -> str:
    return f"{PREFIX}/{county}/{terminal}"


def topic(county: str, terminal: str, suffix: str) -> str:
    return f"{PREFIX}/{county}/{terminal}/{suffix}"


def county_schedule(county: str) -> str:
    return topic(county, ALL, SCHEDULE)


def county_library(county: str) -> str:
    return topic(county, ALL, LIBRARY)


def county_trust(county: str) -> str:
    return topic(county, ALL, TRUST)


def fleet(county: str, suffix: str) -> str:
    """A subscription filter for one suffix across every terminal of a county."""
    return f"{PREFIX}/{county}/+/{suffix}"


def all_counties(suffix: str) -> str:
    return f"{PREFIX}/+/+/{suffix}"


def terminal_subscriptions(county: str, terminal: str) -> list[str]:
    """What a terminal subscribes to on every connect (QoS 1)."""
    return [
        topic(county, terminal, SCHEDULE),
        county_schedule(county),
        topic(county, terminal, LIBRARY),
        county_library(county),
        county_trust(county),
        topic(county, terminal, CMD),
        topic(county, terminal, RECORD_ACK),
    ]


@dataclass(frozen=True)
class Parsed:
    county: str
    terminal: str  # "all" for the county schedule
    suffix: str


def parse(name: str) -> Parsed | None:
    """Split a topic under the prefix; None for anything that is not ours."""
    head = PREFIX + "/"
    if not name.startswith(head):
        return None
    parts = name[len(head) :].split("/", 2)
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    county, terminal, suffix = parts
    if suffix not in SUFFIXES:
        return None
    return Parsed(county, terminal, suffix)
