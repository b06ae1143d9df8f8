"""``stationctl library``: the on-demand courses by category and whether each is ready to play;
``library import DIR`` takes course manifests and videos from a USB stick through the agent.

The list comes from the running agent (``library`` over the control socket) with readiness from
its status; with the agent stopped, from the manifests stored on disk, readiness unknown. An
import needs the agent: it owns the content folder, applies each manifest like one from the
county and copies the matching files itself (size and sha256 checked). This command then follows
those files in the agent's status until each is ready or has failed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from agent.cli.i18n import _, fit, ngettext, table
from agent.cli.stationctl.actions_cmd import ask, unavailable
from agent.cli.stationctl.client import AgentUnavailable, request
from agent.cli.stationctl.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CtlError, Ctx, add_common
from agent.cli.stationctl.content_view import ContentIndex, FileReadiness, agent_status, label

IMPORT_TIMEOUT_S = 120.0  # reading up to 20 manifests off a slow stick, each under a time budget
REJECTED = ("rejected", "unreadable")
SETTLED = ("ready", "failed")
SETTLE_S = 10.0
STICK_BYTES_PER_S = 5e6
MAX_STICK_FILES = 10_000


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "library",
        help=_("the on-demand courses and whether they are ready; import from a USB stick"),
        description=_(
            "Without a sub-command: the courses that can be played on demand, by category, "
            "and whether each one's video is on this station."
        ),
    )
    add_common(p)
    p.set_defaults(func=list_cmd)
    ssub = p.add_subparsers(dest="library_command", metavar="{import}")
    i = ssub.add_parser(
        "import",
        help=_("apply the course manifests on a USB stick and copy their videos"),
        description=_(
            "Apply the course manifests found at the top of DIR and copy the videos they list "
            "from DIR (checked before use; the stick is not changed). Waits until every video "
            "is ready or has failed."
        ),
    )
    add_common(i)
    i.add_argument("dir", help=_("the folder on the USB stick"))
    i.add_argument("--no-wait", action="store_true", help=_("do not wait for the copies"))
    i.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help=_("give up waiting after this many seconds (default 1800)"),
    )
    i.add_argument("--interval", type=float, default=2.0, help=_("seconds between progress checks"))
    i.set_defaults(func=import_cmd)


# -- the list ------------------------------------------------------------------------------------


def course_title(course: Mapping[str, Any], lang: str) -> str:
    """The English title when the admin reads English and the manifest gives one."""
    if lang == "en" and course.get("title_en"):
        return str(course["title_en"])
    return str(course.get("title") or course.get("id"))


def library_rows(
    courses: list[Mapping[str, Any]], status: Mapping[str, Any] | None, lang: str
) -> list[dict[str, Any]]:
    """The on-demand courses with their readiness, sorted by category then id."""
    index = ContentIndex.from_status(status)
    rows = []
    for course in courses:
        if not course.get("on_demand", True):
            continue
        files = [f for f in course.get("files") or [] if isinstance(f, Mapping)]
        rows.append(
            {
                "id": course.get("id"),
                "title": course_title(course, lang),
                "category": course.get("category"),
                "files": [{"path": f.get("path"), "size": f.get("size")} for f in files],
                "readiness": index.course(files).to_dict(),
            }
        )
    rows.sort(key=lambda r: (r["category"] is None, r["category"] or "", str(r["id"])))
    return rows


def render_library(
    rows: list[dict[str, Any]], versions: Mapping[str, int], known: bool
) -> list[str]:
    if not rows:
        return [_("No on-demand courses: no course manifest has been applied on this station.")]
    lines = [
        _("On-demand courses (manifest {versions}):").format(
            versions=", ".join(f"{_layer(k)} v{v}" for k, v in sorted(versions.items())) or "-"
        )
    ]
    cells = [[fit(str(r["id"]), 20), fit(r["title"], 36), r["readiness"]["label"]] for r in rows]
    head, *body = table([_("Course"), _("Title"), _("Video")], cells, indent="    ")
    lines.append(head)
    category: Any = object()
    for r, line in zip(rows, body, strict=True):
        if r["category"] != category:
            category = r["category"]
            lines.append("  " + (category if category is not None else _("Other courses")))
        lines.append(line)
    if not known:
        lines.append("")
        lines.append(
            _(
                "The agent is not running: download progress is unknown; videos found on disk "
                "are shown as ready."
            )
        )
    lines.append("")
    lines.append(_("Play one with: stationctl play COURSE"))
    return lines


def _layer(layer: str) -> str:
    return {"terminal": _("station"), "county": _("county")}.get(layer, layer)


def _stored_library(ctx: Ctx) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The manifests on disk, as the agent would list them (used when it is not running)."""
    from agent.adapters.manifest_files import ManifestStore
    from agent.domain.manifest import merged

    store = ManifestStore(ctx.cfg.state_dir)
    layers = store.load_all()
    courses = [
        {
            "id": c.id,
            "title": c.title,
            "title_en": c.title_en,
            "category": c.category,
            "on_demand": c.on_demand,
            "files": [{"path": f.path, "size": f.size} for f in c.files],
        }
        for c in merged(layers).values()
    ]
    return courses, {layer: doc.version for layer, doc in layers.items()}


def on_disk(content_dir: Any, courses: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A content section from the files found in the content folder with their listed size
    (not hashed): what can be said with the agent stopped."""
    files = []
    for course in courses:
        for f in course.get("files") or []:
            try:
                found = os.stat(os.path.join(content_dir, str(f.get("path")))).st_size
            except (OSError, ValueError):
                found = None
            state = "ready" if found is not None and found == f.get("size") else "unknown"
            files.append({"path": f.get("path"), "status": state, "size": f.get("size")})
    return {"content": {"files": files, "files_total": len(files)}}


def list_cmd(ctx: Ctx) -> int:
    try:
        answer = request(ctx.cfg.socket_path, "library", timeout=10.0)
    except AgentUnavailable as exc:
        if exc.reason == "forbidden":
            raise unavailable(ctx, exc.reason) from None
        answer = None
    if answer is not None and answer.get("ok"):
        data = answer.get("data") or {}
        courses, versions = list(data.get("courses") or []), dict(data.get("versions") or {})
        status = agent_status(ctx.cfg.socket_path)
    else:
        courses, versions = _stored_library(ctx)
        status = None
    known = ContentIndex.from_status(status).known
    if not known:
        status = on_disk(ctx.cfg.content_dir, courses)
    rows = library_rows(courses, status, ctx.lang)
    if ctx.json:
        ctx.print_json({"courses": rows, "versions": versions, "readiness_known": known})
        return EXIT_OK
    for line in render_library(rows, versions, known):
        ctx.print(line)
    return EXIT_OK


# -- import from a folder ------------------------------------------------------------------------


def verdict_lines(manifests: list[Mapping[str, Any]]) -> list[str]:
    words = {
        "applied": _("applied"),
        "stale": _("not applied: not newer than the manifest in force"),
        "rejected": _("rejected"),
        "unreadable": _("cannot be read"),
    }
    lines = []
    for m in manifests:
        version = m.get("version")
        lines.append(
            _("{file}: {layer} manifest version {version}: {status}").format(
                file=m.get("file"),
                layer=_layer(str(m.get("layer") or "-")),
                version="?" if version is None else version,
                status=words.get(str(m.get("status")), str(m.get("status"))),
            )
        )
        lines.extend(f"  {reason}" for reason in m.get("reasons") or [])
    return lines


def imported_paths(
    folder: str, manifests: list[Mapping[str, Any]], courses: list[Mapping[str, Any]]
) -> list[str]:
    """The files of the imported manifests that are in force now: each manifest taken (applied
    or already in force) is read here too, and its courses matched with the agent's library."""
    from agent.adapters.manifest_files import read_untrusted_manifest
    from agent.domain.manifest import ManifestDoc

    in_force = {
        (str(c.get("id")), str(f.get("path")))
        for c in courses
        for f in c.get("files") or []
        if isinstance(f, Mapping)
    }
    paths: list[str] = []
    for m in manifests:
        if m.get("status") in REJECTED:
            continue
        try:
            data = open(os.path.join(folder, str(m.get("file"))), "rb").read()  # noqa: SIM115
        except OSError:
            continue
        doc = read_untrusted_manifest(data, str(m.get("file")))
        if not isinstance(doc, ManifestDoc):
            continue
        for course in doc.courses:
            for f in course.files:
                if (course.id, f.path) in in_force and f.path not in paths:
                    paths.append(f.path)
    return paths


def progress_line(states: Mapping[str, FileReadiness]) -> str:
    counts = {s: sum(1 for r in states.values() if r.state == s) for s in ("ready", "failed")}
    done = sum(r.done for r in states.values())
    size = sum(r.size or 0 for r in states.values())
    pct = int(100 * done / size) if size else 100
    return _("{ready} of {n} ready, {failed} failed, {pct}% of the bytes").format(
        ready=counts["ready"], n=len(states), failed=counts["failed"], pct=pct
    )


def copy_allowance(folder: str, sizes: set[int]) -> float:
    """Seconds to let the agent copy what the stick holds before a failure counts as final.

    A file on the stick may show as failed for a while (a download attempt that came before
    the copy, or the copy under way), so failures settle only after the time to read the
    candidate files at a slow stick's pace (``STICK_BYTES_PER_S``), and at least ``SETTLE_S``.
    """
    total, seen = 0, 0
    for base, _dirs, names in os.walk(folder):
        for name in names:
            seen += 1
            if seen > MAX_STICK_FILES:
                break
            try:
                size = os.stat(os.path.join(base, name)).st_size
            except OSError:
                continue
            if size in sizes:
                total += size
    return SETTLE_S + total / STICK_BYTES_PER_S


def follow(ctx: Ctx, paths: list[str], settle_s: float) -> dict[str, FileReadiness]:
    """Poll the agent's status until every path is ready or (after ``settle_s``) failed, or the
    time is up."""
    start = time.monotonic()
    deadline = start + ctx.args.timeout
    said: dict[str, str] = {}
    last_line = ""
    while True:
        try:
            answer = request(ctx.cfg.socket_path, "status", timeout=10.0)
        except AgentUnavailable as exc:
            raise unavailable(ctx, exc.reason) from None
        index = ContentIndex.from_status(answer.get("data") if answer.get("ok") else None)
        states = {p: index.file(p) for p in paths}
        now = time.monotonic()
        final = {"ready"} if now - start < settle_s else set(SETTLED)
        if not ctx.json:
            for path, r in states.items():
                if r.state in final and said.get(path) != r.state:
                    ctx.print("  " + _("{path}: {state}").format(path=path, state=label(r)))
                    said[path] = r.state
            line = progress_line(states)
            if line != last_line:
                ctx.print(line)
                last_line = line
        if all(r.state in final for r in states.values()) or now >= deadline:
            return states
        time.sleep(max(0.05, ctx.args.interval))


def import_refusal(answer: Mapping[str, Any], folder: str) -> str:
    code = answer.get("error")
    if code == "no_folder":
        return _("There is no folder {folder} (is the USB stick plugged in and mounted?)").format(
            folder=folder
        )
    if code == "no_manifest":
        return _(
            "No course manifest (.json or .yaml file) at the top of {folder}; nothing was imported."
        ).format(folder=folder)
    return _("Nothing was imported from {folder}: {detail}").format(
        folder=folder, detail=answer.get("message") or code
    )


def import_cmd(ctx: Ctx) -> int:
    args = ctx.args
    if args.timeout < 0 or args.interval <= 0:
        raise CtlError(_("--timeout and --interval must be positive"), EXIT_USAGE)
    folder = os.path.abspath(args.dir)
    answer = ask(ctx, "library_import", dir=folder)
    if not answer.get("ok"):
        raise CtlError(import_refusal(answer, folder), EXIT_FAIL)
    data = answer.get("data") or {}
    manifests = [m for m in data.get("manifests") or [] if isinstance(m, Mapping)]
    rejected = any(m.get("status") in REJECTED for m in manifests)
    if not ctx.json:
        for line in verdict_lines(manifests):
            ctx.print(line)
    library = ask(ctx, "library").get("data") or {}
    paths = imported_paths(folder, manifests, list(library.get("courses") or []))
    states: dict[str, FileReadiness] = {}
    if paths and not args.no_wait:
        if not ctx.json:
            ctx.print(
                ngettext(
                    "Waiting for {n} video to be copied or downloaded:",
                    "Waiting for {n} videos to be copied or downloaded:",
                    len(paths),
                ).format(n=len(paths))
            )
        sizes = {
            int(f.get("size") or 0)
            for c in library.get("courses") or []
            for f in c.get("files") or []
            if f.get("path") in paths
        }
        states = follow(ctx, paths, copy_allowance(folder, sizes))
    failed = [p for p, r in states.items() if r.state == "failed"]
    pending = [p for p, r in states.items() if r.state not in SETTLED]
    ok = not rejected and not failed and not pending
    if ctx.json:
        ctx.print_json(
            {
                "folder": folder,
                "manifests": manifests,
                "files": {p: r.to_dict() for p, r in states.items()} or {p: None for p in paths},
                "waited": bool(paths) and not args.no_wait,
                "ok": ok,
            }
        )
    elif pending:
        ctx.print(
            _("Gave up waiting after {s} s; the agent goes on in the background.").format(
                s=f"{args.timeout:g}"
            )
        )
    elif states and ok:
        ctx.print(_("All videos are ready."))
    return EXIT_OK if ok else EXIT_FAIL
