"""`stationctl schedule apply` with the agent running: the agent takes the new layer at once,
not at its next (slow) poll of the schedule files; with the agent stopped, apply still works."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from agent.cli.stationctl.client import request
from tests.helpers import apply_schedule, one_off, schedule, start_agent, write_config
from tests.stationctl.conftest import run_stationctl, wait_socket


def _versions(state: Path) -> dict[str, int]:
    return request(state / "control.sock", "status")["data"]["schedule_versions"]


def test_apply_tells_the_running_agent_which_reads_it_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path, schedule_poll_seconds=600)  # the poll would take 10 minutes
    state = tmp_path / "state"
    state.mkdir()
    later = time.time() + 86400
    assert apply_schedule(state, schedule(3, [one_off("a", later, "a.wav")])).status == "applied"
    proc = start_agent(config, log=tmp_path / "agent.log")
    try:
        wait_socket(state / "control.sock")
        assert _versions(state) == {"terminal": 3}
        doc = tmp_path / "usb.json"
        doc.write_text(json.dumps(schedule(4, [one_off("b", later, "b.wav")])))
        started = time.monotonic()
        r = run_stationctl(config, "schedule", "apply", str(doc))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "The running agent has taken it." in r.stdout
        assert _versions(state) == {"terminal": 4}
        assert time.monotonic() - started < 10
        doc.write_text(json.dumps(schedule(5, [one_off("c", later, "c.wav")])))
        r = run_stationctl(config, "--json", "schedule", "apply", str(doc))
        assert json.loads(r.stdout)["agent_reloaded"] is True
        assert _versions(state) == {"terminal": 5}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    doc.write_text(json.dumps(schedule(6, [one_off("d", later, "d.wav")])))
    r = run_stationctl(config, "schedule", "apply", str(doc))
    assert r.returncode == 0
    assert "next starts" in r.stdout
