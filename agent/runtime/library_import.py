"""A USB stick with course manifests and videos, imported through the running agent.

The admin runs ``stationctl library import DIR``; the agent (which owns the content folder)
reads every manifest in DIR off the core thread (its signature checked like one from the county,
``agent.runtime.trust``), applies each like one from the county, then
asks the content service to copy the files it needs from DIR (size and sha256 checked, never a
half file). The stick is only read: nothing on it is moved or changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.domain.manifest import ManifestRejected
from agent.runtime.inbox import SUFFIXES

MAX_MANIFESTS = 20  # documents looked at in one folder
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class ImportError_(Exception):  # noqa: N801 - ImportError is a builtin
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _manifest_files(folder: Path) -> list[Path]:
    """Documents at the top of ``folder`` that look like manifests (by suffix; the content
    decides: a schedule found here is reported, not applied)."""
    found = [p for p in sorted(folder.iterdir()) if p.suffix in SUFFIXES and p.is_file()]
    return found[:MAX_MANIFESTS]


def import_folder(runtime: Any, folder_text: str, call: Callable[[Callable[[], Any]], Any]) -> dict:
    """Read and apply the manifests in ``folder_text``; hand the folder to the content service.

    Runs on the caller's thread (the control socket's); ``call`` runs a function on the core
    thread. Returns what happened to each document.
    """
    folder = Path(folder_text)
    if not folder.is_absolute():
        raise ImportError_("bad_folder", f"{folder_text}: give the folder's full path")
    if not folder.is_dir():
        raise ImportError_("no_folder", f"{folder_text}: no such folder (is the stick mounted?)")
    documents = _manifest_files(folder)
    if not documents:
        raise ImportError_(
            "no_manifest", f"{folder_text}: no course manifest (.json, .yaml) at its top"
        )
    content = getattr(runtime, "content", None)
    if content is not None:
        # Before the manifests take effect: the worker looks at the stick before the mirrors.
        content.add_source(folder)
    results = []
    for path in documents:
        try:
            if path.stat().st_size > MAX_MANIFEST_BYTES:
                raise ManifestRejected(str(path), ["larger than 4 MB"])
            data = path.read_bytes()
            parsed: Any = runtime.library.read(data, str(path))
        except ManifestRejected as exc:
            parsed, data = exc, b""
        except OSError as exc:
            results.append({"file": path.name, "status": "unreadable", "reasons": [str(exc)]})
            continue
        if isinstance(parsed, ManifestRejected):
            results.append(
                {"file": path.name, "status": "rejected", "reasons": parsed.problems[:20]}
            )
            continue
        result = call(lambda d=data, s=str(path), p=parsed: runtime.library.apply(d, s, parsed=p))
        results.append(
            {
                "file": path.name,
                "status": result.status,
                "layer": result.layer,
                "version": result.version,
                "reasons": result.reasons[:20],
            }
        )
    return {"manifests": results, "copying": content is not None}


def library_listing(runtime: Any) -> dict[str, Any]:
    """The on-demand courses as stationctl lists them (core thread)."""
    courses = runtime.library.courses()
    rows = [
        {
            "id": course.id,
            "title": course.title,
            "title_en": course.title_en,
            "category": course.category,
            "on_demand": course.on_demand,
            "files": [{"path": f.path, "size": f.size} for f in course.files],
        }
        for course in sorted(courses.values(), key=lambda c: (c.category or "", c.id))
    ]
    return {"courses": rows, "versions": runtime.library.versions()}
