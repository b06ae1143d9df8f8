"""The satellite folder: a real agent (trust.signatures: required) takes the attack table, a
forged and an old trust update from its inbox folder; each file ends in ``rejected/`` or
``stale/`` with its reason beside it, and the baseline schedule stays in force."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.helpers import wait_for, write_config
from tests.trust.attacks import BASELINE, REVOKED_KEY, baseline, expect, schedule_attacks
from tests.trust.pki import make_pki

WAIT = 30.0


def drop(inbox: Path, name: str, data: bytes) -> None:
    """A file as the datacast leaves it, old enough to be taken at once."""
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(data)
    past = time.time() - 60
    os.utime(tmp, (past, past))
    tmp.rename(inbox / f"{name}.json")


def verdict(inbox: Path, name: str) -> tuple[str, list[str]] | None:
    for status in ("applied", "rejected", "stale"):
        if (inbox / status / f"{name}.json").exists():
            reason = inbox / status / f"{name}.json.reason.txt"
            return status, reason.read_text().splitlines() if reason.exists() else []
    return None


def test_attack_table_over_the_inbox_folder(tmp_path: Path, agents) -> None:
    pki = make_pki(tmp_path / "keys")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    trust = {"signatures": "required", "roots_dir": str(pki.roots_dir)}
    config = write_config(tmp_path, schedule_dir=str(inbox), trust=trust)
    agent = agents(config).start()
    drop(inbox, "00-trust-v2", pki.revocations(2, [REVOKED_KEY]))
    drop(inbox, "01-baseline", baseline(pki))
    for name in ("00-trust-v2", "01-baseline"):
        got = wait_for(lambda n=name: verdict(inbox, n), WAIT, what=f"{name} filed")
        assert got[0] == "applied", (name, got, agent.log_text()[-2000:])

    attacks = schedule_attacks(pki)
    for attack in attacks:
        drop(inbox, attack.name, attack.data)
    forged = pki.sign(
        json.dumps({"version": 9, "issued": "2026-01-01T00:00:00Z", "revoked": []}).encode(),
        kind="trust",
        to="all",
    )
    drop(inbox, "trust-forged-by-county-key", forged)
    drop(inbox, "trust-older-list", pki.revocations(1, []))

    lines = ["", "Satellite folder:"]
    for attack in attacks:
        status, reasons = wait_for(
            lambda a=attack: verdict(inbox, a.name), WAIT, what=f"{attack.name} filed"
        )
        expect(attack, status, reasons)
        lines.append(f"{attack.name:30} {status:8} {reasons[0][:90]}")
    status, reasons = wait_for(lambda: verdict(inbox, "trust-forged-by-county-key"), WAIT)
    assert status == "rejected" and "[not_a_root]" in reasons[0], reasons
    status, reasons = wait_for(lambda: verdict(inbox, "trust-older-list"), WAIT)
    assert status == "stale" and "not newer than the applied version 2" in reasons[0], reasons
    print("\n".join(lines))
    stored = json.loads((tmp_path / "state" / "schedule" / "terminal.json").read_text())
    assert stored["version"] == BASELINE
    revs = json.loads((tmp_path / "state" / "trust" / "revocations.json").read_text())
    assert revs["version"] == 2 and revs["revoked"] == [REVOKED_KEY]
