"""The USB door: ``stationctl schedule apply FILE`` runs the attack table; ``--unsigned`` as root
takes an unsigned schedule and the agent reports it; ``validate`` says who signed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.domain.trust import parse_envelope, parse_revocations
from agent.runtime.trust_state import RevocationState
from agent.runtime.trust_unsigned import report_unsigned, unsigned_log
from tests.helpers import write_config
from tests.trust.attacks import BASELINE, REVOKED_KEY, baseline, expect, schedule_attacks
from tests.trust.pki import make_pki, schedule_bytes


@pytest.fixture
def station(tmp_path: Path):
    pki = make_pki(tmp_path / "keys")
    config = write_config(
        tmp_path, trust={"signatures": "required", "roots_dir": str(pki.roots_dir)}
    )
    revs = parse_revocations(parse_envelope(pki.revocations(1, [REVOKED_KEY]), 10**6).payload)
    RevocationState(tmp_path / "state").apply(revs)
    return config, pki, tmp_path


def ctl(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    from agent.cli.stationctl import main

    capsys.readouterr()
    code = main(["-c", str(config), "--lang", "en", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def apply_file(capsys, config: Path, folder: Path, name: str, data: bytes, *extra: str) -> dict:
    path = folder / f"{name}.json"
    path.write_bytes(data)
    code, out, _ = ctl(capsys, config, "schedule", "apply", str(path), "--json", *extra)
    result = json.loads(out)
    assert (code == 0) == (result["status"] == "applied")
    return result


def stored_version(tmp_path: Path) -> int:
    return json.loads((tmp_path / "state" / "schedule" / "terminal.json").read_text())["version"]


def test_attack_table_over_stationctl_apply(station, capsys) -> None:
    config, pki, tmp_path = station
    result = apply_file(capsys, config, tmp_path, "baseline", baseline(pki))
    assert result["status"] == "applied", result
    seen = []
    for attack in schedule_attacks(pki):
        result = apply_file(capsys, config, tmp_path, attack.name, attack.data)
        expect(attack, result["status"], result["reasons"])
        assert stored_version(tmp_path) == BASELINE, attack.name
        seen.append(f"{attack.name:30} {result['status']:8} {result['reasons'][0][:90]}")
    print("\n".join(["", "USB door (stationctl schedule apply):", *seen]))


def test_unsigned_needs_the_flag_and_is_reported(station, capsys) -> None:
    config, pki, tmp_path = station
    plain = schedule_bytes(7)
    assert apply_file(capsys, config, tmp_path, "plain", plain)["status"] == "rejected"
    if os.geteuid() != 0:
        pytest.skip("--unsigned is for root; these tests run as root on the CI machine")
    result = apply_file(capsys, config, tmp_path, "plain", plain, "--unsigned")
    assert result["status"] == "applied"
    noted = unsigned_log(tmp_path / "state").read_text().splitlines()
    assert len(noted) == 1 and json.loads(noted[0])["version"] == 7

    from agent.adapters.sqlite.store import Store
    from agent.runtime.config import load_config

    cfg = load_config(config)
    store = Store(cfg.db_path)
    logged = []
    try:
        assert report_unsigned(cfg, store, logged.append) == 1
        rows = store.db.execute("SELECT topic, payload FROM outbox WHERE kind='event'").fetchall()
    finally:
        store.close()
    assert [r[0] for r in rows] == ["event"]
    event = json.loads(rows[0][1])
    assert event["name"] == "unsigned_document_applied" and event["type"] == "security"
    assert logged and "--unsigned" in logged[0].message
    assert not unsigned_log(tmp_path / "state").exists()


def test_validate_says_who_signed(station, capsys) -> None:
    config, pki, tmp_path = station
    good = tmp_path / "good.json"
    good.write_bytes(baseline(pki))
    code, out, _ = ctl(capsys, config, "schedule", "validate", str(good))
    assert code == 0 and "signed by c-01-k1 (certified by root prov-root-1)" in out, out
    bad = tmp_path / "revoked.json"
    bad.write_bytes(pki.sign(schedule_bytes(9), key="old", to="t-001"))
    code, out, err = ctl(capsys, config, "schedule", "validate", str(bad))
    assert code != 0 and "[revoked]" in out + err
