"""``stationctl``: the station admin's tool, in Chinese and English. Works with no network.

Reads (status, logs, records, schedule) come straight from the agent's SQLite store, opened
read-only (WAL lets us read while the agent writes, and a reader never blocks the writer); they
work with the agent stopped. Actions (play, stop, attendance) go over the agent's control socket
(agent/control.py) and change nothing when the agent is not running. ``check`` is the inspection
self-test. Every command takes ``--json``; ``--lang`` overrides LANG. See docs/stationctl.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from agent.cli.i18n import N_, _, install
from agent.cli.stationctl.common import (
    EXIT_FORBIDDEN,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    Ctx,
    add_common,
)

# The agent's default (agent.runtime.config.DEFAULT_CONFIG_PATH), spelled out to keep startup light.
DEFAULT_CONFIG_PATH = "/etc/station-agent/agent.yaml"

COMMANDS = (
    "status",
    "logs",
    "records",
    "schedule",
    "library",
    "play",
    "stop",
    "attendance",
    "check",
)


def build_parser() -> argparse.ArgumentParser:
    from agent.cli.stationctl import (
        actions_cmd,
        check_cmd,
        library_cmd,
        logs_cmd,
        records_cmd,
        schedule_cmd,
        status_cmd,
    )

    ap = argparse.ArgumentParser(
        prog="stationctl",
        description=_(
            "Station admin tool: is the station all right, what was shown, what is next."
        ),
    )
    add_common(ap)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    status_cmd.add_parser(sub)
    logs_cmd.add_parser(sub)
    records_cmd.add_parser(sub)
    schedule_cmd.add_parser(sub)
    library_cmd.add_parser(sub)
    actions_cmd.add_parsers(sub)
    check_cmd.add_parser(sub)
    return ap


# argparse's own words (usage, errors), translated in our catalog; argparse looks each one up
# through its module-level ``_`` when it prints, so pointing that at ours localizes them.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("expected one argument"),
)


def _requested_language(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def _config(path: str, *, full: bool) -> object | None:
    """The agent's config: the quick reader (lightcfg) unless the command wants it all checked
    or the quick reader is unsure; None after printing the loader's error."""
    if not full:
        from agent.cli.stationctl.lightcfg import NotLight, load_light

        try:
            return load_light(path)
        except (NotLight, OSError, ValueError):
            pass
    from agent.runtime.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"stationctl: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    lang = install(_requested_language(argv))
    argparse._ = _  # type: ignore[attr-defined]
    ap = build_parser()
    args = ap.parse_args(argv)
    if not hasattr(args, "config"):
        args.config = DEFAULT_CONFIG_PATH
    cfg = None
    if getattr(args, "needs_config", True):
        cfg = _config(args.config, full=getattr(args, "full_config", False))
        if cfg is None:
            return EXIT_USAGE
    ctx = Ctx(args=args, cfg=cfg, lang=lang, now=time.time())
    try:
        return int(args.func(ctx) or EXIT_OK)
    except CtlError as exc:
        if ctx.json:
            import json

            print(
                json.dumps(
                    {"ok": False, "error": exc.message, "advice": exc.advice}, ensure_ascii=False
                )
            )
        else:
            print(f"stationctl: {exc.message}", file=sys.stderr)
            if exc.advice:
                print(f"  {exc.advice}", file=sys.stderr)
        return exc.code
    except PermissionError as exc:
        group = cfg.admin_group if cfg is not None else "stationadmin"
        message = _("Permission denied: {path}").format(path=exc.filename or exc)
        advice = _("Run stationctl as root or as a member of the group {group}.").format(
            group=group
        )
        if ctx.json:
            import json

            print(json.dumps({"ok": False, "error": message, "advice": advice}, ensure_ascii=False))
        else:
            print(f"stationctl: {message}", file=sys.stderr)
            print(f"  {advice}", file=sys.stderr)
        return EXIT_FORBIDDEN
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
