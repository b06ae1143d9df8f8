"""Key rotation with no reinstall: the county certifies a new key, signs with it and revokes the old
one while a terminal is offline; when it comes back, the retained documents alone bring it up to
date, and the old key no longer signs anything it takes."""

from __future__ import annotations

import time
from pathlib import Path

from agent.domain import topics as t
from tests.helpers import write_config
from tests.mqtt.conftest import fast_mqtt, online
from tests.trust.pki import COUNTY, TERMINAL, make_pki, schedule_bytes
from tests.trust.test_door_mqtt import County

WAIT = 30.0


def wait_ack(spy, suffix: str, version: int, after: float) -> dict:
    seen = spy.wait(
        lambda s: s.at > after and s.obj["version"] == version,
        WAIT,
        f"{suffix} for v{version}",
        suffix=suffix,
    )
    return seen.obj


def test_rotation_while_a_terminal_is_offline(tmp_path: Path, broker, spy, agents) -> None:
    pki = make_pki(tmp_path / "keys")
    trust = {"signatures": "required", "roots_dir": str(pki.roots_dir)}
    config = write_config(tmp_path, mqtt=fast_mqtt(broker), trust=trust)
    agent = agents(config).start()
    online(spy, timeout=30)
    county = County(broker, spy)
    own = t.topic(COUNTY, TERMINAL, t.SCHEDULE)
    try:
        ack = county.send(own, pki.sign(schedule_bytes(5), to=TERMINAL), t.SCHEDULE_ACK)
        assert ack["status"] == "applied", ack
        agent.stop()

        # Offline: the county rotates. New key, certified by the root; the schedule re-signed
        # with it; the old key revoked. All of it retained on the broker.
        pki.certify("next", "c-01-k2")
        county.cc.publish(own, pki.sign(schedule_bytes(6), key="next", to=TERMINAL), retain=True)
        county.cc.publish(t.county_trust(COUNTY), pki.revocations(1, ["c-01-k1"]), retain=True)

        back = time.monotonic()
        agent.start()
        ack = wait_ack(spy, t.SCHEDULE_ACK, 6, back)
        assert ack["status"] == "applied", ack
        ack = wait_ack(spy, t.TRUST_ACK, 1, back)
        assert ack["status"] == "applied", ack

        ack = county.send(own, pki.sign(schedule_bytes(7), to=TERMINAL), t.SCHEDULE_ACK)
        assert ack["status"] == "rejected" and "[revoked]" in ack["reasons"][0], ack
        ack = county.send(own, pki.sign(schedule_bytes(7), key="next", to=TERMINAL), t.SCHEDULE_ACK)
        assert ack["status"] == "applied" and ack["version"] == 7, ack
    finally:
        county.cc.close()
