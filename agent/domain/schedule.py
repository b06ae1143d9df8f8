"""Schedule documents: the model, its validation and where it comes from.

A schedule is one *layer* (``terminal`` or ``county``) with its own monotonic ``version``. A new
document is validated whole: one error rejects it all, every error is listed, and the previous
schedule stays in force. Versions only go up; an older or equal version is ``stale``. Replay
protection compares versions, never wall-clock times (the clock may be wrong).

Documents from outside are read by ``parse_untrusted`` only: bounded (size, depth, values, time,
see ``agent.adapters.documents``) and total (whatever goes wrong is a ``ScheduleRejected``), so a caller can
run it on its own thread and hand the result to ``ScheduleStore.apply(parsed=...)``.

Each layer's *version floor* (the highest version ever applied) is kept in its own small file
beside the document, so a document that can no longer be read does not let an older one in.
A document that names no ``timezone`` runs in the terminal's configured zone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.adapters.documents import (
    DEFAULT_LIMITS,
    PARSE_SECONDS,
    DocumentError,
    Limits,
    Node,
    parse_document,
)
from agent.adapters.sqlite.store import atomic_write
from agent.domain.schema import Problem, SchemaError, between, build, check_id, check_timezone

LAYERS = ("terminal", "county")
MAX_ITEMS = 2000
MAX_VERSION = 2**53
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


class ScheduleRejected(Exception):
    """The document cannot be applied; ``problems`` lists every reason.

    ``version`` is the document's own valid ``version`` when it had one, else None: a verdict
    never names a version that no document had.
    """

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
        super().__init__(f"{source}: schedule {status}:\n" + "\n".join(f"  {p}" for p in problems))


def parse_schedule(data: str | bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> ScheduleDoc:
    """Parse and validate a schedule document (YAML or JSON). Raises ScheduleRejected."""
    try:
        node = parse_document(data, source, limits)
    except DocumentError as exc:
        raise ScheduleRejected(source, [f"{exc.where}: {exc.message}"]) from None
    try:
        return build(ScheduleDoc, node, source)
    except SchemaError as exc:
        problems = _at_most(problems_text(exc.problems), MAX_PROBLEMS)
        raise ScheduleRejected(source, problems, version=_stated_version(node)) from None


def parse_untrusted(
    data: str | bytes,
    source: str,
    *,
    timezone: str | None = None,
    budget_s: float = PARSE_SECONDS,
) -> ScheduleDoc:
    """Read a schedule that came from outside (MQTT, the inbox folder, a USB stick, a stored
    file that may be damaged): the one entry point for such documents.

    Bounded in size, depth, number of values and time (``budget_s``), and it raises nothing but
    ``ScheduleRejected``: an error nobody foresaw (``RecursionError``, ``MemoryError``, a parser
    bug) is a rejection saying what happened, not an exception that stops the caller's thread.
    It touches no state, so any thread may run it. ``timezone`` is the zone the document runs
    in when it names none.
    """
    try:
        doc = parse_schedule(data, source, Limits(seconds=budget_s))
    except ScheduleRejected:
        raise
    except Exception as exc:
        problem = f"{source}: could not be read ({type(exc).__name__}: {exc})"
        raise ScheduleRejected(source, [problem[:500]]) from None
    if timezone:
        doc.default_timezone = timezone
    return doc


def read_untrusted(
    data: str | bytes, source: str, *, timezone: str | None = None
) -> ScheduleDoc | ScheduleRejected:
    """``parse_untrusted`` as a value: the document, or the verdict that it cannot be used; what
    ``ScheduleStore.apply(parsed=...)`` and ``Runtime.apply_schedule(parsed=...)`` take."""
    try:
        return parse_untrusted(data, source, timezone=timezone)
    except ScheduleRejected as exc:
        return exc


def _stated_version(node: Node) -> int | None:
    """The document's top-level ``version`` if it is a valid one, else None."""
    if node.kind != "map" or "version" not in node.value:
        return None
    value = node.value["version"].value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_VERSION:
        return value
    return None


def _at_most(problems: list[str], limit: int) -> list[str]:
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


class ScheduleStore:
    """The applied schedule layers on disk, one JSON file per layer under ``state_dir/schedule``.

    Written atomically (temp file, fsync, rename, fsync dir) so a power cut leaves the old or
    the new schedule, never half of one. A lock file serialises the agent and stationctl.

    Beside each document, ``{layer}.version`` holds the layer's version floor: the highest
    version ever applied. It lives in its own file, not in the SQLite store, because it must be
    written under the same lock and in the same order as the document (stationctl applies
    schedules without the agent's database), and because a store moved aside as corrupt must
    not take the floor with it. It is written before the document, so after a power cut between
    the two it is ahead, never behind. Nothing but the floor is refused when the document is
    unreadable: an older version is ``stale``, the same version is taken again (the county's
    retained copy), and the damaged file is kept aside as ``{layer}.json.unreadable``.
    """

    def __init__(self, state_dir: Path, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.dir = Path(state_dir) / "schedule"
        self.timezone = timezone  # for documents that name none

    def path(self, layer: str) -> Path:
        return self.dir / f"{layer}.json"

    def floor_path(self, layer: str) -> Path:
        return self.dir / f"{layer}.version"

    def aside_path(self, layer: str) -> Path:
        return self.dir / f"{layer}.json.unreadable"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self, layer: str, timezone: str | None = None) -> ScheduleDoc | None:
        """The stored document of ``layer`` (None if there is none); ScheduleRejected when it
        cannot be read. ``timezone``: the zone for a document that names none."""
        p = self.path(layer)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ScheduleRejected(str(p), [f"{p}: cannot read the file: {exc.strerror}"]) from None
        return parse_untrusted(data, str(p), timezone=timezone or self.timezone)

    def load_all(self) -> dict[str, ScheduleDoc]:
        out = {}
        for layer in LAYERS:
            doc = self.load(layer)
            if doc is not None:
                out[layer] = doc
        return out

    def mtimes(self) -> tuple[float, ...]:
        out = []
        for layer in LAYERS:
            try:
                out.append(self.path(layer).stat().st_mtime_ns)
            except FileNotFoundError:
                out.append(0)
        return tuple(out)

    def floor(self, layer: str) -> int | None:
        """The highest version ever applied to ``layer``; None when its file is missing or
        unreadable (then the stored document's version is the floor)."""
        try:
            text = self.floor_path(layer).read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not text.isdigit() or len(text) > 16:
            return None
        return int(text)

    def keep_floor(self, layer: str, version: int) -> None:
        """Make sure the floor of ``layer`` is at least ``version`` (documents stored before
        floors existed, or a floor file that was lost)."""
        with self.locked():
            floor = self.floor(layer)
            if floor is None or floor < version:
                atomic_write(self.floor_path(layer), f"{version}\n".encode())

    def apply(
        self,
        data: bytes | str,
        source: str,
        *,
        layer: str | None = None,
        terminal: str | None = None,
        county: str | None = None,
        parsed: ScheduleDoc | ScheduleRejected | None = None,
    ) -> ApplyResult:
        """Validate and apply a document; never raises for a bad document, returns the verdict.

        ``parsed`` is what ``parse_untrusted(data, source)`` returned or raised, when the caller
        read the document on its own thread; then ``data`` is not read again here.
        """
        if parsed is None:
            parsed = read_untrusted(data, source, timezone=self.timezone)
        if isinstance(parsed, ScheduleRejected):
            return ApplyResult(layer or "?", parsed.version, "rejected", parsed.problems)
        doc = parsed
        the_layer = layer or doc.layer or "terminal"
        reasons = _wrong_target(doc, layer, the_layer, terminal, county)
        if reasons:
            return ApplyResult(the_layer, doc.version, "rejected", reasons)
        with self.locked():
            return self._apply_locked(doc, the_layer)

    def _apply_locked(self, doc: ScheduleDoc, layer: str) -> ApplyResult:
        floor = self.floor(layer)
        previous = floor
        damaged = False
        if floor is None or doc.version <= floor:
            # Only then does the stored document matter: read it (our own JSON, small).
            try:
                held = self.load(layer)
            except ScheduleRejected:
                held, damaged = None, True
            if held is not None:
                previous = held.version if floor is None else max(floor, held.version)
                if doc.version <= held.version:
                    why = f"is not newer than the applied version {held.version}"
                    return _stale(layer, doc.version, previous, why)
            if previous is not None and doc.version < previous:
                why = f"is older than version {previous}, applied before"
                if damaged:
                    why += " (the stored document cannot be read)"
                return _stale(layer, doc.version, previous, why)
        doc.layer = layer
        text = json.dumps(doc.to_json(), ensure_ascii=False, indent=1, sort_keys=True)
        if floor is None or floor < doc.version:
            atomic_write(self.floor_path(layer), f"{doc.version}\n".encode())
        if damaged:
            with contextlib.suppress(OSError):  # kept for a person to look at, when it can be
                os.replace(self.path(layer), self.aside_path(layer))
        atomic_write(self.path(layer), text.encode("utf-8"))
        return ApplyResult(layer, doc.version, "applied", [], previous, doc)


def _stale(layer: str, version: int, previous: int, why: str) -> ApplyResult:
    return ApplyResult(layer, version, "stale", [f"version {version} {why}"], previous)


def _wrong_target(
    doc: ScheduleDoc, layer: str | None, the_layer: str, terminal: str | None, county: str | None
) -> list[str]:
    """Reasons the document is not meant for this terminal and layer."""
    reasons = []
    if doc.layer is not None and layer is not None and doc.layer != layer:
        reasons.append(f"document says layer {doc.layer!r} but arrived for layer {layer!r}")
    if terminal and doc.terminal and doc.terminal != terminal:
        reasons.append(f"document is for terminal {doc.terminal!r}, this is {terminal!r}")
    if county and doc.county and doc.county != county:
        reasons.append(f"document is for county {doc.county!r}, this is {county!r}")
    if the_layer == "county" and doc.terminal:
        reasons.append("a county-layer schedule must not name a terminal")
    return reasons
