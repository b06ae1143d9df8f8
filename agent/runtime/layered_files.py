"""Versioned documents in layers, kept as files: the rules schedules and course manifests share.

Each layer (``terminal``, ``county``) is one JSON file in one folder, written atomically (temp
file, fsync, rename, fsync dir) so a power cut leaves the old or the new document, never half of
one. A lock file serialises the agent and stationctl.

Beside each document, ``{layer}.version`` holds the layer's version floor: the highest version
ever applied. It lives in its own file, not in the SQLite store, because it must be written under
the same lock and in the same order as the document (stationctl applies documents without the
agent's database), and because a document moved aside as corrupt must not take the floor with
it. It is written before the document, so after a power cut between the two it is ahead, never
behind. Nothing but the floor is refused when the document is unreadable: an older version is
``stale``, the same version is taken again (the county's retained copy), and the damaged file is
kept aside as ``{layer}.json.unreadable``.

It lives in the runtime because two adapters (``schedule_files``, ``manifest_files``) use it and
adapters may not import each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from agent.domain import core as c
from agent.domain.document import DEFAULT_LIMITS, DocumentError, Limits
from agent.domain.schedule import (
    LAYERS,
    MAX_PROBLEMS,
    ApplyResult,
    DocumentRejected,
    at_most,
    problems_text,
    stated_version,
)
from agent.domain.schema import SchemaError, build
from agent.runtime.documents import parse_document
from agent.runtime.files import atomic_write

M = TypeVar("M")


def read_layered(
    model: type[M],
    rejected: type[DocumentRejected],
    data: str | bytes,
    source: str,
    limits: Limits = DEFAULT_LIMITS,
) -> M:
    """Parse and validate a layered document (YAML or JSON) as ``model``; raises ``rejected``
    with every problem (at most ``MAX_PROBLEMS``) and the document's own version if it had one."""
    try:
        node = parse_document(data, source, limits)
    except DocumentError as exc:
        raise rejected(source, [f"{exc.where}: {exc.message}"]) from None
    try:
        return build(model, node, source)
    except SchemaError as exc:
        problems = at_most(problems_text(exc.problems), MAX_PROBLEMS)
        raise rejected(source, problems, version=stated_version(node)) from None


def read_untrusted_layered(
    model: type[M],
    rejected: type[DocumentRejected],
    data: str | bytes,
    source: str,
    budget_s: float,
) -> M:
    """``read_layered`` for a document from outside (MQTT, the inbox folder, a USB stick, a stored
    file that may be damaged): bounded in size, depth, values and time (``budget_s``), and raising
    nothing but ``rejected``: an error nobody foresaw (``RecursionError``, ``MemoryError``, a
    parser bug) is a verdict saying what happened, not an exception that stops the caller's
    thread. It touches no state, so any thread may run it."""
    try:
        return read_layered(model, rejected, data, source, Limits(seconds=budget_s))
    except rejected:
        raise
    except Exception as exc:
        problem = f"{source}: could not be read ({type(exc).__name__}: {exc})"
        raise rejected(source, [problem[:500]]) from None


class LayeredDoc(Protocol):
    version: int
    layer: Any
    county: str | None
    terminal: str | None

    def to_json(self) -> dict[str, Any]: ...


class Rejected(Protocol):
    """``ScheduleRejected`` or ``ManifestRejected``: why a document cannot be used."""

    problems: list[str]
    version: int | None


D = TypeVar("D", bound=LayeredDoc)


class LayeredFiles(Generic[D]):
    """The layers of one kind of document in ``folder``. A subclass says how a stored file is
    read (``load``), which exception says it cannot be (``rejected``), and the ``kind`` of
    document its reasons name."""

    kind: ClassVar[str] = "document"
    rejected: ClassVar[type[Exception]] = Exception
    layers: ClassVar[tuple[str, ...]] = LAYERS

    def __init__(self, folder: Path) -> None:
        self.dir = Path(folder)

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

    def load(self, layer: str) -> D | None:
        """The stored document of ``layer``, None if there is none; raises ``rejected``."""
        raise NotImplementedError

    def stored_bytes(self, layer: str) -> bytes | None:
        """The stored file of ``layer`` as it is on disk (None if there is none); ``rejected``
        when it cannot be read, which the caller treats like a damaged document."""
        p = self.path(layer)
        try:
            return p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.rejected(str(p), [f"{p}: cannot read the file: {exc.strerror}"]) from None

    def mtimes(self) -> tuple[float, ...]:
        out = []
        for layer in self.layers:
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

    def apply_parsed(
        self,
        parsed: D | Rejected,
        layer: str | None,
        terminal: str | None,
        county: str | None,
    ) -> ApplyResult:
        """Apply what the reader returned or raised; never raises for a bad document."""
        if isinstance(parsed, Exception):
            return ApplyResult(layer or "?", parsed.version, "rejected", parsed.problems)
        doc: D = parsed  # type: ignore[assignment]
        the_layer = layer or doc.layer or "terminal"
        reasons = wrong_target(doc, layer, the_layer, terminal, county, self.kind)
        if reasons:
            return ApplyResult(the_layer, doc.version, "rejected", reasons)
        with self.locked():
            return self._apply_locked(doc, the_layer)

    def _apply_locked(self, doc: D, layer: str) -> ApplyResult:
        floor = self.floor(layer)
        previous = floor
        damaged = False
        if floor is None or doc.version <= floor:
            # Only then does the stored document matter: read it (our own JSON, small).
            try:
                held = self.load(layer)
            except self.rejected:
                held, damaged = None, True
            if held is not None:
                previous = held.version if floor is None else max(floor, held.version)
                if doc.version <= held.version:
                    why = f"is not newer than the applied version {held.version}"
                    return stale(layer, doc.version, previous, why)
            if previous is not None and doc.version < previous:
                why = f"is older than version {previous}, applied before"
                if damaged:
                    why += f" (the stored {self.kind} cannot be read)"
                return stale(layer, doc.version, previous, why)
        doc.layer = layer
        text = json.dumps(doc.to_json(), ensure_ascii=False, indent=1, sort_keys=True)
        if floor is None or floor < doc.version:
            atomic_write(self.floor_path(layer), f"{doc.version}\n".encode())
        if damaged:
            with contextlib.suppress(OSError):  # kept for a person to look at, when it can be
                os.replace(self.path(layer), self.aside_path(layer))
        atomic_write(self.path(layer), text.encode("utf-8"))
        return ApplyResult(layer, doc.version, "applied", [], previous, doc)  # type: ignore[arg-type]


def stale(layer: str, version: int, previous: int, why: str) -> ApplyResult:
    return ApplyResult(layer, version, "stale", [f"version {version} {why}"], previous)


def wrong_target(
    doc: LayeredDoc,
    layer: str | None,
    the_layer: str,
    terminal: str | None,
    county: str | None,
    kind: str = "document",
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
        reasons.append(f"a county-layer {kind} must not name a terminal")
    return reasons


def verdict_entry(what: str, kind: str, result: ApplyResult, source: str) -> c.Log:
    """The event-log entry for a layered document's verdict (``{kind}_applied|stale|rejected``):
    what was applied or refused, from where, and why."""
    level = "info" if result.status == "applied" else "warning"
    version = "(no valid version)" if result.version is None else f"v{result.version}"
    message = f"{what} {result.layer} {version} from {source}: {result.status}"
    if result.reasons:
        message += " — " + "; ".join(result.reasons[:5])
    detail = {"layer": result.layer, "version": result.version, "reasons": result.reasons[:20]}
    return c.Log(level, f"{kind}_{result.status}", message, detail)
