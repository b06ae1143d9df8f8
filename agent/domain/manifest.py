"""Course manifests: which course files exist, how large, their sha256 and where to fetch them.

A manifest is versioned in layers (``county`` and ``terminal``) exactly like a schedule and is
just as strict: one problem rejects the whole document, every problem is listed with its path and
line, and the previous manifest stays in force. Schedules keep naming a course by its media path;
the manifest tells the terminal how to get that file and how to know it is the right one, and
lists further courses for on-demand viewing.

A file path is confined to the content folder like schedule media but is never a URL (a URL is
streamed, not stored), and no part of it starts with "." (the fetcher keeps its partial files in
``.partial``, and a hidden name is nobody's course).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.domain.schedule import (
    MAX_FILE_BYTES,
    MAX_VERSION,
    DocumentRejected,
    check_media,
    check_sha,
    check_title,
    is_url,
)
from agent.domain.schema import between, check_id

MAX_COURSES = 2000
MAX_FILES = 50  # per course
MAX_SOURCES = 8  # mirrors per file
MAX_URL = 2048


def check_file_path(value: str) -> str | None:
    """A canonical relative path inside the content folder: one name for one file."""
    if is_url(value) or "://" in value:
        return "must be a path relative to the content folder, not a URL"
    problem = check_media(value)
    if problem:
        return problem
    parts = value.split("/")
    if any(part == "" for part in parts):
        return "must not have empty parts ('//', or a leading or trailing '/')"
    if any(part.startswith(".") for part in parts):
        return "no part of the path may start with '.' (hidden names are not course files)"
    return None


def check_url(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return "is not an http:// or https:// URL"
    if len(value) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must not contain spaces or control characters"
    if not urlsplit(value).netloc:
        return "names no host"
    return None


def check_sources(value: list[str]) -> str | None:
    """Ordered mirrors: the first is tried first (the county server), the rest in turn."""
    if not 1 <= len(value) <= MAX_SOURCES:
        return f"must list 1 to {MAX_SOURCES} http(s) URLs, has {len(value)}"
    problems = []
    for i, url in enumerate(value):
        problem = check_url(url)
        if problem:
            problems.append(f"entry {i} {url[:80]!r} {problem}")
        elif url in value[:i]:
            problems.append(f"entry {i} repeats {url[:80]!r}")
    return "; ".join(problems) or None


def check_category(value: str) -> str | None:
    return None if 0 < len(value.strip()) <= 64 else "must be 1-64 characters"


@dataclass
class ManifestFile:
    path: str = field(metadata={"check": check_file_path})
    size: int = field(metadata={"check": between(1, MAX_FILE_BYTES)})
    sha256: str = field(metadata={"check": check_sha})
    sources: list[str] = field(metadata={"check": check_sources})


@dataclass
class LibraryCourse:
    id: str = field(metadata={"check": check_id})
    title: str = field(metadata={"check": check_title})
    files: list[ManifestFile]
    category: str | None = field(default=None, metadata={"check": check_category})
    title_en: str | None = field(default=None, metadata={"check": check_title})
    on_demand: bool = True

    def _validate(self) -> list[tuple[str, str]]:
        if not 1 <= len(self.files) <= MAX_FILES:
            return [("files", f"must list 1 to {MAX_FILES} files, has {len(self.files)}")]
        problems = []
        seen: set[str] = set()
        for i, f in enumerate(self.files):
            if f.path in seen:
                problems.append((f"files[{i}].path", f"lists {f.path!r} twice"))
            seen.add(f.path)
        return problems


@dataclass
class ManifestDoc:
    version: int = field(metadata={"check": between(1, MAX_VERSION)})
    courses: list[LibraryCourse]
    layer: Literal["terminal", "county"] | None = None
    county: str | None = None
    terminal: str | None = None
    description: str | None = None

    def _validate(self) -> list[tuple[str, str]]:
        if len(self.courses) > MAX_COURSES:
            return [("courses", f"has {len(self.courses)} courses, the limit is {MAX_COURSES}")]
        problems = []
        ids: set[str] = set()
        first: dict[str, tuple[str, ManifestFile]] = {}
        for i, course in enumerate(self.courses):
            if course.id in ids:
                problems.append((f"courses[{i}].id", f"duplicate course id {course.id!r}"))
            ids.add(course.id)
            for j, f in enumerate(course.files):
                held = first.setdefault(f.path, (course.id, f))
                other, g = held
                if g is not f and (g.size, g.sha256) != (f.size, f.sha256):
                    problems.append(
                        (
                            f"courses[{i}].files[{j}]",
                            f"{f.path!r} has another size or sha256 in course {other!r}",
                        )
                    )
        return problems

    def files(self) -> dict[str, ManifestFile]:
        """Every file of the manifest by path (one path is one file: validation sees to it)."""
        out: dict[str, ManifestFile] = {}
        for course in self.courses:
            for f in course.files:
                out.setdefault(f.path, f)
        return out

    def course(self, course_id: str) -> LibraryCourse | None:
        for course in self.courses:
            if course.id == course_id:
                return course
        return None

    def to_json(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items() if x is not None}
            if isinstance(v, list):
                return [conv(x) for x in v]
            return v

        return conv(asdict(self))


class ManifestRejected(DocumentRejected):
    """The manifest cannot be applied; the same shape as ``ScheduleRejected``."""

    kind = "manifest"


def is_manifest(node_plain: object) -> bool:
    """Whether a document read from an inbox folder is a manifest (else it is a schedule)."""
    return isinstance(node_plain, dict) and "courses" in node_plain and "items" not in node_plain


def merged(layers: dict[str, ManifestDoc]) -> dict[str, LibraryCourse]:
    """The library: course id -> course, a terminal-layer course replacing the county's."""
    out: dict[str, LibraryCourse] = {}
    for layer in ("county", "terminal"):
        doc = layers.get(layer)
        if doc is not None:
            out.update((course.id, course) for course in doc.courses)
    return out
