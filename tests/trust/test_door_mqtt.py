"""The MQTT door: a real agent (trust.signatures: required) on a private Mosquitto gets the attack
table on its schedule topic, forged and old trust updates on the county's trust topic, and bad
commands on its cmd topic; each is answered with its reason and nothing is applied."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.cli.county.client import CountyClient
from agent.domain import topics as t
from tests.helpers import write_config
from tests.mqtt.conftest import county_cfg, fast_mqtt, online
from tests.trust.attacks import BASELINE, REVOKED_KEY, baseline, expect, schedule_attacks
from tests.trust.pki import COUNTY, TERMINAL, command_bytes, make_pki, schedule_bytes

WAIT = 20.0


class County:
    """Publishes as the county and waits for the terminal's answer to each message."""

    def __init__(self, broker, spy) -> None:
        self.cc = CountyClient(county_cfg(broker), f"county-test-{time.time_ns() % 10**9}")
        self.cc.connect()
        self.spy = spy

    def send(self, topic: str, data: bytes, answer: str, retain: bool = True) -> dict:
        before = len(self.spy.messages(answer, TERMINAL))
        self.cc.publish(topic, data, qos=1, retain=retain)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            seen = self.spy.messages(answer, TERMINAL)
            if len(seen) > before:
                return seen[before].obj
            time.sleep(0.05)
        raise AssertionError(f"no {answer} for a message on {topic}")


def test_attack_table_over_mqtt(tmp_path: Path, broker, spy, agents) -> None:
    pki = make_pki(tmp_path / "keys")
    trust = {"signatures": "required", "roots_dir": str(pki.roots_dir)}
    config = write_config(tmp_path, mqtt=fast_mqtt(broker), trust=trust)
    agents(config).start()
    online(spy, timeout=30)
    county = County(broker, spy)
    own = t.topic(COUNTY, TERMINAL, t.SCHEDULE)
    trust_topic = t.county_trust(COUNTY)
    try:
        ack = county.send(trust_topic, pki.revocations(1, [REVOKED_KEY]), t.TRUST_ACK)
        assert ack["status"] == "applied" and ack["version"] == 1, ack
        ack = county.send(own, baseline(pki), t.SCHEDULE_ACK)
        assert ack["status"] == "applied" and ack["version"] == BASELINE, ack
        lines = ["", "MQTT door (schedule topic):"]
        for attack in schedule_attacks(pki):
            ack = county.send(own, attack.data, t.SCHEDULE_ACK)
            expect(attack, ack["status"], ack["reasons"])
            assert ack["applied"]["terminal"] == BASELINE, (attack.name, ack)
            lines.append(f"{attack.name:30} {ack['status']:8} {ack['reasons'][0][:90]}")

        # The channel says the layer: a county-wide document on this terminal's topic, and one
        # terminal's document on the county topic, are both refused.
        ack = county.send(own, pki.sign(schedule_bytes(30)), t.SCHEDULE_ACK)
        assert ack["status"] == "rejected" and "[wrong_terminal]" in ack["reasons"][0], ack
        ack = county.send(t.county_schedule(COUNTY), baseline(pki), t.SCHEDULE_ACK)
        assert ack["status"] == "rejected" and "[wrong_terminal]" in ack["reasons"][0], ack

        # Trust updates: a county key cannot forge one; an older list than the applied one is
        # refused; the list in force stays.
        forged = pki.sign(
            json.dumps({"version": 9, "issued": "2026-01-01T00:00:00Z", "revoked": []}).encode(),
            kind="trust",
            to="all",
        )
        ack = county.send(trust_topic, forged, t.TRUST_ACK)
        assert ack["status"] == "rejected" and "[not_a_root]" in ack["reasons"][0], ack
        ack = county.send(trust_topic, pki.revocations(2, [REVOKED_KEY, "c-01-x"]), t.TRUST_ACK)
        assert ack["status"] == "applied" and ack["version"] == 2, ack
        ack = county.send(trust_topic, pki.revocations(1, []), t.TRUST_ACK)
        assert ack["status"] == "stale" and "not newer" in ack["reasons"][0], ack
        assert ack["applied"]["county"] == 2
        lines.append("trust: forged by a county key -> not_a_root; older list -> stale")

        # Commands: signed, replayed, expired, unsigned, for another terminal.
        cmd_topic = t.topic(COUNTY, TERMINAL, t.CMD)
        good = pki.sign(command_bytes("cmd-1"), kind="command", to=TERMINAL)
        reply = county.send(cmd_topic, good, t.CMD_REPLY, retain=False)
        assert reply["status"] == "ok" and reply["id"] == "cmd-1", reply
        reply = county.send(cmd_topic, good, t.CMD_REPLY, retain=False)
        assert reply["status"] == "duplicate" and reply["id"] == "cmd-1", reply
        old = command_bytes("cmd-2", issued=time.time() - 3600, expires_in=600)
        reply = county.send(
            cmd_topic, pki.sign(old, kind="command", to=TERMINAL), t.CMD_REPLY, retain=False
        )
        assert reply["status"] == "error" and reply["error"] == "expired", reply
        assert reply["id"] == "cmd-2"
        reply = county.send(cmd_topic, command_bytes("cmd-3"), t.CMD_REPLY, retain=False)
        assert reply["status"] == "error" and reply["error"] == "unsigned", reply
        other = pki.sign(command_bytes("cmd-4"), kind="command", to="t-002")
        reply = county.send(cmd_topic, other, t.CMD_REPLY, retain=False)
        assert reply["status"] == "error" and reply["error"] == "wrong_terminal", reply
        forever = command_bytes("cmd-5", expires_in=30 * 86400)
        reply = county.send(
            cmd_topic, pki.sign(forever, kind="command", to=TERMINAL), t.CMD_REPLY, retain=False
        )
        assert reply["status"] == "error" and reply["error"] == "malformed", reply
        # The expired command's id was not claimed: sent again, validly signed, it runs.
        fresh = pki.sign(command_bytes("cmd-2"), kind="command", to=TERMINAL)
        reply = county.send(cmd_topic, fresh, t.CMD_REPLY, retain=False)
        assert reply["status"] == "ok", reply
        lines.append("cmd: ok, duplicate, expired, unsigned, wrong_terminal, too long -> refused")
        print("\n".join(lines))
    finally:
        county.cc.close()
    stored = json.loads((tmp_path / "state" / "schedule" / "terminal.json").read_text())
    assert stored["version"] == BASELINE
