"""Schedule documents: the model, its validation and where it comes from.

A schedule is one *layer* (``terminal`` or ``county``) with its own monotonic ``version``. A new
document is validated whole: one error rejects it all, every error is listed, and the previous
schedule stays in force. Versions only go up; an older or equal version is ``stale``. Replay
protection compares versions, never wall-clock times (the clock may be wrong).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.safeload import DocumentError, parse_document
from agent.schema import Problem, SchemaError, between, build, check_id, check_timezone
from agent.store import atomic_write

LAYERS = ("terminal", "county")
MAX_ITEMS = 2000
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
    version: int = field(metadata={"check": between(1, 2**53)})
    items: list[Item]
    timezone: str = field(default="Asia/Shanghai", metadata={"check": check_timezone})
    layer: Literal["terminal", "county"] | None = None
    county: str | None = None
    terminal: str | None = None
    description: str | None = None

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
        return ZoneInfo(self.timezone)

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

        return conv(asdict(self))


class ScheduleRejected(Exception):
    """The document cannot be applied; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str], status: str = "rejected") -> None:
        self.source = source
        self.problems = problems
        self.status = status
        super().__init__(f"{source}: schedule {status}:\n" + "\n".join(f"  {p}" for p in problems))


def parse_schedule(data: str | bytes, source: str) -> ScheduleDoc:
    """Parse and validate a schedule document (YAML or JSON). Raises ScheduleRejected."""
    try:
        node = parse_document(data, source)
        return build(ScheduleDoc, node, source)
    except DocumentError as exc:
        raise ScheduleRejected(source, [f"{exc.where}: {exc.message}"]) from None
    except SchemaError as exc:
        raise ScheduleRejected(source, [str(p) for p in exc.problems]) from None


def problems_text(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


@dataclass
class ApplyResult:
    layer: str
    version: int
    status: str  # applied | stale | rejected
    reasons: list[str] = field(default_factory=list)
    previous_version: int | None = None


class ScheduleStore:
    """The applied schedule layers on disk, one JSON file per layer under ``state_dir/schedule``.

    Written atomically (temp file, fsync, rename, fsync dir) so a power cut leaves the old or
    the new schedule, never half of one. A lock file serialises the agent and stationctl.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "schedule"

    def path(self, layer: str) -> Path:
        return self.dir / f"{layer}.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load(self, layer: str) -> ScheduleDoc | None:
        p = self.path(layer)
        if not p.exists():
            return None
        return parse_schedule(p.read_bytes(), str(p))

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

    def apply(
        self,
        data: bytes | str,
        source: str,
        *,
        layer: str | None = None,
        terminal: str | None = None,
        county: str | None = None,
    ) -> ApplyResult:
        """Validate and apply a document; never raises for a bad document, returns the verdict."""
        try:
            doc = parse_schedule(data, source)
        except ScheduleRejected as exc:
            return ApplyResult(layer or "?", _guess_version(data), "rejected", exc.problems)
        the_layer = layer or doc.layer or "terminal"
        reasons = []
        if doc.layer is not None and layer is not None and doc.layer != layer:
            reasons.append(f"document says layer {doc.layer!r} but arrived for layer {layer!r}")
        if terminal and doc.terminal and doc.terminal != terminal:
            reasons.append(f"document is for terminal {doc.terminal!r}, this is {terminal!r}")
        if county and doc.county and doc.county != county:
            reasons.append(f"document is for county {doc.county!r}, this is {county!r}")
        if the_layer == "county" and doc.terminal:
            reasons.append("a county-layer schedule must not name a terminal")
        if reasons:
            return ApplyResult(the_layer, doc.version, "rejected", reasons)
        with self.locked():
            try:
                current = self.load(the_layer)
            except ScheduleRejected:
                current = None  # an unreadable stored file must not block a good new one
            if current is not None and doc.version <= current.version:
                return ApplyResult(
                    the_layer,
                    doc.version,
                    "stale",
                    [
                        f"version {doc.version} is not newer than the applied version {current.version}"
                    ],
                    current.version,
                )
            doc.layer = the_layer
            text = json.dumps(doc.to_json(), ensure_ascii=False, indent=1, sort_keys=True)
            atomic_write(self.path(the_layer), text.encode("utf-8"))
            return ApplyResult(
                the_layer, doc.version, "applied", [], current.version if current else None
            )


def _guess_version(data: bytes | str) -> int:
    """Best effort for the ack of a rejected document (which version was rejected)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    m = re.search(r'"?version"?\s*:\s*(\d{1,15})', text[:4096])
    return int(m.group(1)) if m else 0
