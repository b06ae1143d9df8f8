#!/usr/bin/env python3
"""The agent's import contract, checked from the source with ``ast`` (no new dependency).

Why: the layers (docs/architecture.md) only stay layers if something fails when one reaches into
another. The contract below is the whole policy; the rest of this file only reads imports.

    scripts/check_imports.py                 # this repository's agent package
    scripts/check_imports.py --root DIR      # another tree (tests use small synthetic ones)

Every import counts: at module level, inside functions (lazy imports) and under
``if TYPE_CHECKING:`` alike, since each is a dependency of the design even when it is not one at
import time. A layer that does not exist in the tree is reported as absent and its rules are
skipped; the cycle rule always applies to every module. Exit status: 0 clean, 1 violations,
2 the tree cannot be read (missing package, syntax error).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# -- the contract --------------------------------------------------------------------------------

PACKAGE = "agent"
DOMAIN = "agent.domain"
ADAPTERS = "agent.adapters"
LAYERS = (
    DOMAIN,
    "agent.runtime",
    ADAPTERS,
    "agent.monitoring",
    "agent.cli",
    "agent.testing",
)
RULE_DOMAIN = "domain-pure"  # agent.domain imports only the standard library and itself
RULE_ADAPTERS = "adapters-independent"  # agent.adapters.X never imports agent.adapters.Y
RULE_CYCLE = "no-cycles"  # no module reaches itself through its imports


# -- reading the tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (a module of the tree when the name resolves to one)
    path: Path
    line: int


@dataclass(frozen=True)
class Violation:
    rule: str
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


class TreeError(Exception):
    """The tree cannot be checked (exit status 2)."""


def discover(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``root``: dotted name -> file."""
    base = root / package.replace(".", "/")
    if not base.is_dir():
        raise TreeError(f"{base}: no such package folder")
    modules: dict[str, Path] = {}
    for path in sorted(base.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from .{name} import ...`` written in ``module``."""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        raise ValueError(f"relative import beyond the top-level package (level {level})")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def read_imports(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """The imports of one module, with ``from pkg import mod`` resolved to ``pkg.mod``."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as exc:
        raise TreeError(f"{path}:{exc.lineno}: cannot parse: {exc.msg}") from None
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                try:
                    base = _resolve_relative(module, is_package, node.level, node.module)
                except ValueError as exc:
                    raise TreeError(f"{path}:{node.lineno}: {exc}") from None
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in modules else base
                yield Import(module, target, path, node.lineno)


# -- the rules -----------------------------------------------------------------------------------


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> str | None:
    return next((layer for layer in LAYERS if within(module, layer)), None)


def is_stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def check_domain(imports: Iterable[Import]) -> Iterator[Violation]:
    for imp in imports:
        if not within(imp.source, DOMAIN) or within(imp.target, DOMAIN) or is_stdlib(imp.target):
            continue
        layer = layer_of(imp.target)
        if layer is not None:
            what = f"layer {layer}"
        elif within(imp.target, PACKAGE):
            what = "a module outside the domain"
        else:
            what = "a package outside the standard library"
        yield Violation(
            RULE_DOMAIN,
            imp.path,
            imp.line,
            f"{imp.source} imports {imp.target} ({what}); {DOMAIN} may import only the "
            "standard library and itself",
        )


def adapter_of(module: str) -> str | None:
    """``X`` for a module in ``agent.adapters.X``; "" for the ``agent.adapters`` package itself."""
    if not within(module, ADAPTERS):
        return None
    rest = module[len(ADAPTERS) + 1 :]
    return rest.split(".")[0] if rest else ""


def check_adapters(imports: Iterable[Import]) -> Iterator[Violation]:
    for imp in imports:
        mine, theirs = adapter_of(imp.source), adapter_of(imp.target)
        if mine is None or not theirs or theirs == mine:
            continue
        yield Violation(
            RULE_ADAPTERS,
            imp.path,
            imp.line,
            f"{imp.source} imports {imp.target}: an adapter may use another adapter only "
            "through the ports in agent.runtime",
        )


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (deep import chains must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def _cycle_through(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from ``start`` back to itself inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def check_cycles(imports: list[Import], modules: dict[str, Path]) -> Iterator[Violation]:
    graph: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], Import] = {}
    for imp in imports:
        if imp.target in modules:
            graph[imp.source].add(imp.target)
            where.setdefault((imp.source, imp.target), imp)
    for component in strongly_connected(graph):
        head = component[0]
        if len(component) == 1 and head not in graph[head]:
            continue
        cycle = _cycle_through(head, set(component), graph)
        steps = [where[(a, b)] for a, b in zip(cycle, cycle[1:], strict=False)]
        chain = " -> ".join([cycle[0]] + [f"{s.target} ({s.path}:{s.line})" for s in steps])
        others = f"; {len(component)} modules in this knot: {', '.join(component)}"
        yield Violation(
            RULE_CYCLE,
            steps[0].path,
            steps[0].line,
            f"import cycle: {chain}" + (others if len(component) > len(cycle) - 1 else ""),
        )


# -- the command ---------------------------------------------------------------------------------


def check(root: Path) -> tuple[list[Violation], list[str]]:
    """The violations, and notes on what was and was not checked."""
    modules = discover(root, PACKAGE)
    imports = [imp for name, path in modules.items() for imp in read_imports(name, path, modules)]
    present = [layer for layer in LAYERS if any(within(m, layer) for m in modules)]
    absent = [layer for layer in LAYERS if layer not in present]
    notes = [f"{len(modules)} modules, {len(imports)} imports under {root / PACKAGE}"]
    if absent:
        notes.append(f"layers not in this tree, their rules not checked: {', '.join(absent)}")
    violations: list[Violation] = []
    if DOMAIN in present:
        violations += check_domain(imports)
    if ADAPTERS in present:
        violations += check_adapters(imports)
    violations += check_cycles(imports, modules)
    violations.sort(key=lambda v: (str(v.path), v.line, v.rule))
    return violations, notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check the agent's import contract.")
    ap.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="folder that holds the package (default: this repository)",
    )
    args = ap.parse_args(argv)
    try:
        violations, notes = check(args.root)
    except TreeError as exc:
        print(f"check_imports: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"check_imports: {note}")
    for violation in violations:
        print(violation)
    if violations:
        print(f"check_imports: {len(violations)} violation(s) of the import contract")
        return 1
    print("check_imports: the import contract holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
