"""Schedule documents as files and bytes: parsing them (YAML or JSON) and the applied layers on disk.

The model and its validation are the domain's (``agent.domain.schedule``); this adapter reads
documents from outside within the reading limits and keeps the applied layers in
``state_dir/schedule`` (atomic writes, a lock shared with stationctl, a version floor per layer:
``agent.runtime.layered_files``).
"""

from __future__ import annotations

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
from agent.runtime.layered_files import LayeredFiles


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


class ScheduleStore(LayeredFiles[ScheduleDoc]):
    """The applied schedule layers on disk, one JSON file per layer under ``state_dir/schedule``.

    Atomic writes, the lock shared with stationctl, the version floor per layer and the damaged
    document kept aside are ``agent.runtime.layered_files``'s, shared with the course manifests.
    """

    kind = "schedule"
    rejected = ScheduleRejected

    def __init__(self, state_dir: Path, timezone: str = DEFAULT_TIMEZONE) -> None:
        super().__init__(Path(state_dir) / "schedule")
        self.timezone = timezone  # for documents that name none

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
        return self.apply_parsed(parsed, layer, terminal, county)
