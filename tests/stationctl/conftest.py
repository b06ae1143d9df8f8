"""Fixtures for the stationctl tests: a prepared station and a way to run stationctl in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT
from tests.stationctl.fixture import build_station


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def station(tmp_path: Path) -> Path:
    """Config path of a prepared station (agent not running)."""
    return build_station(tmp_path)


@pytest.fixture
def ctl(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run stationctl in this process: ctl(config, "status", "--json", lang="zh_CN")."""
    from agent.cli.stationctl import main

    def run(config: Path | None, *args: str, lang: str = "en") -> Result:
        argv = (["-c", str(config)] if config else []) + ["--lang", lang, *args]
        capsys.readouterr()
        code = main(argv)
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


def run_stationctl(
    config: Path, *args: str, lang: str = "en", timeout: float = 30.0, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """stationctl as its own process (what the admin types)."""
    env = {**os.environ, "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT)}
    env.pop("LANGUAGE", None)
    env.pop("LC_ALL", None)
    env.update(kw.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.stationctl", "-c", str(config), "--lang", lang, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        **kw,
    )


def wait_socket(path: Path, timeout: float = 15.0) -> None:
    from agent.cli.stationctl.client import AgentUnavailable, request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request(path, "ping", timeout=2).get("ok"):
                return
        except AgentUnavailable:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no agent answered on {path}")
