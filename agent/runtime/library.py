"""Course manifests on the core thread: applied, kept on disk, handed to the core and the fetcher.

A manifest is a layered, versioned document like a schedule (``agent.domain.manifest``); it
arrives over MQTT, in the inbox folder or from a USB stick, is read off the core thread, and is
applied here: checked against the layer's version floor, stored, then handed on. The core hears
of the on-demand courses (a play request may name one); the content service hears that what it
must fetch has changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent.adapters.manifest_files import ManifestStore
from agent.domain import core as c
from agent.domain.manifest import LibraryCourse, ManifestDoc, ManifestRejected, merged
from agent.domain.schedule import LAYERS, ApplyResult, Course
from agent.runtime.executor import Executor
from agent.runtime.host import Host
from agent.runtime.layered_files import verdict_entry
from agent.runtime.trust import TrustGate

log = logging.getLogger("agent")


def playable(course: LibraryCourse) -> Course:
    """The course as a play request opens it: its first file is the video."""
    first = course.files[0]
    return Course(
        id=course.id, title=course.title, media=first.path, sha256=first.sha256, size=first.size
    )


class Library:
    """The applied manifest layers, and who is told when they change."""

    def __init__(self, host: Host, executor: Executor) -> None:
        self.host = host
        self.executor = executor
        self.files = ManifestStore(host.cfg.state_dir)
        self.layers: dict[str, ManifestDoc] = {}
        self.on_change: list[Callable[[], None]] = []
        self.trust = TrustGate.for_config(host.cfg)

    def load(self) -> None:
        """Read the stored layers (at start). A layer that cannot be read is logged and left
        out; its version floor still keeps older versions from being applied."""
        layers: dict[str, ManifestDoc] = {}
        for layer in LAYERS:
            try:
                doc = self.files.load(layer)
            except ManifestRejected as exc:
                log.error(
                    "stored %s manifest is unreadable: %s", layer, "; ".join(exc.problems[:3])
                )
                continue
            if doc is not None:
                layers[layer] = doc
        self.layers = layers
        self._changed()

    def read(
        self, data: bytes, source: str, layer: str | None = None
    ) -> ManifestDoc | ManifestRejected:
        """Read a manifest from outside (any thread), its signature checked first: the
        document, or why it cannot be used."""
        return self.trust.read_manifest(data, source, layer=layer)

    def versions(self) -> dict[str, int]:
        return {layer: doc.version for layer, doc in self.layers.items()}

    def courses(self) -> dict[str, LibraryCourse]:
        """Course id -> course, the terminal's layer winning over the county's."""
        return merged(self.layers)

    def apply(self, data: bytes, source: str, layer: str | None = None, parsed: Any = None) -> Any:
        """Validate, store and hand on a manifest document; returns the ``ApplyResult``.

        ``parsed`` is what ``parse_untrusted_manifest`` made of ``data`` on the caller's thread
        (a ``ManifestDoc`` or a ``ManifestRejected``).
        """
        cfg = self.host.cfg
        if parsed is None:
            parsed = self.read(data, source, layer)
        result: ApplyResult = self.files.apply(
            data,
            source,
            layer=layer,
            county=cfg.county,
            terminal=cfg.terminal,
            parsed=parsed,
        )
        self.executor.log(verdict_entry("Course manifest", "manifest", result, source))
        if result.status == "applied" and result.doc is not None:
            self.layers[result.layer] = result.doc
            self._changed()
        return result

    def _changed(self) -> None:
        core = self.host.core
        if core is not None:
            courses = {cid: playable(course) for cid, course in self.courses().items()}
            self.executor.execute(core.handle(c.LibraryChanged(courses)))
        for fn in self.on_change:
            fn()
