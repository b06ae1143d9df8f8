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

from typing import Any

import yaml

from agent.domain.document import (
    DEFAULT_LIMITS,
    DocumentError,
    Limits,
    Meter,
    Node,
    checked_text,
    parse_json,
)

PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
}
# libyaml's parser when PyYAML was built with it (about 10 times faster), else the pure Python one.
YAML_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Constructor(yaml.constructor.SafeConstructor):
    pass


class _YamlTree:
    """Builds the located tree from PyYAML's events with an explicit stack (no recursion).

    Anchors, aliases and tags other than the plain ones are refused as they come, before anything
    is built from them; keys must be plain text, unique, and not the merge key ``<<``.
    """

    def __init__(self, loader: Any, source: str, meter: Meter) -> None:
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
    text = checked_text(data, source, limits)
    ld = (loader or YAML_LOADER)(text)
    try:
        return _YamlTree(ld, source, Meter(limits, source)).document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise DocumentError(where, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise DocumentError(source, f"invalid YAML: {exc}") from None
    finally:
        ld.dispose()


def parse_document(data: str | bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> Node:
    """JSON or YAML, by content: a document starting with ``{`` is JSON."""
    head = data.lstrip()[:1]
    if head in ("{", b"{"):
        return parse_json(data, source, limits)
    return parse_yaml(data, source, limits)
