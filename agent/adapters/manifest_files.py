"""Course manifests as files and bytes: parsing them (YAML or JSON) and the applied layers on disk.

The model and its validation are the domain's (``agent.domain.manifest``); this adapter reads
manifests from outside within the reading limits and keeps the applied layers in
``state_dir/library`` with the same rules as the schedule layers (``agent.runtime.layered_files``:
atomic writes, a lock shared with stationctl, a version floor per layer, a damaged file kept
aside).
"""

from __future__ import annotations

from pathlib import Path

from agent.domain.document import DEFAULT_LIMITS, PARSE_SECONDS, Limits
from agent.domain.manifest import ManifestDoc, ManifestRejected
from agent.domain.schedule import ApplyResult
from agent.runtime.layered_files import LayeredFiles, read_layered, read_untrusted_layered


def parse_manifest(data: str | bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> ManifestDoc:
    """Parse and validate a manifest (YAML or JSON). Raises ManifestRejected."""
    return read_layered(ManifestDoc, ManifestRejected, data, source, limits)


def parse_untrusted_manifest(
    data: str | bytes, source: str, *, budget_s: float = PARSE_SECONDS
) -> ManifestDoc:
    """Read a manifest that came from outside (``read_untrusted_layered``): raises nothing but
    ``ManifestRejected``; any thread may run it."""
    return read_untrusted_layered(ManifestDoc, ManifestRejected, data, source, budget_s)


def read_untrusted_manifest(data: str | bytes, source: str) -> ManifestDoc | ManifestRejected:
    """``parse_untrusted_manifest`` as a value: the document or the verdict against it."""
    try:
        return parse_untrusted_manifest(data, source)
    except ManifestRejected as exc:
        return exc


class ManifestStore(LayeredFiles[ManifestDoc]):
    """The applied manifest layers, one JSON file per layer under ``state_dir/library``."""

    kind = "manifest"
    rejected = ManifestRejected

    def __init__(self, state_dir: Path) -> None:
        super().__init__(Path(state_dir) / "library")

    def load(self, layer: str) -> ManifestDoc | None:
        """The stored manifest of ``layer`` (None if there is none); ManifestRejected when it
        cannot be read."""
        data = self.stored_bytes(layer)
        return None if data is None else parse_untrusted_manifest(data, str(self.path(layer)))

    def load_all(self) -> dict[str, ManifestDoc]:
        """The readable stored layers; a layer that cannot be read is left out (``load`` says
        why), its floor still keeping older versions out."""
        out = {}
        for layer in self.layers:
            try:
                doc = self.load(layer)
            except ManifestRejected:
                continue
            if doc is not None:
                out[layer] = doc
        return out

    def versions(self) -> dict[str, int]:
        """Per layer, the highest version ever applied (the floor, else the stored document's),
        so a damaged stored file does not make the terminal claim an older version."""
        out = {}
        for layer in self.layers:
            floor = self.floor(layer)
            try:
                doc = self.load(layer)
            except ManifestRejected:
                doc = None
            found = [v for v in (floor, doc.version if doc else None) if v is not None]
            if found:
                out[layer] = max(found)
        return out

    def apply(
        self,
        data: bytes | str | ManifestDoc,
        source: str,
        *,
        layer: str | None = None,
        terminal: str | None = None,
        county: str | None = None,
        parsed: ManifestDoc | ManifestRejected | None = None,
    ) -> ApplyResult:
        """Validate and apply a manifest; never raises for a bad document, returns the verdict
        (``applied``, ``stale`` or ``rejected`` with reasons). ``data`` may be a document
        already built; ``parsed`` is what ``parse_untrusted_manifest`` returned or raised when
        the caller read ``data`` on its own thread."""
        if parsed is None:
            parsed = (
                data if isinstance(data, ManifestDoc) else read_untrusted_manifest(data, source)
            )
        return self.apply_parsed(parsed, layer, terminal, county)
