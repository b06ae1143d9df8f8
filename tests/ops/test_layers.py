"""The real tree keeps its layers: the import contract holds, and the domain loads no I/O."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

HEAVY = ("sqlite3", "socket", "ctypes", "yaml", "paho", "vlc", "psutil")


def test_the_agent_package_keeps_the_import_contract() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_imports.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_importing_the_whole_domain_loads_no_io_module() -> None:
    """``python -X importtime``: every module the domain's import pulls in, by name."""
    domain = sorted(
        "agent.domain." + p.stem if p.stem != "__init__" else "agent.domain"
        for p in (ROOT / "agent" / "domain").glob("*.py")
    )
    domain += sorted(
        f"agent.domain.{p.name}"
        for p in (ROOT / "agent" / "domain").iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    )
    code = "import " + ", ".join(domain)
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    loaded = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith("_sqlite3"))
    assert heavy == [], f"the domain loads {heavy}"
    assert not any(m.startswith(("agent.adapters", "agent.runtime")) for m in loaded)
