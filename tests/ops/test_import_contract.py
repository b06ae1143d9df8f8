"""scripts/check_imports.py on small package trees made here: each rule catches its violation
(with module, line and rule in the message), a clean tree passes, an unreadable one is an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "check_imports.py"

# A tree that keeps the contract: every kind of import that is allowed appears once.
CLEAN = {
    "agent/__init__.py": "",
    "agent/domain/__init__.py": "",
    "agent/domain/records.py": "import dataclasses\nfrom enum import Enum\n",
    "agent/domain/core.py": (
        "from __future__ import annotations\n"
        "import json\n"
        "from agent.domain import records\n"
        "from .records import Enum\n"
        "from . import records as r2\n"
    ),
    "agent/runtime/__init__.py": "",
    "agent/runtime/ports.py": "from typing import Protocol\nfrom agent.domain.records import Enum\n",
    "agent/runtime/loop.py": "from agent.runtime import ports\nfrom agent.adapters.sqlite import store\n",
    "agent/adapters/__init__.py": "",
    "agent/adapters/sqlite/__init__.py": "",
    "agent/adapters/sqlite/store.py": (
        "import sqlite3\nfrom agent.runtime.ports import Protocol\nfrom . import schema\n"
    ),
    "agent/adapters/sqlite/schema.py": "SCHEMA = ''\n",
    "agent/adapters/mqtt.py": (
        "import yaml\nfrom agent.runtime import ports\n\n\ndef later():\n"
        "    from agent.domain import core\n"
    ),
    "agent/monitoring/__init__.py": "from agent.runtime import ports\n",
    "agent/cli/__init__.py": "from agent.runtime import loop\n",
    "agent/testing/__init__.py": "from agent.adapters.sqlite import store\n",
}


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def violations(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if ": [" in line]


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    r = check(make_tree(tmp_path, CLEAN))
    assert r.returncode == 0, r.stdout + r.stderr
    assert violations(r) == []
    assert "the import contract holds" in r.stdout
    assert "not in this tree" not in r.stdout  # every layer exists here, every rule ran


def test_domain_importing_another_layer(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, CLEAN)
    (tree / "agent/domain/core.py").write_text("import json\n\nfrom agent.runtime import ports\n")
    r = check(tree)
    assert r.returncode == 1
    [v] = violations(r)
    assert v.startswith(f"{tree / 'agent/domain/core.py'}:3: [domain-pure] ")
    assert "agent.domain.core imports agent.runtime.ports (layer agent.runtime)" in v


def test_domain_importing_through_a_relative_import(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, CLEAN)
    (tree / "agent/domain/core.py").write_text("from ..adapters.sqlite import store\n")
    [v] = violations(check(tree))
    assert ":1: [domain-pure] agent.domain.core imports agent.adapters.sqlite.store" in v


def test_domain_importing_a_third_party_package_or_an_agent_module(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, CLEAN)
    (tree / "agent/clock.py").write_text("")
    (tree / "agent/domain/core.py").write_text(
        "def parse():\n    import yaml\n\n\nfrom agent import clock\n"
    )
    found = violations(check(tree))
    assert len(found) == 2, found
    assert "core.py:2: [domain-pure] agent.domain.core imports yaml (a package outside" in found[0]
    assert (
        "core.py:5: [domain-pure] agent.domain.core imports agent.clock (a module outside"
        in (found[1])
    )


def test_an_adapter_importing_another_adapter(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, CLEAN)
    (tree / "agent/adapters/mqtt.py").write_text(
        "from agent.runtime import ports\nfrom agent.adapters import sqlite\n"
        "from agent.adapters.sqlite.store import Protocol\n"
    )
    found = violations(check(tree))
    assert [v.split(": [")[0].rsplit(":", 1)[1] for v in found] == ["2", "3"]
    assert all(
        "[adapters-independent] agent.adapters.mqtt imports agent.adapters.sqlite" in v
        for v in found
    )


def test_an_import_cycle_with_every_step_located(tmp_path: Path) -> None:
    tree = make_tree(tmp_path, CLEAN)
    ports, monitoring = tree / "agent/runtime/ports.py", tree / "agent/monitoring/__init__.py"
    ports.write_text("from typing import Protocol\n\nfrom agent import monitoring\n")
    r = check(tree)
    assert r.returncode == 1
    [v] = violations(r)
    assert v == (
        f"{monitoring}:1: [no-cycles] import cycle: agent.monitoring -> agent.runtime.ports "
        f"({monitoring}:1) -> agent.monitoring ({ports}:3)"
    )


def test_a_lazy_import_closing_a_longer_cycle_counts(tmp_path: Path) -> None:
    files = {
        "agent/__init__.py": "",
        "agent/a.py": "from agent import b\n",
        "agent/b.py": "import agent.c\n",
        "agent/c.py": "def f():\n    from agent.a import f\n",
    }
    [v] = violations(check(make_tree(tmp_path, files)))
    assert "import cycle: agent.a -> agent.b" in v and "-> agent.c" in v and "-> agent.a (" in v


def test_todays_flat_tree_checks_what_exists_and_says_so(tmp_path: Path) -> None:
    files = {"agent/__init__.py": "", "agent/core.py": "import yaml\nfrom agent import store\n"}
    files["agent/store.py"] = "import sqlite3\n"
    r = check(make_tree(tmp_path, files))
    assert r.returncode == 0, r.stdout
    assert (
        "layers not in this tree, their rules not checked: agent.domain, agent.runtime, "
        "agent.adapters, agent.monitoring, agent.cli, agent.testing" in r.stdout
    )


def test_an_unreadable_tree_is_an_error_not_a_pass(tmp_path: Path) -> None:
    r = check(tmp_path)
    assert r.returncode == 2 and "no such package folder" in r.stderr
    make_tree(tmp_path, {"agent/__init__.py": "", "agent/bad.py": "x = 1\nimport\n"})
    r = check(tmp_path)
    assert r.returncode == 2 and f"{tmp_path / 'agent/bad.py'}:2: cannot parse" in r.stderr
