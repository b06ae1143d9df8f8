"""Opt-in: the shipped unit under a real systemd 252 started as PID 1 in private namespaces.

Takes about a minute and needs root; run with STATION_AGENT_SANDBOX=1. See tests/ops/sandbox/run.sh
for what it checks and how it keeps the machine untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent / "sandbox" / "run.sh"


@pytest.mark.skipif(
    os.environ.get("STATION_AGENT_SANDBOX") != "1",
    reason="opt-in (about a minute, root): STATION_AGENT_SANDBOX=1",
)
def test_unit_under_real_systemd():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not Path("/lib/systemd/systemd").exists() or shutil.which("unshare") is None:
        pytest.skip("needs systemd and unshare installed")
    result = subprocess.run(["bash", str(RUN)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "FAIL" not in result.stdout
