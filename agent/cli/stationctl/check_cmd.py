"""``stationctl check``: the inspection self-test. One line per check, pass or fail; the exit code
is 1 when anything failed.

Checks: the agent runs, the database reads and is intact, a schedule is applied, the content
folder is there and the media of the coming week is present and intact (sha256), disk space,
VLC loads and plays a one-second probe (a WAV made on the spot, dummy outputs: it proves libvlc
and its plugins work, not the screen), the county server (MQTT broker) answers a TCP connect,
the clock, and a display connected. ``warn`` and ``skip`` do not fail the check.

The VLC probe runs in a child process with a deadline, so a libvlc that hangs or crashes fails
the line instead of the whole command.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from agent.adapters.sqlite import read_model
from agent.cli.i18n import _, pad, text_width
from agent.cli.stationctl.common import EXIT_FAIL, EXIT_OK, CtlError, Ctx, add_common

CHECKS = ("agent", "store", "schedule", "content", "disk", "vlc", "broker", "clock", "display")
VLC_TIMEOUT_S = 20.0
BROKER_TIMEOUT_S = 5.0
DISK_MIN_PCT = 10.0
DISK_MIN_BYTES = 500 * 10**6


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help=_("inspection self-test: pass/fail per line"),
        description=_("Inspection self-test; the exit code is 1 if any check failed."),
    )
    add_common(p)
    p.add_argument(
        "--skip",
        metavar="NAMES",
        default="",
        help=_("comma-separated checks to leave out: {names}").format(names=",".join(CHECKS)),
    )
    p.set_defaults(func=run, full_config=True)


def _result(name: str, status: str, message: str, **data: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "message": message, "data": data}


# -- the checks ------------------------------------------------------------------------------------


def check_agent(ctx: Ctx) -> dict[str, Any]:
    from agent.cli.stationctl.presence import presence

    db = ctx.store().db if ctx.has_store() else None
    p = presence(ctx.cfg.socket_path, db, ctx.cfg.state_dir / "clock.lkg")
    if p.running and p.answered and p.reason is None:
        return _result(
            "agent",
            "pass",
            _("The agent is running (since {when}).").format(when=ctx.local(p.since)),
            pid=p.pid,
        )
    if p.running:
        return _result(
            "agent",
            "warn",
            _("The agent is running but could not be asked ({reason}).").format(reason=p.reason),
        )
    return _result("agent", "fail", _("The agent is not running."))


def check_store(ctx: Ctx) -> dict[str, Any]:
    if not ctx.has_store():
        return _result("store", "fail", _("No database yet: the agent has never run."))
    try:
        verdict, n = read_model.check(ctx.store().db)
    except Exception as exc:
        return _result("store", "fail", _("The database cannot be read: {error}").format(error=exc))
    if verdict != "ok":
        return _result("store", "fail", _("The database is damaged: {error}").format(error=verdict))
    return _result("store", "pass", _("The database is intact ({n} viewing records).").format(n=n))


def check_schedule_and_content(ctx: Ctx) -> list[dict[str, Any]]:
    from agent.cli.stationctl.schedule_cmd import MEDIA_OK, sessions_ahead

    content = Path(ctx.cfg.content_dir)
    out = []
    ahead = sessions_ahead(ctx, 7.0, verify=True)
    if ahead["versions"]:
        out.append(
            _result(
                "schedule",
                "pass",
                _("A schedule is applied ({n} sessions in the next 7 days).").format(
                    n=len(ahead["sessions"])
                ),
                versions=ahead["versions"],
            )
        )
    else:
        out.append(_result("schedule", "warn", _("No schedule has been applied yet.")))
    if not content.is_dir() or not os.access(content, os.R_OK | os.X_OK):
        out.append(
            _result(
                "content",
                "fail",
                _("The content folder {folder} is missing or unreadable.").format(folder=content),
            )
        )
        return out
    bad = {}
    for r in ahead["sessions"]:
        if r["media_status"] not in MEDIA_OK:
            bad[r["media"]] = r["media_problem"] or r["media_status"]
    media = {r["media"] for r in ahead["sessions"]}
    if bad:
        out.append(
            _result(
                "content",
                "fail",
                _(
                    "{bad} of {n} media files for the next 7 days are missing or damaged: {files}"
                ).format(bad=len(bad), n=len(media), files=", ".join(sorted(bad))),
                problems=bad,
            )
        )
    else:
        out.append(
            _result(
                "content",
                "pass",
                _(
                    "Content folder {folder}: all {n} media files for the next 7 days are present and intact."
                ).format(folder=content, n=len(media)),
            )
        )
    return out


def check_disk(ctx: Ctx) -> dict[str, Any]:
    from agent.cli.stationctl.status_cmd import disk_info

    d = disk_info([Path(ctx.cfg.content_dir), Path(ctx.cfg.state_dir)])
    if d is None:
        return _result("disk", "fail", _("Disk space cannot be read."))
    text = _("{free:.1f} GB free ({pct:.0f}%) on {path}").format(
        free=d["free_bytes"] / 1e9, pct=d["free_pct"], path=d["path"]
    )
    ok = d["free_pct"] >= DISK_MIN_PCT and d["free_bytes"] >= DISK_MIN_BYTES
    return _result("disk", "pass" if ok else "fail", text, **d)


def vlc_probe(path: str, timeout: float) -> dict[str, Any]:
    """Play ``path`` with dummy outputs; runs in the child process (see check_vlc).

    VLC's own events say when it played and when it reached the end (a dummy audio output may
    play a second of sound in much less than a second, too fast to catch by polling).
    """
    import threading

    t0 = time.monotonic()
    import vlc

    inst = vlc.Instance("--vout=dummy", "--aout=dummy", "--quiet", "--no-video-title-show")
    if inst is None:
        return {"ok": False, "state": "no libvlc instance"}
    loaded = time.monotonic()
    seen: dict[str, float] = {}
    done = threading.Event()

    def on(name: str, final: bool) -> Any:
        def callback(_event: Any) -> None:  # VLC's thread: note the time, nothing else
            seen.setdefault(name, time.monotonic())
            if final:
                done.set()

        return callback

    mp = inst.media_player_new()
    events = mp.event_manager()
    events.event_attach(vlc.EventType.MediaPlayerPlaying, on("playing", False))
    events.event_attach(vlc.EventType.MediaPlayerEndReached, on("ended", True))
    events.event_attach(vlc.EventType.MediaPlayerEncounteredError, on("error", True))
    mp.set_media(inst.media_new_path(path))
    mp.play()
    done.wait(timeout)
    length = mp.get_length()
    mp.stop()
    mp.release()
    inst.release()
    playing, ended = seen.get("playing"), seen.get("ended")
    state = "error" if "error" in seen else ("ended" if ended else "timeout")
    return {
        "ok": state == "ended" and playing is not None,
        "state": state,
        "load_ms": round((loaded - t0) * 1000),
        "to_playing_ms": round((playing - loaded) * 1000) if playing else None,
        "played_ms": round((ended - playing) * 1000) if ended and playing else None,
        "length_ms": length,
    }


def child_env() -> dict[str, str]:
    """The environment for a child Python that must import what this process imports.

    The child sees this process's ``sys.path`` through ``PYTHONPATH``, in the same order, so it
    finds the agent and its libraries however they were put there: a venv, a source tree, or
    the .deb's wrapper that puts /usr/lib/station-agent and its vendor/ first. The empty entry
    (the working folder) is left out: the child must not import from wherever it was started.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def check_vlc(_ctx: Ctx) -> dict[str, Any]:
    import subprocess
    import tempfile

    from agent.testing.media import write_wav

    with tempfile.TemporaryDirectory(prefix="stationctl-check-") as tmp:
        wav = write_wav(Path(tmp) / "probe.wav", 1.0, tone_hz=440)
        code = (
            "import json,sys;from agent.cli.stationctl.check_cmd import vlc_probe;"
            f"print(json.dumps(vlc_probe(sys.argv[1], {VLC_TIMEOUT_S - 5})))"
        )
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code, str(wav)],
                capture_output=True,
                timeout=VLC_TIMEOUT_S,
                env=child_env(),
            )
        except subprocess.TimeoutExpired:
            return _result("vlc", "fail", _("VLC did not finish the 1-second probe in time."))
    try:
        res = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return _result(
            "vlc",
            "fail",
            _("VLC cannot be loaded: {error}").format(error=err[-1] if err else proc.returncode),
        )
    if not res.get("ok"):
        return _result(
            "vlc",
            "fail",
            _("VLC did not play the 1-second probe ({state}).").format(state=res.get("state")),
            **res,
        )
    return _result(
        "vlc",
        "pass",
        _("VLC played the 1-second probe (started in {ms} ms).").format(ms=res["to_playing_ms"]),
        **res,
    )


def broker_target(cfg: Any) -> tuple[str, int] | None:
    """Host and port of the county MQTT broker from the config, where the config has one."""
    for name in ("mqtt", "broker"):
        section = getattr(cfg, name, None)
        if section is None or getattr(section, "enabled", True) is False:
            continue
        host = getattr(section, "host", None)
        port = getattr(section, "port", None)
        url = getattr(section, "url", None)
        if not host and isinstance(url, str) and "://" in url:
            rest = url.split("://", 1)[1].split("/", 1)[0]
            host, _sep, p = rest.rpartition(":") if ":" in rest else (rest, "", "")
            port = int(p) if p.isdigit() else None
            if url.startswith(("mqtts", "ssl")):
                port = port or 8883
        if host:
            port = port or getattr(section, "effective_port", None)
            default = 8883 if getattr(section, "tls", None) else 1883
            return str(host), int(port or default)
    return None


def check_broker(ctx: Ctx) -> dict[str, Any]:
    target = broker_target(ctx.cfg)
    if target is None:
        return _result("broker", "skip", _("No county server is configured."))
    host, port = target
    t0 = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=BROKER_TIMEOUT_S):
            pass
    except OSError as exc:
        return _result(
            "broker",
            "fail",
            _("The county server {host}:{port} cannot be reached: {error}").format(
                host=host, port=port, error=exc.strerror or exc
            ),
        )
    ms = (time.monotonic() - t0) * 1000
    return _result(
        "broker",
        "pass",
        _("The county server {host}:{port} answers ({ms:.0f} ms).").format(
            host=host, port=port, ms=ms
        ),
    )


def check_clock(ctx: Ctx) -> dict[str, Any]:
    from agent.cli.stationctl.status_cmd import clock_info

    c = clock_info(ctx, None)
    now = ctx.local(ctx.now)
    if c["state"] == "implausible":
        return _result(
            "clock", "fail", _("The clock is wrong: it says {now}.").format(now=now), **c
        )
    if c["state"] == "synced":
        return _result(
            "clock", "pass", _("The clock is set from the network ({now}).").format(now=now), **c
        )
    return _result(
        "clock",
        "warn",
        _("The clock is plausible ({now}) but not set from the network.").format(now=now),
        **c,
    )


def check_display(ctx: Ctx) -> dict[str, Any]:
    from agent.monitoring.probes.display import DisplayProbe

    sample = DisplayProbe(ctx.cfg.probes.display).collect(time.monotonic() + 2)
    names = [f"{c.name}={c.status}" for c in sample.connectors]
    if sample.any_connected is None:
        return _result(
            "display",
            "skip",
            _("No display connector can be read on this machine."),
            connectors=names,
        )
    if sample.any_connected:
        return _result("display", "pass", _("A TV or screen is connected."), connectors=names)
    return _result(
        "display",
        "fail",
        _("No TV or screen is connected (check the HDMI cable)."),
        connectors=names,
    )


STATUS_WORDS = {"pass": "pass", "fail": "FAIL", "warn": "warn", "skip": "skip"}


def status_word(status: str) -> str:
    return {"pass": _("pass"), "fail": _("FAIL"), "warn": _("warn"), "skip": _("skip")}[status]


def run(ctx: Ctx) -> int:
    skip = {s.strip() for s in ctx.args.skip.split(",") if s.strip()}
    unknown = skip - set(CHECKS)
    if unknown:
        raise CtlError(_("Unknown check(s): {names}").format(names=", ".join(sorted(unknown))), 2)
    results: list[dict[str, Any]] = []
    steps: list[tuple[str, Any]] = [
        ("agent", check_agent),
        ("store", check_store),
        ("schedule", None),
        ("disk", check_disk),
        ("vlc", check_vlc),
        ("broker", check_broker),
        ("clock", check_clock),
        ("display", check_display),
    ]
    for name, fn in steps:
        if name == "schedule":
            if {"schedule", "content"} <= skip:
                continue
            for r in check_schedule_and_content(ctx):
                if r["name"] not in skip:
                    results.append(r)
            continue
        if name in skip:
            continue
        try:
            results.append(fn(ctx))
        except CtlError as exc:
            results.append(_result(name, "fail", exc.message))
        except Exception as exc:
            results.append(_result(name, "fail", f"{type(exc).__name__}: {exc}"))
    failed = [r for r in results if r["status"] == "fail"]
    if ctx.json:
        ctx.print_json({"ok": not failed, "checks": results})
    else:
        width = max(text_width(status_word(s)) for s in STATUS_WORDS)
        for r in results:
            ctx.print(f"[{pad(status_word(r['status']), width)}] {r['message']}")
        ctx.print()
        if failed:
            ctx.print(_("{n} of {total} checks failed.").format(n=len(failed), total=len(results)))
        else:
            ctx.print(_("All checks passed."))
    return EXIT_FAIL if failed else EXIT_OK
