"""Helpers shared by the probe tests: fake sysfs/procfs trees and recorded tool output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.monitoring.probes.base import CommandResult


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Create ``files`` (relative path -> content) under ``root``, like a sysfs/procfs snapshot."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


class RecordedRunner:
    """A command runner that answers with recorded outputs and remembers what it was asked."""

    def __init__(self, outputs: dict[str, CommandResult] | CommandResult) -> None:
        self.outputs = outputs
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append((list(argv), timeout))
        if isinstance(self.outputs, CommandResult):
            return self.outputs
        return self.outputs[argv[0]]
