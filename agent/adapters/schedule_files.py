"""Schedule documents as files and bytes: parsing them (YAML or JSON) and the applied layers on disk.

The model and its validation are the domain's (``agent.domain.schedule``); this adapter reads
documents from outside within the reading limits and keeps the applied layers in
``state_dir/schedule`` (atomic writes, a lock shared with stationctl, a version floor per layer).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.domain.document import DEFAULT_LIMITS, PARSE_SECONDS, DocumentError, Limits
from agent.domain.schedule import (
    DEFAULT_TIMEZONE,
    LAYERS,
    MAX_PROBLEMS,
    ApplyResult,
    ScheduleDoc,
    ScheduleRejected,
    at_most,
    problems_text,
    stated_version,
)
from agent.domain.schema import SchemaError, build
from agent.runtime.documents import parse_document
from agent.runtime.files import atomic_write


def parse_schedule(data: str | bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> ScheduleDoc:
    """Parse and validate a schedule document (YAML or JSON). Raises ScheduleRejected."""
    try:
        node = parse_document(data, source, limits)
    except DocumentError as exc:
        raise ScheduleRejected(source, [f"{exc.where}: {exc.message}"]) from None
    try:
        return build(ScheduleDoc, node, source)
    except SchemaError as exc:
        problems = at_most(problems_text(exc.problems), MAX_PROBLEMS)
        raise ScheduleRejected(source, problems, version=stated_version(node)) from None


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

    @staticmethod
    def read(
        data: str | bytes, source: str, *, timezone: str | None = None
    ) -> ScheduleDoc | ScheduleRejected:
        """``read_untrusted``, for a caller that holds the schedule files only through a port.

        It touches no state, so any thread may run it (the MQTT link reads a document on its
        own thread before the core applies it).
        """
        return read_untrusted(data, source, timezone=timezone)

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
