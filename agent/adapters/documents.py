"""Parsing documents that come from outside (config files, schedules from the county, USB sticks).

Why this exists: ``yaml.safe_load`` still expands aliases, so a "billion laughs" document of a few
hundred bytes explodes when walked, and ``json.loads`` accepts NaN, Infinity and duplicate keys.
Both parsers here return a *located* tree (every value knows its line, when the format has lines)
so that validation errors can say exactly where the problem is.

Every read is bounded (``Limits``): bytes, nesting depth, number of values and time. PyYAML's pure
Python scanner needs time that grows with the square of the nesting (a 200 KB document nested
100,000 deep took minutes, then died of ``RecursionError``), so the YAML tree is built from the
event stream, one event at a time, and the read stops at the first limit crossed: a hostile
document costs milliseconds, not minutes, and the error says where it stopped.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 1024 * 1024
# A schedule nests 5 levels deep and its largest legal form (2000 items) has about 72,000 values.
MAX_DEPTH = 32
MAX_VALUES = 100_000
# The largest legal schedule reads in about 0.3 s with libyaml and 2 s without it on a 2-core
# PC; a small board is several times slower. Past this the read is given up.
PARSE_SECONDS = 10.0
PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
}
# libyaml's parser when PyYAML was built with it (about 10 times faster), else the pure Python one.
YAML_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
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


class _Meter:
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


class _Constructor(yaml.constructor.SafeConstructor):
    pass


def _text(data: str | bytes, source: str, limits: Limits) -> str:
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


class _YamlTree:
    """Builds the located tree from PyYAML's events with an explicit stack (no recursion).

    Anchors, aliases and tags other than the plain ones are refused as they come, before anything
    is built from them; keys must be plain text, unique, and not the merge key ``<<``.
    """

    def __init__(self, loader: Any, source: str, meter: _Meter) -> None:
        self.loader = loader
        self.source = source
        self.meter = meter
        self.constructor = _Constructor()
        self.stack: list[list[Any]] = []  # [collection Node, pending key (text, line) or None]

    def fail(self, line: int, message: str) -> DocumentError:
        return DocumentError(f"{self.source}:{line}", message)

    def document(self) -> Node:
        ld = self.loader
        ld.get_event()  # StreamStart
        if ld.check_event(yaml.StreamEndEvent):
            return Node("map", {}, 1)
        ld.get_event()  # DocumentStart
        root = self.node()
        ld.get_event()  # DocumentEnd
        if not ld.check_event(yaml.StreamEndEvent):
            line = ld.peek_event().start_mark.line + 1
            raise self.fail(line, "expected a single document, found another one here")
        return root

    def node(self) -> Node:
        """Read events until one whole value (the document's root) is built."""
        while True:
            ev = self.loader.get_event()
            line = ev.start_mark.line + 1
            self.check_event(ev, line)
            if isinstance(ev, yaml.CollectionEndEvent):
                done = self.stack.pop()[0]
                if not self.stack:
                    return done
                continue
            if isinstance(ev, yaml.ScalarEvent):
                self.meter.count(len(self.stack), line)
                node = self.scalar(ev, line)
            elif isinstance(ev, yaml.SequenceStartEvent):
                self.meter.count(len(self.stack) + 1, line)
                node = Node("seq", [], line)
            elif isinstance(ev, yaml.MappingStartEvent):
                self.meter.count(len(self.stack) + 1, line)
                node = Node("map", {}, line)
            else:
                raise self.fail(line, f"unexpected YAML event {type(ev).__name__}")
            if self.stack:
                self.attach(node)
            if node.kind != "scalar":
                self.stack.append([node, None])
            elif not self.stack:
                return node

    def check_event(self, ev: Any, line: int) -> None:
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
            raise self.fail(line, "YAML anchors and aliases are not allowed")
        tag = getattr(ev, "tag", None)
        if tag and tag not in PLAIN_TAGS and tag != "!":
            raise self.fail(line, f"YAML tag {tag} is not allowed")

    def scalar(self, ev: Any, line: int) -> Node:
        tag = ev.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        ynode = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
        try:
            value = self.constructor.construct_object(ynode, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            value = (
                ev.value
            )  # e.g. a timestamp like 2026-13-45 that YAML recognises but cannot build
        self.constructor.constructed_objects.pop(ynode, None)
        return Node("scalar", value, line, text=ev.value, quoted=ev.style in ("'", '"'))

    def attach(self, node: Node) -> None:
        frame = self.stack[-1]
        parent, key = frame
        if parent.kind == "seq":
            parent.value.append(node)
            return
        if key is not None:
            parent.value[key[0]] = node
            parent.key_lines[key[0]] = key[1]
            frame[1] = None
            return
        line = node.line or 0
        if node.kind != "scalar":
            raise self.fail(line, "keys must be plain text")
        name = node.text or ""
        if name == "<<":
            raise self.fail(line, "merge keys are not allowed")
        if name in parent.value:
            raise self.fail(line, f"duplicate key {name!r}")
        frame[1] = (name, line)


def parse_yaml(
    data: str | bytes,
    source: str = "<document>",
    limits: Limits = DEFAULT_LIMITS,
    *,
    loader: type | None = None,
) -> Node:
    """Parse one YAML document into a located tree, within ``limits``; anchors, aliases and tags
    from outside are refused. ``loader`` picks PyYAML's parser (default: libyaml when present)."""
    text = _text(data, source, limits)
    ld = (loader or YAML_LOADER)(text)
    try:
        return _YamlTree(ld, source, _Meter(limits, source)).document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise DocumentError(where, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(source, f"invalid YAML: {exc}") from None
    finally:
        ld.dispose()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number that can be used here")


def _from_plain(value: Any, meter: _Meter, depth: int = 0) -> Node:
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
    meter = _Meter(limits, source)
    plain = loads_strict_json(data, source, limits.max_bytes, max_depth=limits.max_depth)
    return _from_plain(plain, meter)


def parse_document(data: str | bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> Node:
    """JSON or YAML, by content: a document starting with ``{`` is JSON."""
    head = data.lstrip()[:1]
    if head in ("{", b"{"):
        return parse_json(data, source, limits)
    return parse_yaml(data, source, limits)
