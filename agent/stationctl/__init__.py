"""``stationctl``: the station admin's tool. Works with no network and with the agent stopped.

Reads come straight from the agent's SQLite store (read-only; WAL lets us read while the agent
writes). Schedule commands reuse the agent's own validation.
"""

from __future__ import annotations

import argparse
import sys

from agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from agent.stationctl import records_cmd, schedule_cmd


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="stationctl", description="Station admin tool")
    ap.add_argument("-c", "--config", default=str(DEFAULT_CONFIG_PATH), help="agent config file")
    sub = ap.add_subparsers(dest="command", required=True)
    records_cmd.add_parser(sub)
    schedule_cmd.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    cfg = None
    if getattr(args, "needs_config", True):
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            print(f"stationctl: {exc}", file=sys.stderr)
            return 2
    try:
        return int(args.func(args, cfg) or 0)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
