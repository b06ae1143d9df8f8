"""The core is pure: importing it loads no database, network, FFI or YAML module.

Checked in a fresh interpreter with ``-X importtime``, which lists every module an import
loads (the import contract in ``scripts/check_imports.py`` checks the source; this checks
what really happens at import time, lazy imports in imported modules included).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"sqlite3", "_sqlite3", "socket", "_socket", "ctypes", "_ctypes", "yaml", "_yaml"}


def _loaded_by(statement: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, proc.stderr
    return names


def test_importing_the_core_loads_no_sqlite_socket_ctypes_or_yaml() -> None:
    loaded = _loaded_by("import agent.domain.core")
    assert "agent.domain.core.facade" in loaded, "the probe did not see the core load"
    assert not loaded & FORBIDDEN, sorted(loaded & FORBIDDEN)
    assert not {m for m in loaded if m.split(".")[0] in FORBIDDEN}


def test_importing_the_core_loads_only_the_domain_of_the_agent() -> None:
    loaded = _loaded_by("import agent.domain.core")
    ours = {m for m in loaded if m == "agent" or m.startswith("agent.")}
    assert ours and all(m == "agent" or m.startswith("agent.domain") for m in ours), sorted(ours)


def test_a_forbidden_import_would_be_seen() -> None:
    """The probe itself works: a module known to load sqlite3 is caught."""
    assert "sqlite3" in _loaded_by("import agent.domain.core, sqlite3")
