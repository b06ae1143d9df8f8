"""What every stationctl command shares: the context, exit codes, the store, the agent's socket.

The store is opened read-only through ``agent.adapters.sqlite.read_model``, whose functions
answer every question a command asks of it; no command writes SQL of its own.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.adapters.sqlite.read_model import open_readonly
from agent.adapters.sqlite.store import Store
from agent.cli.i18n import _, local_time

# Exit codes (docs/stationctl.md).
EXIT_OK = 0
EXIT_FAIL = 1  # the command ran and the answer is "no" (refused, invalid, a check failed)
EXIT_USAGE = 2  # bad arguments or config
EXIT_NOT_RUNNING = 3  # an action needs the agent and it is not running / not answering
EXIT_FORBIDDEN = 4  # this user may not control the agent

SERVICE = "station-agent"


class CtlError(Exception):
    """Stop the command with a message for the admin (already translated) and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAIL, advice: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.advice = advice


@dataclass
class Ctx:
    args: argparse.Namespace
    cfg: Any  # AgentConfig, or None for commands that need none
    lang: str
    now: float = field(default_factory=time.time)
    _store: Store | None = None

    @property
    def tz(self) -> Any:
        if self.cfg is not None:
            return self.cfg.tz
        return ZoneInfo("Asia/Shanghai")

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def local(self, value: str | float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return local_time(value, self.tz, fmt)

    # -- the store (read-only) ------------------------------------------------------------------

    def has_store(self) -> bool:
        return self.cfg is not None and Path(self.cfg.db_path).exists()

    def store(self) -> Store:
        if self._store is not None:
            return self._store
        path = Path(self.cfg.db_path)
        if not path.exists():
            raise CtlError(
                _("No database yet at {path}: the agent has never run on this station.").format(
                    path=path
                ),
                EXIT_FAIL,
                _("Start the agent (systemctl start station-agent) or check the config file."),
            )
        try:
            self._store = open_readonly(path)
        except sqlite3.Error as exc:
            self._store = None
            raise CtlError(
                _("Cannot read the database {path}: {error}").format(path=path, error=exc),
                EXIT_FAIL,
                _("Run stationctl as root or as a member of the station admin group."),
            ) from None
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- output ----------------------------------------------------------------------------------

    def print(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")

    def print_json(self, obj: Any) -> None:
        json.dump(obj, sys.stdout, ensure_ascii=False, indent=1, default=str)
        sys.stdout.write("\n")


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every command accepts, before or after the command name."""
    parser.add_argument(
        "-c", "--config", default=argparse.SUPPRESS, help=_("agent config file (YAML)")
    )
    parser.add_argument(
        "--lang",
        default=argparse.SUPPRESS,
        help=_("language of the output: zh_CN or en (default: from LANG)"),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help=_("machine-readable output (JSON)"),
    )
