"""Schedule documents: the model, its validation and where it comes from.

A schedule is one *layer* (``terminal`` or ``county``) with its own monotonic ``version``. A new
document is validated whole: one error rejects it all, every error is listed, and the previous
schedule stays in force. Versions only go up; an older or equal version is ``stale``. Replay
protection compares versions, never wall-clock times (the clock may be wrong).

Documents from outside are read by ``parse_untrusted`` only: bounded (size, depth, values, time,
see ``agent.runtime.documents``) and total (whatever goes wrong is a ``ScheduleRejected``), so a caller can
run it on its own thread and hand the result to ``ScheduleStore.apply(parsed=...)``.

Each layer's *version floor* (the highest version ever applied) is kept in its own small file
beside the document, so a document that can no longer be read does not let an older one in.
A document that names no ``timezone`` runs in the terminal's configured zone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.domain.document import Node
from agent.domain.schema import Problem, between, check_id, check_timezone

LAYERS = ("terminal", "county")
MAX_ITEMS = 2000
MAX_VERSION = 2**53
MAX_FILE_BYTES = 2**40  # one course file; larger is a typo, not a video
DEFAULT_TIMEZONE = "Asia/Shanghai"  # the config's own default
MAX_PROBLEMS = 50  # reasons listed for one document (an ack carries at most 50)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def check_media(value: str) -> str | None:
    """Media is a path relative to the content root, or an http(s) URL."""
    if value.startswith(("http://", "https://")):
        return None if len(value) <= 2048 and " " not in value else "is not a valid URL"
    if not value or len(value) > 1024:
        return "must be a relative path of 1-1024 characters or an http(s) URL"
    if "\\" in value or "\x00" in value:
        return "must not contain backslashes or NUL"
    p = PurePosixPath(value)
    if p.is_absolute():
        return "must be relative to the content folder, not an absolute path"
    if any(part == ".." for part in p.parts):
        return "must not contain '..' (it must stay inside the content folder)"
    if "://" in value:
        return "only http:// and https:// URLs are allowed"
    return None


def check_title(value: str) -> str | None:
    return None if 0 < len(value.strip()) <= 200 else "must be 1-200 characters"


def check_sha(value: str) -> str | None:
    return None if SHA256_RE.match(value) else "must be 64 lowercase hex digits"


def check_days(value: list[str]) -> str | None:
    if not value:
        return "must name at least one weekday"
    bad = [d for d in value if d not in WEEKDAYS]
    if bad:
        return f"unknown weekday(s) {', '.join(map(repr, bad))}; use {', '.join(WEEKDAYS)}"
    if len(set(value)) != len(value):
        return "lists a weekday twice"
    return None


def check_time(value: str) -> str | None:
    return None if TIME_RE.match(value) else "must be a local time HH:MM or HH:MM:SS"


@dataclass
class Course:
    id: str = field(metadata={"check": check_id})
    title: str = field(metadata={"check": check_title})
    media: str = field(metadata={"check": check_media})
    sha256: str | None = field(default=None, metadata={"check": check_sha})
    size: int | None = field(default=None, metadata={"check": between(1, MAX_FILE_BYTES)})
    max_minutes: float | None = field(default=None, metadata={"check": between(0.05, 24 * 60)})


@dataclass
class Weekly:
    days: list[str] = field(metadata={"check": check_days})
    time: str = field(metadata={"check": check_time})
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None

    def _validate(self) -> list[tuple[str, str]]:
        problems = []
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            problems.append(("valid_until", "is before valid_from"))
        return problems

    @property
    def local_time(self) -> dt.time:
        m = TIME_RE.match(self.time)
        assert m
        return dt.time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


@dataclass
class Item:
    id: str = field(metadata={"check": check_id})
    course: Course
    at: dt.datetime | None = None
    weekly: Weekly | None = None
    priority: int = field(default=10, metadata={"check": between(0, 1000)})
    slot_minutes: float | None = field(default=None, metadata={"check": between(0.05, 24 * 60)})

    def _validate(self) -> list[tuple[str, str]]:
        if (self.at is None) == (self.weekly is None):
            return [("", "needs exactly one of 'at' (a one-off local date-time) or 'weekly'")]
        return []


@dataclass
class ScheduleDoc:
    version: int = field(metadata={"check": between(1, MAX_VERSION)})
    items: list[Item]
    timezone: str | None = field(default=None, metadata={"check": check_timezone})
    layer: Literal["terminal", "county"] | None = None
    county: str | None = None
    terminal: str | None = None
    description: str | None = None
    # The zone when the document names none: the terminal's ``timezone``, set by whoever loads
    # it. Not part of the document (never stored, never compared).
    default_timezone: str = field(default=DEFAULT_TIMEZONE, init=False, repr=False, compare=False)

    def _validate(self) -> list[tuple[str, str]]:
        problems = []
        if len(self.items) > MAX_ITEMS:
            problems.append(("items", f"has {len(self.items)} items, the limit is {MAX_ITEMS}"))
        seen: set[str] = set()
        for i, item in enumerate(self.items):
            if item.id in seen:
                problems.append((f"items[{i}].id", f"duplicate item id {item.id!r}"))
            seen.add(item.id)
        return problems

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or self.default_timezone)

    def course(self, course_id: str) -> Course | None:
        for item in self.items:
            if item.course.id == course_id:
                return item.course
        return None

    def to_json(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, dt.date | dt.datetime):
                return v.isoformat()
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items() if x is not None}
            if isinstance(v, list):
                return [conv(x) for x in v]
            return v

        data = asdict(self)
        del data["default_timezone"]
        return conv(data)


class DocumentRejected(Exception):
    """A layered document (a schedule, a course manifest) cannot be applied; ``problems`` lists
    every reason.

    ``version`` is the document's own valid ``version`` when it had one, else None: a verdict
    never names a version that no document had. Each kind of document has its own subclass, so
    a caller catches only the kind it reads.
    """

    kind = "document"

    def __init__(
        self,
        source: str,
        problems: list[str],
        status: str = "rejected",
        version: int | None = None,
    ) -> None:
        self.source = source
        self.problems = problems
        self.status = status
        self.version = version
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {self.kind} {status}:\n{lines}")


class ScheduleRejected(DocumentRejected):
    kind = "schedule"


def stated_version(node: Node) -> int | None:
    """The document's top-level ``version`` if it is a valid one, else None."""
    if node.kind != "map" or "version" not in node.value:
        return None
    value = node.value["version"].value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_VERSION:
        return value
    return None


def at_most(problems: list[str], limit: int) -> list[str]:
    """The first ``limit - 1`` problems and a count of the rest (a whole list past ``limit``
    only makes the ack larger, and the fix starts at the first ones anyway)."""
    if len(problems) <= limit:
        return problems
    rest = len(problems) - (limit - 1)
    return [*problems[: limit - 1], f"... and {rest} more problem{'s' if rest > 1 else ''}"]


def problems_text(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


@dataclass
class ApplyResult:
    layer: str
    version: int | None  # None: the document had no valid version (it could not be read)
    status: str  # applied | stale | rejected
    reasons: list[str] = field(default_factory=list)
    previous_version: int | None = None
    doc: ScheduleDoc | None = field(default=None, repr=False, compare=False)  # when applied

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "version": self.version,
            "status": self.status,
            "reasons": self.reasons,
            "previous_version": self.previous_version,
        }


def unreadable_alarm(layer: str) -> str:
    """The alarm raised while the stored document of ``layer`` cannot be read."""
    return f"schedule_unreadable_{layer}"


def is_url(media: str) -> bool:
    return media.startswith(("http://", "https://"))
