"""Documents from outside, as data: strict JSON, the located tree, the limits on reading.

Stdlib only, so the domain (schema validation, the wire protocol) can read JSON and describe what
it read without depending on an adapter; YAML lives in ``agent.runtime.documents``, which builds
the same ``Node`` tree within the same ``Limits``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

MAX_DOCUMENT_BYTES = 1024 * 1024


# A schedule nests 5 levels deep and its largest legal form (2000 items) has about 72,000 values.
MAX_DEPTH = 32


MAX_VALUES = 100_000


# The largest legal schedule reads in about 0.3 s with libyaml and 2 s without it on a 2-core
# PC; a small board is several times slower. Past this the read is given up.
PARSE_SECONDS = 10.0


# A JSON string (closed or not: an open one runs to the end, so the scan stays linear) or a bracket.
JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)


@dataclass(frozen=True)
class Limits:
    """How much of one document is read before it is refused."""

    max_bytes: int = MAX_DOCUMENT_BYTES
    max_depth: int = MAX_DEPTH  # lists and mappings inside each other
    max_values: int = MAX_VALUES  # every scalar, list and mapping, keys included
    seconds: float = PARSE_SECONDS


DEFAULT_LIMITS = Limits()


class DocumentError(ValueError):
    """A document could not be parsed at all. ``where`` names the file and line."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass
class Node:
    """One value of a parsed document with where it came from.

    ``kind`` is "map", "seq" or "scalar". For maps ``value`` is a dict of str -> Node, for
    sequences a list of Node, for scalars the constructed Python value. ``text`` keeps a YAML
    scalar's source text, so that a string field accepts ``19:30`` although YAML 1.1 would read
    it as a base-60 integer.
    """

    kind: str
    value: Any
    line: int | None = None
    text: str | None = None
    quoted: bool = False
    key_lines: dict[str, int] = field(default_factory=dict)

    def plain(self) -> Any:
        """The value as plain Python data (dicts, lists, scalars)."""
        if self.kind == "map":
            return {k: v.plain() for k, v in self.value.items()}
        if self.kind == "seq":
            return [v.plain() for v in self.value]
        return self.value


class Meter:
    """Counts the values of one document as they are read and watches its time budget."""

    def __init__(self, limits: Limits, source: str) -> None:
        self.limits = limits
        self.source = source
        self.values = 0
        self.deadline = time.monotonic() + limits.seconds

    def where(self, line: int | None) -> str:
        return f"{self.source}:{line}" if line else self.source

    def count(self, depth: int, line: int | None) -> None:
        """One more value, ``depth`` lists/mappings deep; raises at the first limit crossed."""
        lim = self.limits
        self.values += 1
        if depth > lim.max_depth:
            raise DocumentError(self.where(line), f"is nested deeper than {lim.max_depth} levels")
        if self.values > lim.max_values:
            raise DocumentError(
                self.where(line), f"has more than {lim.max_values} values (lists, keys, texts)"
            )
        if time.monotonic() > self.deadline:
            raise DocumentError(
                self.where(line), f"took longer than {lim.seconds:g} s to read; gave up here"
            )


def checked_text(data: str | bytes, source: str, limits: Limits) -> str:
    """The document as text, after the checks that need no parsing (size, encoding, NUL)."""
    if isinstance(data, bytes):
        if len(data) > limits.max_bytes:
            raise DocumentError(source, f"document is {len(data)} bytes, limit {limits.max_bytes}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(source, f"not UTF-8 text (byte {exc.start})") from None
    if len(data.encode("utf-8")) > limits.max_bytes:
        raise DocumentError(source, f"document is larger than {limits.max_bytes} bytes")
    if "\x00" in data:
        raise DocumentError(source, "document contains a NUL character")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number that can be used here")


def _from_plain(value: Any, meter: Meter, depth: int = 0) -> Node:
    """The located tree of parsed JSON (no lines), counted against the document's limits."""
    if isinstance(value, dict):
        meter.count(depth + 1, None)
        return Node("map", {k: _from_plain(v, meter, depth + 1) for k, v in value.items()})
    if isinstance(value, list):
        meter.count(depth + 1, None)
        return Node("seq", [_from_plain(v, meter, depth + 1) for v in value])
    meter.count(depth, None)
    return Node("scalar", value, quoted=isinstance(value, str))


def _unique_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in items:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _check_json_depth(data: bytes, source: str, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` before the decoder recurses into it.

    One linear scan over the brackets outside strings. Without it a deep document ends in
    ``RecursionError`` (or, deep inside a thread's stack, in a misleading syntax error).
    """
    depth = 0
    for m in JSON_TOKEN.finditer(data):
        char = data[m.start()]
        if char in b"[{":
            depth += 1
            if depth > max_depth:
                line = data.count(b"\n", 0, m.start()) + 1
                raise DocumentError(f"{source}:{line}", f"is nested deeper than {max_depth} levels")
        elif char in b"]}":
            depth -= 1


def loads_strict_json(
    data: str | bytes,
    source: str = "<message>",
    limit: int = MAX_DOCUMENT_BYTES,
    *,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Strict JSON as plain Python data: no NaN/Infinity, no duplicate keys, at most ``limit``
    bytes and ``max_depth`` levels. Builds no located tree, so it is cheap enough for MQTT
    payloads by the thousand."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > limit:
        raise DocumentError(source, f"document is {len(data)} bytes, limit {limit}")
    _check_json_depth(data, source, max_depth)
    try:
        return json.loads(data, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{source}:{exc.lineno}", f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise DocumentError(source, "invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise DocumentError(source, f"invalid JSON: {exc}") from None


def parse_json(
    data: str | bytes, source: str = "<document>", limits: Limits = DEFAULT_LIMITS
) -> Node:
    """Parse JSON strictly (see loads_strict_json) into a located tree for schema validation,
    within ``limits``."""
    meter = Meter(limits, source)
    plain = loads_strict_json(data, source, limits.max_bytes, max_depth=limits.max_depth)
    return _from_plain(plain, meter)
