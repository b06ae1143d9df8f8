"""A county's roster: the terminals it has, in a file the county tools read.

The tools must not learn who exists from retained messages through a wildcard subscription:
RabbitMQ's MQTT plugin does not deliver retained messages to wildcard subscriptions at all
(docs/protocol.md § 9). With ``--roster FILE`` a tool knows every terminal and subscribes to each
one's exact topics (``exact_filters``), which every broker answers with the retained message.

The file: one terminal id per line with ``#`` comments, or a YAML list of strings. The same file
feeds ``countyctl broker-acl``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from agent.cli.county.client import ToolError
from agent.domain import topics as t
from agent.domain.schema import ID_PATTERN, ID_RULE


def check_id(value: object, where: str) -> str:
    """``value`` as a terminal, county or tool id, or a ToolError saying where it was found."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        dot = " ('.' is not allowed: brokers read it as a separator)" if "." in str(value) else ""
        raise ToolError(f"{where}: {value!r} is not an id ({ID_RULE}){dot}")
    if value == t.ALL:
        raise ToolError(f"{where}: 'all' is reserved for the county-wide topics")
    return value


def parse_roster(path: Path) -> list[str]:
    """Terminal ids from a file: one per line (``#`` comments) or a YAML list of strings."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"cannot read roster {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ToolError(f"roster {path} is not UTF-8 text") from None
    stripped = [ln.strip() for ln in text.splitlines()]
    entries: list[tuple[str, object]] = []
    if path.suffix in (".yaml", ".yml") or any(ln.startswith("- ") for ln in stripped):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ToolError(f"roster {path} is not valid YAML: {exc}") from None
        if not isinstance(data, list):
            raise ToolError(f"roster {path}: a YAML roster is a list of terminal ids")
        entries = [(f"{path} item {i + 1}", v) for i, v in enumerate(data)]
    else:
        for n, ln in enumerate(stripped, 1):
            ln = ln.split("#", 1)[0].strip()
            if ln:
                entries.append((f"{path} line {n}", ln))
    out: list[str] = []
    seen: dict[str, str] = {}
    for where, value in entries:
        tid = check_id(value, where)
        if tid in seen:
            raise ToolError(f"{where}: {tid} is listed twice (first at {seen[tid]})")
        seen[tid] = where
        out.append(tid)
    if not out:
        raise ToolError(f"roster {path} lists no terminals")
    return out


def add_roster_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--roster",
        type=Path,
        default=None,
        help="the county's terminals (one id per line, or a YAML list): exact subscriptions "
        "per terminal instead of retained messages through a wildcard (needed on RabbitMQ)",
    )


def load(path: Path | None) -> list[str] | None:
    return None if path is None else parse_roster(path)


def exact_filters(county: str, terminals: Iterable[str], suffixes: Iterable[str]) -> list[str]:
    """One topic per terminal and suffix: retained messages come on every broker."""
    suffixes = tuple(suffixes)
    return [t.topic(county, term, s) for term in terminals for s in suffixes]


SUBSCRIBE_BATCH = 200  # topic filters per SUBSCRIBE packet: thousands fit no broker's liking


def subscribe_all(cc: Any, filters: list[str]) -> None:
    """Subscribe ``cc`` (a CountyClient) to many filters, a batch per SUBSCRIBE."""
    for i in range(0, len(filters), SUBSCRIBE_BATCH):
        cc.subscribe(filters[i : i + SUBSCRIBE_BATCH])
