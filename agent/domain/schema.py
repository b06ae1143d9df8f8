"""Typed documents from located trees: dataclasses describe the shape, this module checks it.

Every problem is collected (not just the first one) with its dotted path and line, because a
technician fixing a schedule on a USB stick wants the whole list at once.

A dataclass field may carry ``metadata={"check": fn, "doc": "..."}``: ``fn(value)`` returns an
error string or None. A class may define ``_validate(self) -> list[tuple[str, str]]`` for checks
across fields (path suffix, message).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.domain.document import Node

T = TypeVar("T")

MIN_YEAR = 2000
MAX_YEAR = 2100


@dataclasses.dataclass
class Problem:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path or '<top>'}{where}: {self.message}"


class SchemaError(ValueError):
    """A document had the wrong shape; ``problems`` lists every finding."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def parse_date(text: str) -> dt.date:
    value = dt.date.fromisoformat(text)
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year {value.year} is outside {MIN_YEAR}..{MAX_YEAR}")
    return value


def parse_datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year {value.year} is outside {MIN_YEAR}..{MAX_YEAR}")
    return value


class _Builder:
    def __init__(self, base_dir: Path | None) -> None:
        self.problems: list[Problem] = []
        self.base_dir = base_dir

    def fail(self, path: str, node: Node | None, message: str) -> None:
        self.problems.append(Problem(path, message, node.line if node else None))

    def build(self, tp: Any, node: Node, path: str) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if node.kind == "scalar" and node.value is None and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1:
                return self.build(inner[0], node, path)
            raise TypeError(f"unsupported union {tp}")
        if dataclasses.is_dataclass(tp):
            return self.build_dataclass(tp, node, path)
        if origin is list:
            if node.kind != "seq":
                self.fail(path, node, "must be a list")
                return []
            return [self.build(args[0], item, _join(path, i)) for i, item in enumerate(node.value)]
        if origin is dict:
            if node.kind != "map":
                self.fail(path, node, "must be a mapping")
                return {}
            return {k: self.build(args[1], v, _join(path, k)) for k, v in node.value.items()}
        if origin is Literal:
            value = node.text if node.text is not None and not node.quoted else node.value
            if node.kind != "scalar" or value not in args:
                choices = ", ".join(repr(a) for a in args)
                self.fail(path, node, f"must be one of {choices}")
                return args[0]
            return value
        if node.kind != "scalar":
            self.fail(
                path,
                node,
                f"must be a single value, not a {'list' if node.kind == 'seq' else 'mapping'}",
            )
            return None
        return self.scalar(tp, node, path)

    def scalar(self, tp: Any, node: Node, path: str) -> Any:
        value = node.value
        if value is None:
            self.fail(path, node, "must not be empty")
            return None
        if tp is bool:
            if not isinstance(value, bool):
                self.fail(path, node, "must be true or false")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(path, node, f"must be a whole number, got {node.text or value!r}")
                return 0
            if abs(value) > 2**53:
                self.fail(path, node, "number is absurdly large")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(path, node, f"must be a number, got {node.text or value!r}")
                return 0.0
            if not math.isfinite(value):
                self.fail(path, node, "must be a finite number (NaN and infinity are not allowed)")
                return 0.0
            return float(value)
        if tp is str or tp is Path:
            if isinstance(value, str):
                text = value
            elif node.text is not None and not isinstance(value, bool):
                text = node.text  # a YAML plain scalar such as 19:30 or 0012, read as written
            else:
                self.fail(path, node, "must be text")
                return ""
            if "\x00" in text:
                self.fail(path, node, "must not contain NUL characters")
                return ""
            if tp is Path:
                p = Path(text).expanduser()
                if not p.is_absolute() and self.base_dir is not None:
                    p = self.base_dir / p
                return p
            return text
        if tp is dt.date:
            text = value.isoformat() if isinstance(value, dt.date) else (node.text or str(value))
            try:
                return parse_date(text)
            except ValueError as exc:
                self.fail(path, node, f"must be a date YYYY-MM-DD ({exc})")
                return None
        if tp is dt.datetime:
            text = node.text if node.text is not None else str(value)
            try:
                return parse_datetime(text)
            except ValueError as exc:
                self.fail(path, node, f"must be a date and time YYYY-MM-DDTHH:MM ({exc})")
                return None
        raise TypeError(f"unsupported field type {tp}")

    def build_dataclass(self, cls: type, node: Node, path: str) -> Any:
        if node.kind != "map":
            self.fail(path, node, "must be a mapping of keys to values")
            return None
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        kwargs: dict[str, Any] = {}
        before = len(self.problems)
        for key, child in node.value.items():
            if key not in fields:
                known = ", ".join(sorted(fields))
                line = node.key_lines.get(key, child.line)
                self.problems.append(
                    Problem(_join(path, key), f"unknown key (known keys: {known})", line)
                )
                continue
            f = fields[key]
            field_start = len(self.problems)
            value = self.build(hints[f.name], child, _join(path, key))
            check: Callable[[Any], str | None] | None = f.metadata.get("check")
            if check is not None and value is not None and len(self.problems) == field_start:
                message = check(value)
                if message:
                    self.fail(_join(path, key), child, message)
            kwargs[key] = value
        for name, f in fields.items():
            if (
                name not in kwargs
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ):  # type: ignore[misc]
                self.fail(_join(path, name), node, "is required")
        if len(self.problems) > before:
            return None
        obj = cls(**kwargs)
        validate = getattr(obj, "_validate", None)
        if validate is not None:
            for suffix, message in validate():
                key = suffix.split(".")[0].split("[")[0]
                line = node.key_lines.get(key, node.line)
                self.problems.append(
                    Problem(_join(path, suffix) if suffix else path, message, line)
                )
        return obj


def build(cls: type[T], node: Node, source: str, base_dir: Path | None = None) -> T:
    """Build ``cls`` from ``node`` or raise SchemaError listing every problem."""
    builder = _Builder(base_dir)
    obj = builder.build(cls, node, "")
    if builder.problems:
        raise SchemaError(source, builder.problems)
    return obj


# Ids (terminal, county, course, schedule entry) become MQTT topic levels or travel beside them,
# so they hold no character any broker reads as structure: no wildcard, no '/', and no '.' (NATS
# refuses it in a topic, RabbitMQ turns it into a topic level: records never reach the collector).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ID_RULE = "1-64 letters, digits, '_' or '-', starting with a letter or digit"


def check_id(value: str) -> str | None:
    if ID_PATTERN.match(value):
        return None
    if "." in value:
        return (
            f"must not contain '.' ({ID_RULE}): NATS refuses it in a topic and RabbitMQ "
            "turns it into a topic level"
        )
    return f"must be {ID_RULE}"


def check_timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
    return None


def positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "must not be negative"


def at_most(limit: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if value <= limit else f"must be at most {limit}"

    return check


def between(low: float, high: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check
