"""Where course files come from besides the line: the satellite folder and imported USB sticks.

The satellite receiver's folder (``content.intake_dir``) gives its files up: they are moved into
the content folder once complete and matching. A folder handed over by ``stationctl library
import`` is only read: its files are copied, the stick is left as it is, and the folder is
forgotten once it is gone (unplugged).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from agent.adapters.content_files import ContentFolder, take_from_folder
from agent.domain.content_plan import Want

log = logging.getLogger("agent.content")


class Intake:
    def __init__(self, satellite: Path | None, folder: ContentFolder) -> None:
        self.satellite = satellite
        self.folder = folder
        self._lock = threading.Lock()
        self._sticks: list[Path] = []

    def add_stick(self, folder: Path) -> None:
        with self._lock:
            if folder not in self._sticks:
                self._sticks.append(folder)

    @property
    def importing(self) -> bool:
        """A stick is being imported: someone is waiting for it, so look again soon."""
        with self._lock:
            return bool(self._sticks)

    def folders(self) -> list[tuple[Path, bool]]:
        """(folder, move) for the satellite folder first, then the sticks still plugged in."""
        with self._lock:
            self._sticks = [p for p in self._sticks if p.is_dir()]
            found = [(p, False) for p in self._sticks]
        if self.satellite is not None:
            found.insert(0, (self.satellite, True))
        return found

    def take(self, missing: Iterable[Want], folder: Path, move: bool) -> tuple[str, list[str]]:
        """The files of ``missing`` found complete and matching in ``folder``, now in the content
        folder; returns (where from, the paths taken)."""
        triples = [(w.path, w.size, w.sha256) for w in missing if w.size is not None and w.sha256]
        how = "satellite folder" if move else str(folder)
        if not triples or not folder.is_dir():
            return how, []
        try:
            return how, take_from_folder(folder, triples, self.folder, move=move)
        except OSError as exc:
            log.warning("content: taking files from %s failed: %s", how, exc)
            return how, []
