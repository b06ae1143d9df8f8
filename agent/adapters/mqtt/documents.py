"""The layered documents the link receives (schedules, course manifests, trust updates): how each
kind is applied on the core thread, which versions it reports, and how its retained copy is
recognised as the one already applied, so the bridge answers all three with one code path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.domain.schedule import ApplyResult, ScheduleDoc, ScheduleRejected

ACK_KEY = "mqtt.schedule_ack.{layer}"


@dataclass(frozen=True)
class DocKind:
    """How one kind of layered document (schedule, course manifest) is applied and answered."""

    apply: Callable[[Any, bytes, str, str, Any], ApplyResult]
    versions: Callable[[Any], dict[str, int]]
    same_as_applied: Callable[[Any, Any, str], int | None]
    ack_kind: str
    ack_topic: str
    ack_key: str


def _same_manifest_as_applied(runtime: Any, incoming: Any, layer: str) -> int | None:
    """Like ``_same_as_applied`` for a course manifest (read back from its stored file)."""
    from agent.domain.manifest import ManifestDoc, ManifestRejected

    if not isinstance(incoming, ManifestDoc):
        return None
    try:
        current = runtime.library.files.load(layer)
    except ManifestRejected:
        return None
    if current is None or incoming.version != current.version:
        return None
    as_stored = {**incoming.to_json(), "layer": layer}
    return current.version if as_stored == current.to_json() else None


SCHEDULE_DOCS = DocKind(
    apply=lambda rt, data, source, layer, parsed: rt.apply_schedule(
        data, source, layer, parsed=parsed
    ),
    versions=lambda rt: rt.schedule_versions(),
    same_as_applied=lambda rt, parsed, layer: _same_as_applied(rt, parsed, layer),
    ack_kind="schedule_ack",
    ack_topic="schedule/ack",
    ack_key=ACK_KEY,
)
LIBRARY_DOCS = DocKind(
    apply=lambda rt, data, source, layer, parsed: rt.library.apply(
        data, source, layer, parsed=parsed
    ),
    versions=lambda rt: rt.library.versions(),
    same_as_applied=_same_manifest_as_applied,
    ack_kind="library_ack",
    ack_topic="library/ack",
    ack_key="mqtt.library_ack.{layer}",
)


def _same_trust_as_applied(runtime: Any, update: Any, layer: str) -> int | None:
    """The applied revocation list's version when ``update`` carries exactly that list."""
    new = getattr(update, "revocations", None)
    if new is None:
        return None
    current = runtime.schedule_files.trust.revocations.load()
    return current.version if current.version and current == new else None


TRUST_DOCS = DocKind(
    apply=lambda rt, data, source, layer, parsed: rt.schedule_files.apply_trust(parsed, source),
    versions=lambda rt: {"county": rt.schedule_files.trust.applied_version()},
    same_as_applied=_same_trust_as_applied,
    ack_kind="trust_ack",
    ack_topic="trust/ack",
    ack_key="mqtt.trust_ack.{layer}",
)


def _same_as_applied(
    runtime: Any, incoming: ScheduleDoc | ScheduleRejected, layer: str
) -> int | None:
    """The applied version when ``incoming`` is exactly the stored document of ``layer``.

    The stored one is read from disk (the agent's own JSON), not taken from memory: when it has
    become unreadable, the retained copy must be applied again, not waved through.
    """
    if isinstance(incoming, ScheduleRejected):
        return None
    try:
        current = runtime.schedules.load(layer)
    except ScheduleRejected:
        return None
    if current is None or incoming.version != current.version:
        return None
    as_stored = {**incoming.to_json(), "layer": layer}
    return current.version if as_stored == current.to_json() else None
