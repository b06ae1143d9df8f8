"""Oversized messages never reach the agent: it tells the broker the largest packet it accepts
(MQTT 5 Maximum-Packet-Size in CONNECT), so a compliant broker (Mosquitto here) drops a bigger
message for it instead of pushing megabytes into a small terminal's memory. The agent answers
nothing about what it never received, keeps its memory, and stays up.

MQTT 3.1.1 has no such property: the bytes arrive, and the agent lets go of them unread (no
answer either, the same contract); only the broker's own ``max_packet_size`` spares the memory."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.cli.county.client import CountyClient
from agent.cli.county.cmd import send_command
from agent.domain import protocol as p
from agent.domain import topics as t
from tests.mqtt.conftest import COUNTY, TERMINAL, agent_config, county_cfg, online

BIG = 8 * 1024 * 1024
SENDS = 3


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_agent_accepts_no_packet_over_its_limit(tmp_path, broker, spy, agents, protocol):
    agent = agents(agent_config(tmp_path, broker, protocol=protocol)).start()
    online(spy)
    m = county_cfg(broker)
    assert send_command(m, county=COUNTY, terminal=TERMINAL, cmd="ping", wait=10)["status"] == "ok"
    before = rss_kb(agent.proc.pid)
    big_cmd = json.dumps({"id": "c-big", "cmd": "ping", "pad": "x" * BIG}).encode()
    big_schedule = json.dumps({"version": 99, "items": [], "pad": "x" * BIG}).encode()
    sender = CountyClient(m, "big-sender")
    sender.connect()
    t0 = time.monotonic()
    try:
        for _ in range(SENDS):
            sender.publish(t.topic(COUNTY, TERMINAL, t.CMD), big_cmd)
            sender.publish(t.topic(COUNTY, TERMINAL, t.SCHEDULE), big_schedule)
    finally:
        sender.close()
    # the agent is up and answers at once; a reply or ack about a big message would come first
    reply = send_command(m, county=COUNTY, terminal=TERMINAL, cmd="ping", cmd_id="c-after", wait=10)
    assert reply is not None and reply["status"] == "ok", reply
    time.sleep(1.0)
    replies = [s.obj for s in spy.messages("cmd/reply") if s.at >= t0]
    assert [r["id"] for r in replies] == ["c-after"], replies
    assert [s.obj for s in spy.messages("schedule/ack") if s.at >= t0] == []
    grown = rss_kb(agent.proc.pid) - before
    if protocol == "5":
        assert grown < 4 * 1024, f"RSS grew by {grown} KB"
    assert agent.proc.poll() is None
    log = agent.log_text()
    dropped = log.count("was dropped unread")
    assert dropped == (0 if protocol == "5" else 2 * SENDS), log[-3000:]
    assert p.MAX_INCOMING_PACKET < BIG
