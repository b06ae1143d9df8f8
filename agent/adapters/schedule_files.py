"""Schedule documents as files and bytes: parsing them (YAML or JSON) and the applied layers on disk.

The model and its validation are the domain's (``agent.domain.schedule``); this adapter reads
documents from outside within the reading limits and keeps the applied layers in
``state_dir/schedule`` (atomic writes, a lock shared with stationctl, a version floor per layer:
``agent.runtime.layered_files``).
"""

from __future__ import annotations

from pathlib import Path

from agent.domain.document import DEFAULT_LIMITS, PARSE_SECONDS, Limits
from agent.domain.schedule import (
    DEFAULT_TIMEZONE,
    LAYERS,
    ApplyResult,
    ScheduleDoc,
    ScheduleRejected,
)
from agent.runtime.layered_files import LayeredFiles, read_layered, read_untrusted_layered


def parse_schedule(data: str | bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> ScheduleDoc:
    """Parse and validate a schedule document (YAML or JSON). Raises ScheduleRejected."""
    return read_layered(ScheduleDoc, ScheduleRejected, data, source, limits)


def parse_untrusted(
    data: str | bytes,
    source: str,
    *,
    timezone: str | None = None,
    budget_s: float = PARSE_SECONDS,
) -> ScheduleDoc:
    """Read a schedule that came from outside: the one entry point for such documents
    (``read_untrusted_layered``: bounded, raising nothing but ``ScheduleRejected``, any thread).
    ``timezone`` is the zone the document runs in when it names none."""
    doc = read_untrusted_layered(ScheduleDoc, ScheduleRejected, data, source, budget_s)
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
        data = self.stored_bytes(layer)
        if data is None:
            return None
        return parse_untrusted(data, str(self.path(layer)), timezone=timezone or self.timezone)

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
