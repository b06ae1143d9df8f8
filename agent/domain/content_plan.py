"""What the terminal must have on disk, when it may fetch it, what may go to make room, and how
ready it is: the content pipeline's decisions, apart from its I/O.

Pure: times are POSIX seconds handed in, the time zone is handed in, and nothing here reads a
clock or a file, so the runtime calls it on any thread and tests pin every instant. Download
windows are local wall-clock times; they are worked out through ``zoneinfo`` for each instant, so
a daylight-saving change (where a zone has one) neither skips nor doubles a window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from agent.domain.manifest import LibraryCourse, ManifestFile
from agent.domain.schedule import is_url

# (start, media, sha256, size, course id, title): one planned occurrence of a course
Occurrence = tuple[float, str, str | None, int | None, str, str]

WINDOW_RE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


@dataclass(frozen=True)
class Want:
    """One file the terminal needs. ``slot``: the start of the first occurrence within the
    horizon that plays it; None when only the library (on-demand viewing) wants it."""

    path: str
    size: int | None
    sha256: str | None
    sources: tuple[str, ...]
    slot: float | None
    course_ids: tuple[str, ...]
    titles: tuple[str, ...]


class _Acc:
    """A Want being gathered (course ids and titles in the order first seen, one per id)."""

    def __init__(
        self, path: str, size: int | None, sha: str | None, sources: Sequence[str]
    ) -> None:
        self.path, self.size, self.sha256, self.sources = path, size, sha, tuple(sources)
        self.slot: float | None = None
        self.ids: dict[str, str] = {}

    def add(self, course_id: str, title: str) -> None:
        self.ids.setdefault(course_id, title)

    def want(self) -> Want:
        ids = tuple(self.ids)
        titles = tuple(self.ids.values())
        return Want(self.path, self.size, self.sha256, self.sources, self.slot, ids, titles)


def _library_files(library: Mapping[str, LibraryCourse]) -> dict[str, ManifestFile]:
    """Each path once, the first course by id giving its size, sha256 and sources."""
    out: dict[str, ManifestFile] = {}
    for cid in sorted(library):
        for f in library[cid].files:
            out.setdefault(f.path, f)
    return out


def wanted(occurrences: Iterable[Occurrence], library: Mapping[str, LibraryCourse]) -> list[Want]:
    """The files to have, soonest slot first, then the on-demand library by (course id, path).

    A URL is streamed at its slot, never stored. For a scheduled path the manifest is the
    authority on size, sha256 and sources (a schedule that disagrees is reported by
    ``conflicts``); without a manifest entry the schedule's own size and sha256 are kept, so a
    file can still come from a USB stick or the satellite, though no mirror is known.
    """
    files = _library_files(library)
    accs: dict[str, _Acc] = {}
    for start, media, sha, size, course_id, title in sorted(occurrences, key=lambda o: o[:2]):
        if is_url(media):
            continue
        acc = accs.get(media)
        if acc is None:
            f = files.get(media)
            acc = _Acc(media, f.size, f.sha256, f.sources) if f else _Acc(media, size, sha, ())
            acc.slot = start
            accs[media] = acc
        acc.add(course_id, title)
    for cid in sorted(library):
        course = library[cid]
        for f in sorted(course.files, key=lambda x: x.path):
            acc = accs.get(f.path)
            if acc is None:
                if not course.on_demand:
                    continue
                acc = accs[f.path] = _Acc(f.path, f.size, f.sha256, f.sources)
            acc.add(course.id, course.title)
    return [acc.want() for acc in accs.values()]


def conflicts(occurrences: Iterable[Occurrence], library: Mapping[str, LibraryCourse]) -> list[str]:
    """Where the schedule and the manifest (or two library courses) disagree about one file."""
    out: list[str] = []
    files = _library_files(library)
    first: dict[str, tuple[str, str | None, int | None]] = {}
    for _, media, sha, size, course_id, _title in sorted(occurrences, key=lambda o: o[:2]):
        if is_url(media):
            continue
        f = files.get(media)
        if f is not None:
            if sha is not None and sha != f.sha256:
                out.append(f"course {course_id!r}: {media!r} has another sha256 in the manifest")
            if size is not None and size != f.size:
                out.append(
                    f"course {course_id!r}: {media!r} is {size} bytes in the schedule, "
                    f"{f.size} in the manifest"
                )
            continue
        held = first.setdefault(media, (course_id, sha, size))
        other, osha, osize = held
        if (sha is not None and osha is not None and sha != osha) or (
            size is not None and osize is not None and size != osize
        ):
            out.append(f"courses {other!r} and {course_id!r} give {media!r} different contents")
    for cid in sorted(library):
        for f in library[cid].files:
            g = files[f.path]
            if (g.size, g.sha256) != (f.size, f.sha256):
                out.append(f"course {cid!r}: {f.path!r} differs from another library course's")
    return list(dict.fromkeys(out))


# -- download windows ---------------------------------------------------------------------------


def _window_problem(text: object) -> tuple[str | None, tuple[int, int]]:
    m = WINDOW_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        return "must look like 00:30-06:00 (HH:MM-HH:MM, local time)", (0, 0)
    sh, sm, eh, em = (int(g) for g in m.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
        return "hours are 00-23 (24:00 only as an end), minutes 00-59", (0, 0)
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        return "is empty or ambiguous (start = end); use 00:00-24:00 for always", (0, 0)
    return None, (start, end)


def parse_window(text: str) -> tuple[int, int]:
    """``"HH:MM-HH:MM"`` as minutes from local midnight. The end may be before the start (the
    window crosses midnight); ``"00:00-24:00"`` is always. ValueError says what is wrong."""
    problem, span = _window_problem(text)
    if problem:
        raise ValueError(f"download window {text!r} {problem}")
    return span


def check_window(text: str) -> str | None:
    """The problem with a configured window (the caller names the window), or None."""
    return _window_problem(text)[0]


def _seconds_of_day(now: float, tz: dt.tzinfo) -> float:
    local = dt.datetime.fromtimestamp(now, tz)
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


def _inside(now: float, tz: dt.tzinfo, spans: Sequence[tuple[int, int]]) -> bool:
    sod = _seconds_of_day(now, tz)
    for start, end in spans:
        s, e = start * 60, end * 60
        if (s <= sod < e) if s < e else (sod >= s or sod < e):
            return True
    return False


def in_window(now: float, tz: dt.tzinfo, windows: Sequence[str]) -> bool:
    """Whether ``now`` lies in one of ``windows`` (no windows: always)."""
    return not windows or _inside(now, tz, [parse_window(w) for w in windows])


def fetch_allowed(
    want: Want, now: float, tz: dt.tzinfo, windows: Sequence[str], urgent_s: float
) -> bool:
    """Inside a window, or outside one for a file whose slot is less than ``urgent_s`` away (a
    slot already begun is the most urgent of all)."""
    if in_window(now, tz, windows):
        return True
    return want.slot is not None and want.slot - now < urgent_s


def _offset(t: float, tz: dt.tzinfo) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(t, tz).utcoffset()


def _transitions(start: float, end: float, tz: dt.tzinfo) -> list[float]:
    """The instants in [start, end] where the zone's UTC offset changes, to the second."""
    out = []
    step = 1800.0
    t = start
    while t < end:
        u = min(t + step, end)
        if _offset(t, tz) != _offset(u, tz):
            lo, hi = t, u  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(mid, tz) == _offset(lo, tz):
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t = u
    return out


def next_window_start(now: float, tz: dt.tzinfo, windows: Sequence[str]) -> float | None:
    """When fetching may next begin: ``now`` when inside a window, else the instant the next
    window opens; None when there are no windows (nothing ever waits for one).

    A window opens where the local wall clock reaches its start, or where a daylight-saving
    change makes the wall clock jump into it (a start in the skipped hour opens at the jump).
    """
    if not windows:
        return None
    spans = [parse_window(w) for w in windows]
    if _inside(now, tz, spans):
        return now
    today = dt.datetime.fromtimestamp(now, tz).date()
    horizon = now + 3 * 86400
    candidates = _transitions(now, horizon, tz)
    for days in range(-1, 4):
        day = today + dt.timedelta(days=days)
        for start, _ in spans:
            naive = dt.datetime.combine(day, dt.time(start // 60, start % 60))
            for fold in (0, 1):
                candidates.append(naive.replace(tzinfo=tz, fold=fold).timestamp())
    due = sorted(c for c in candidates if now < c <= horizon and _inside(c, tz, spans))
    return due[0] if due else None


# -- disk budget --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnDisk:
    path: str
    size: int
    last_played: float | None
    mtime: float


def choose_evictions(
    on_disk: Sequence[OnDisk], keep: Collection[str], need_bytes: int
) -> list[str] | None:
    """The files to delete to free ``need_bytes``: never one in ``keep``, the least recently
    played first (a never-played file counts as played when it landed). None when even every
    evictable file together is not enough, so the caller deletes nothing in vain."""
    if need_bytes <= 0:
        return []
    keep = set(keep)
    order = sorted(
        (f for f in on_disk if f.path not in keep),
        key=lambda f: (f.last_played if f.last_played is not None else f.mtime, f.path),
    )
    out: list[str] = []
    freed = 0
    for f in order:
        if freed >= need_bytes:
            break
        out.append(f.path)
        freed += f.size
    return out if freed >= need_bytes else None


def bytes_to_free(incoming: int, used: int, max_bytes: int | None, free: int, min_free: int) -> int:
    """How many bytes must go so that ``incoming`` more fits under ``max_bytes`` (the content
    folder's total, None = no cap) and still leaves ``min_free`` on the filesystem; <= 0 fits.
    Deleting a content file frees the same bytes on both counts (one filesystem)."""
    over_fs = incoming + min_free - free
    if max_bytes is None:
        return over_fs
    return max(used + incoming - max_bytes, over_fs)


# -- readiness ----------------------------------------------------------------------------------

Status = Literal["ready", "fetching", "waiting", "failed", "missing"]


@dataclass(frozen=True)
class FileState:
    status: Status
    done: int = 0  # bytes already on disk (a partial download)
    reason: str | None = None


@dataclass(frozen=True)
class Readiness:
    """``waiting`` counts files waiting for a window and files not begun yet (``missing``)."""

    needed: int
    ready: int
    fetching: int
    failed: int
    waiting: int
    bytes_left: int
    soonest_missing: float | None
    missing_soon: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["missing_soon"] = list(self.missing_soon)
        return data


MISSING = FileState("missing")


def readiness(
    wants: Sequence[Want], state: Mapping[str, FileState], now: float, alarm_s: float
) -> Readiness:
    """How ready the terminal is; ``missing_soon``: the paths whose slot is less than
    ``alarm_s`` away (or already begun) with no verified file, soonest first."""
    counts = {"ready": 0, "fetching": 0, "failed": 0}
    left = 0
    soon: list[tuple[float, str]] = []
    soonest: float | None = None
    for w in wants:
        st = state.get(w.path, MISSING)
        if st.status in counts:
            counts[st.status] += 1
        if st.status == "ready":
            continue
        if w.size is not None:
            left += max(0, w.size - st.done)
        if w.slot is not None:
            soonest = w.slot if soonest is None else min(soonest, w.slot)
            if w.slot - now < alarm_s:
                soon.append((w.slot, w.path))
    waiting = len(wants) - sum(counts.values())
    return Readiness(
        needed=len(wants),
        ready=counts["ready"],
        fetching=counts["fetching"],
        failed=counts["failed"],
        waiting=waiting,
        bytes_left=left,
        soonest_missing=soonest,
        missing_soon=tuple(p for _, p in sorted(soon)),
    )
