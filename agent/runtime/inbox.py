"""The schedule inbox: documents a satellite datacast or a technician leaves in a folder.

Schedules, course manifests and trust updates share the folder. A signed document says its kind
in its envelope; of unsigned ones, a document whose top level has ``courses`` (and no ``items``)
is a manifest, anything else is read as a schedule. Signatures are checked first, on the
worker, by the trust gate the schedules hand in (``trust``).

The core thread only lists the folder (a few ``stat`` calls). Reading and parsing a document
from outside happens on the inbox's own worker thread, within the parser's limits, so a hostile
file can never stall the core; the verdict comes back to the core thread to be applied. Each file
then ends in ``applied/``, ``stale/`` or ``rejected/``, with its reasons written beside it
*before* it is moved: a failure (a full disk) leaves the document in the inbox to be taken again.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.adapters.manifest_files import parse_untrusted_manifest
from agent.adapters.schedule_files import read_untrusted
from agent.domain.document import DEFAULT_LIMITS
from agent.domain.manifest import ManifestDoc, ManifestRejected, is_manifest
from agent.domain.schedule import ScheduleDoc, ScheduleRejected
from agent.domain.trust import looks_signed, peek
from agent.runtime.documents import parse_document
from agent.runtime.files import atomic_write
from agent.runtime.trust import ENVELOPE_LIMIT, TrustGate, TrustUpdate

log = logging.getLogger("agent.runtime.inbox")

SUFFIXES = (".yaml", ".yml", ".json")
SETTLE_S = 2.0  # a file younger than this may still be being written by the datacast

Parsed = ScheduleDoc | ScheduleRejected | ManifestDoc | ManifestRejected | TrustUpdate
Apply = Callable[[bytes, str, Parsed], Any]  # (data, source, parsed) -> ApplyResult, core thread
Report = Callable[[str, BaseException | None], None]  # (file name, failure or None), core thread


class ScheduleInbox:
    """Finds settled documents (core thread), parses them (worker), files them (core thread)."""

    def __init__(
        self,
        folder: Path,
        timezone: str | None,
        call_soon: Callable[[Callable[[], None]], None],
    ) -> None:
        self.folder = folder
        self.timezone = timezone
        self._call_soon = call_soon
        self._in_flight: set[str] = set()
        self._jobs: queue.SimpleQueue[tuple[Path, Apply, Report]]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.trust: TrustGate | None = None  # set by the runtime's schedules

    def poll(self, apply: Apply, report: Report) -> None:
        """List the folder and hand each settled, not yet taken document to the worker."""
        for path in sorted(self.folder.iterdir()):
            if path.name in self._in_flight or path.name.startswith("."):
                continue
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            try:
                if time.time() - path.stat().st_mtime < SETTLE_S:
                    continue
            except OSError:
                continue
            self._in_flight.add(path.name)
            self._ensure_worker()
            self._jobs.put((path, apply, report))

    def _ensure_worker(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="schedule-inbox", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            path, apply, report = self._jobs.get()
            try:
                data = path.read_bytes()
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc)
                self._call_soon(lambda name=path.name: self._in_flight.discard(name))
                continue
            parsed = read_any(data, str(path), self.timezone, self.trust)
            self._call_soon(
                lambda p=path, d=data, r=parsed, a=apply, f=report: self._finish(p, d, r, a, f)
            )

    def _finish(
        self,
        path: Path,
        data: bytes,
        parsed: Parsed,
        apply: Apply,
        report: Report,
    ) -> None:
        """Core thread: apply the parsed document, then file it with its reasons."""
        try:
            result = apply(data, str(path), parsed)
            file_document(path, result.status, result.reasons)
        except Exception as exc:
            report(path.name, exc)
        else:
            report(path.name, None)
        finally:
            self._in_flight.discard(path.name)


def read_any(
    data: bytes, source: str, timezone: str | None, trust: TrustGate | None = None
) -> Parsed:
    """A schedule, a course manifest or a trust update, its signature checked by ``trust``;
    never raises (what cannot be read is a rejection that says why)."""
    try:
        signed = peek(data, ENVELOPE_LIMIT)
        kind = signed.get("kind") if looks_signed(signed) else None
    except Exception:
        kind = None
    if trust is not None and kind == "trust":
        return trust.read_trust(data)
    if kind is None:
        try:
            plain = parse_document(data, source, DEFAULT_LIMITS).plain()
            kind = "manifest" if is_manifest(plain) else "schedule"
        except Exception:
            kind = "schedule"
    if kind == "manifest":
        if trust is not None:
            return trust.read_manifest(data, source)
        try:
            return parse_untrusted_manifest(data, source)
        except ManifestRejected as exc:
            return exc
    if trust is not None:
        return trust.read_schedule(data, source, timezone=timezone)
    return read_untrusted(data, source, timezone=timezone)


def file_document(path: Path, status: str, reasons: list[str]) -> None:
    """Move a document into ``applied/``, ``stale/`` or ``rejected/``, reasons written first."""
    target = path.parent / status
    target.mkdir(exist_ok=True)
    dest = target / path.name
    if reasons:
        atomic_write(
            dest.with_name(dest.name + ".reason.txt"), ("\n".join(reasons) + "\n").encode()
        )
    shutil.move(str(path), str(dest))
