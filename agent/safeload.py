"""Parsing documents that come from outside (config files, schedules from the county, USB sticks).

Why this exists: ``yaml.safe_load`` still expands aliases, so a "billion laughs" document of a few
hundred bytes explodes when walked, and ``json.loads`` accepts NaN, Infinity and duplicate keys.
Both parsers here return a *located* tree (every value knows its line, when the format has lines)
so that validation errors can say exactly where the problem is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 1024 * 1024
PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
}


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


class _Constructor(yaml.constructor.SafeConstructor):
    pass


def _from_yaml_node(node: yaml.Node, source: str, constructor: _Constructor) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise DocumentError(
                    f"{source}:{knode.start_mark.line + 1}", "keys must be plain text"
                )
            key = knode.value
            if key == "<<":
                raise DocumentError(
                    f"{source}:{knode.start_mark.line + 1}", "merge keys are not allowed"
                )
            if key in out:
                raise DocumentError(
                    f"{source}:{knode.start_mark.line + 1}", f"duplicate key {key!r}"
                )
            out[key] = _from_yaml_node(vnode, source, constructor)
            key_lines[key] = knode.start_mark.line + 1
        return Node("map", out, line, key_lines=key_lines)
    if isinstance(node, yaml.SequenceNode):
        return Node("seq", [_from_yaml_node(v, source, constructor) for v in node.value], line)
    assert isinstance(node, yaml.ScalarNode)
    try:
        value = constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        # e.g. a timestamp like 2026-13-45 that YAML recognises but cannot build
        value = node.value
        del exc
    return Node("scalar", value, line, text=node.value, quoted=node.style in ("'", '"'))


def parse_yaml(data: str | bytes, source: str = "<document>") -> Node:
    """Parse one YAML document into a located tree; anchors, aliases and tags from outside are refused."""
    if isinstance(data, bytes):
        if len(data) > MAX_DOCUMENT_BYTES:
            raise DocumentError(
                source, f"document is {len(data)} bytes, limit {MAX_DOCUMENT_BYTES}"
            )
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(source, f"not UTF-8 text (byte {exc.start})") from None
    if len(data.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise DocumentError(source, f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    if "\x00" in data:
        raise DocumentError(source, "document contains a NUL character")
    try:
        # Walk the event stream first: an alias or anchor is refused before anything is composed.
        for event in yaml.parse(data, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                line = event.start_mark.line + 1
                raise DocumentError(f"{source}:{line}", "YAML anchors and aliases are not allowed")
            tag = getattr(event, "tag", None)
            if tag and tag not in PLAIN_TAGS and tag != "!":
                line = event.start_mark.line + 1
                raise DocumentError(f"{source}:{line}", f"YAML tag {tag} is not allowed")
        node = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise DocumentError(where, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(source, f"invalid YAML: {exc}") from None
    if node is None:
        return Node("map", {}, 1)
    return _from_yaml_node(node, source, _Constructor())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number that can be used here")


def _from_plain(value: Any) -> Node:
    if isinstance(value, dict):
        return Node("map", {k: _from_plain(v) for k, v in value.items()})
    if isinstance(value, list):
        return Node("seq", [_from_plain(v) for v in value])
    return Node("scalar", value, quoted=isinstance(value, str))


def _unique_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in items:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def loads_strict_json(
    data: str | bytes, source: str = "<message>", limit: int = MAX_DOCUMENT_BYTES
) -> Any:
    """Strict JSON as plain Python data: no NaN/Infinity, no duplicate keys, at most ``limit``
    bytes. Builds no located tree, so it is cheap enough for MQTT payloads by the thousand."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > limit:
        raise DocumentError(source, f"document is {len(data)} bytes, limit {limit}")
    try:
        return json.loads(data, object_pairs_hook=_unique_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{source}:{exc.lineno}", f"invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise DocumentError(source, f"invalid JSON: {exc}") from None


def parse_json(data: str | bytes, source: str = "<document>") -> Node:
    """Parse JSON strictly (see loads_strict_json) into a located tree for schema validation."""
    return _from_plain(loads_strict_json(data, source))


def parse_document(data: str | bytes, source: str) -> Node:
    """JSON or YAML, by content: a document starting with ``{`` is JSON."""
    head = data.lstrip()[:1]
    if head in ("{", b"{"):
        return parse_json(data, source)
    return parse_yaml(data, source)
