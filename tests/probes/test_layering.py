"""The health state machines and link statistics are domain code: they import no probe, no
monitor and nothing outside the standard library, checked both ways (the import-contract script
over the source, and what a fresh interpreter actually loads)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

DOMAIN_FILES = ("agent/domain/health.py", "agent/domain/linkstats.py")


def test_the_contract_script_finds_nothing_in_health_linkstats_or_monitoring() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/check_imports.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode in (0, 1), run.stderr
    ours = [
        line
        for line in run.stdout.splitlines()
        if any(f"/{f}:" in line for f in DOMAIN_FILES) or "/agent/monitoring/" in line
    ]
    assert ours == []


def test_importing_health_loads_only_the_domain() -> None:
    code = (
        "import sys, agent.domain.health, agent.domain.linkstats\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('agent'))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    loaded = run.stdout.split()
    assert "agent.domain.health" in loaded
    assert [m for m in loaded if m != "agent" and not m.startswith("agent.domain")] == []
