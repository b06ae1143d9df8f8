"""Last Will: a frozen agent (SIGSTOP: like a cut cable, no FIN reaches the broker) goes offline
within keepalive x 1.5; a killed one (the kernel closes the socket) at once.

The broker decides when a silent client is dead. Mosquitto 2.0.11 (this machine) sweeps for
expired keepalives only once every ~6 s, on a whole-second clock (``keepalive__check``: ``last
check + 5 < now``), so its will can come up to ~7 s after the 1.5 x keepalive deadline; the bound
below allows that sweep and nothing else. See docs/performance.md for measured delays.
"""

from __future__ import annotations

import json
import queue
import signal
import time

from agent.cli.county.client import CountyClient
from agent.domain import topics as t
from tests.mqtt.conftest import COUNTY, TERMINAL, agent_config, county_cfg, online

KEEPALIVE = 4
BROKER_SWEEP_S = 7.0  # Mosquitto 2.0.11's keepalive sweep period + whole-second rounding


def offline_after(spy, t0: float, timeout: float):
    return spy.wait(
        lambda s: s.at >= t0 and s.obj["state"] == "offline", timeout, "offline", suffix="state"
    )


def retained_state(broker) -> dict:
    """What a subscriber that arrives now is given on the terminal's state topic: the retained
    message, or an AssertionError when the broker keeps none."""
    cc = CountyClient(county_cfg(broker), f"late-{time.time_ns() % 10**9}")
    cc.connect()
    try:
        cc.subscribe([t.topic(COUNTY, TERMINAL, t.STATE)])
        try:
            msg = cc.messages.get(timeout=5)
        except queue.Empty:
            raise AssertionError("no retained state message") from None
    finally:
        cc.close()
    assert msg.retain, "a message for a new subscriber that is not flagged retained"
    return json.loads(msg.payload)


def test_sigstop_goes_offline_within_keepalive_and_a_half(tmp_path, broker, spy, agents):
    agent = agents(agent_config(tmp_path, broker, keepalive=KEEPALIVE)).start()
    up = online(spy).obj
    t0 = time.monotonic()
    agent.kill(signal.SIGSTOP)
    will = offline_after(spy, t0, KEEPALIVE * 1.5 + BROKER_SWEEP_S + 2)
    waited = will.at - t0
    assert waited <= KEEPALIVE * 1.5 + BROKER_SWEEP_S, f"will after {waited:.2f} s"
    assert will.obj["reason"] == "will" and will.obj["session"] == up["session"]
    # the will replaced the retained "online": a county view started now sees the terminal offline
    kept = retained_state(broker)
    assert (kept["state"], kept["reason"], kept["session"]) == ("offline", "will", up["session"])
    agent.kill(signal.SIGCONT)
    # the thawed agent notices, reconnects with a newer session and says online again
    back = online(spy, after=will.at, timeout=20).obj
    assert back["session"] > up["session"]


def test_sigkill_goes_offline_at_once(tmp_path, broker, spy, agents):
    agent = agents(agent_config(tmp_path, broker, keepalive=30)).start()
    online(spy)
    t0 = time.monotonic()
    agent.kill(signal.SIGKILL)
    agent.proc.wait(5)
    will = offline_after(spy, t0, 5)
    assert will.at - t0 < 1.0
    assert will.obj["reason"] == "will"
    assert TERMINAL in will.topic
    assert retained_state(broker)["state"] == "offline"
