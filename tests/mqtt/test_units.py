"""The pure parts: back-off, outbox policy, payload builders and validators, topics, config
checks, the collector's dedupe, the county's view of late wills."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from agent.adapters.mqtt.link import with_msg_id
from agent.cli.county.collector import CollectorDb
from agent.cli.county.watch import Fleet
from agent.domain import protocol as p
from agent.domain import topics as t
from agent.domain.backoff import Backoff
from agent.domain.outbox import OTHER, RECORDS, OutboxPolicy, Row
from agent.runtime.config import ConfigError, load_config
from tests.helpers import write_config
from tests.mqtt.test_link import record


def test_backoff_window_follows_the_trouble():
    b = Backoff(10.0, 300.0, rand=lambda: 1.0)
    assert [b.next_delay(t) for t in (0.0, 3.0, 8.0, 60.0, 1000.0)] == [10, 10, 16, 120, 300]
    assert b.attempt == 5
    b.reset()
    assert (b.attempt, b.last_window) == (0, 10.0)
    half = Backoff(10.0, 300.0, rand=lambda: 0.5)
    assert half.next_delay(100.0) == 100.0  # on average, as long as the trouble so far
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_backoff_spreads_a_fleet_evenly():
    rng = random.Random(7)
    # 500 terminals, the broker away for 3 s: every window is [0, 10)
    delays = sorted(Backoff(10.0, 300.0, rng.random).next_delay(3.0) for _ in range(500))
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(10)]
    assert max(per_second) < 75 and sum(per_second) == 500


def rows(kind: str, ids: range, rev: int = 1) -> list[Row]:
    return [Row(i, f"m{i}", kind, kind, "{}", 1, False, rev if kind == "record" else None)
            for i in ids]  # fmt: skip


def test_policy_window_order_and_puback_confirmation():
    pol = OutboxPolicy(record_confirmation="puback", inflight_window=3)
    assert pol.want(OTHER) == 3
    batch = pol.take(OTHER, rows("event", range(1, 4)), 3)
    for mid, row in enumerate(batch, start=100):
        pol.sent(row, mid, 0.0)
    assert pol.want(OTHER) == 0 and pol.want(RECORDS) == 0
    assert pol.on_puback(100, True, 0.1) == 1
    assert pol.on_puback(999, True, 0.1) is None  # not ours (state, heartbeat)
    assert pol.want(OTHER) == 1 and pol.cursor[OTHER] == 3
    pol.take(OTHER, [], 1)
    assert pol.want(OTHER) == 0  # drained until woken
    pol.wake()
    assert pol.want(OTHER) == 1


def test_policy_records_wait_for_the_collector_ack():
    pol = OutboxPolicy(record_confirmation="ack", inflight_window=10, ack_window=3, ack_timeout=5)
    recs = pol.take(RECORDS, rows("record", range(1, 4)), 3)
    for mid, row in enumerate(recs, start=1):
        pol.sent(row, mid, 0.0)
    assert [pol.on_puback(m, True, 1.0) for m in (1, 2, 3)] == [None, None, None]
    assert pol.want(RECORDS) == 0  # the ack window is full
    assert pol.want(OTHER) == 10  # replies and events still flow
    assert pol.on_record_ack([("m1", 1), ("m2", 5)]) == 2
    assert pol.want(RECORDS) == 2
    assert pol.due_retries(3.0) == []
    retry = pol.due_retries(6.0)
    assert [r.id for r in retry] == [3]
    pol.sent(retry[0], 4, 6.0)
    assert pol.counters.republished == 1


def test_policy_ack_before_puback_and_rev():
    pol = OutboxPolicy(record_confirmation="ack", inflight_window=10)
    (r,) = pol.take(RECORDS, rows("record", range(1, 2), rev=2), 1)
    pol.sent(r, 7, 0.0)
    assert pol.on_record_ack([("m1", 1)]) == 0  # an ack for the older revision
    assert pol.on_record_ack([("m1", 2)]) == 1
    assert pol.on_puback(7, True, 0.1) is None  # confirmed already; just frees the slot
    assert pol.snapshot()["inflight"] == 0 and pol.snapshot()["awaiting_ack"] == 0


def test_policy_refusal_is_kept_and_retried():
    pol = OutboxPolicy(record_confirmation="puback", inflight_window=5, ack_timeout=2)
    (r,) = pol.take(OTHER, rows("event", range(1, 2)), 1)
    pol.sent(r, 1, 0.0)
    assert pol.on_puback(1, False, 0.0) is None
    assert pol.snapshot()["refused_pending"] == 1
    assert [x.id for x in pol.due_retries(2.0)] == [1]


def test_policy_reset_sends_everything_again_with_a_smaller_window():
    pol = OutboxPolicy(inflight_window=100)
    pol.take(OTHER, rows("event", range(1, 6)), 10)
    pol.reset(window=20)
    assert pol.cursor == {OTHER: 0, RECORDS: 0} and pol.want(OTHER) == 20


def test_heartbeat_fits_in_1kb():
    summary = {
        "uptime_s": 86400.0,
        "playing": {"record_id": "x" * 36, "course_id": "PH-01", "title": "长" * 300,
                    "trigger": "schedule", "phase": "playing", "position": 1.0, "length": 2.0},
        "schedule_versions": {"terminal": 1795907329, "county": 1795907330},
        "clock": "unsynced",
        "outbox": 12345,
        "link": {"state": "up", "rtt_ms": 12.5, "loss": 0.0},
        "device": {"blob": "y" * 2000},
    }  # fmt: skip
    hb = p.heartbeat(ts="2026-11-28T11:30:00.000Z", terminal="t-001", seq=1, session=3,
                     agent_version="0.1.0", summary=summary)  # fmt: skip
    assert len(p.dumps(hb)) <= p.HEARTBEAT_BUDGET
    assert hb["truncated"] == ["device"] and hb["link"]["state"] == "up"
    assert p.validate("heartbeat", hb) == []


def test_validators_name_every_problem():
    assert p.validate("cmd", {"id": "a b", "cmd": 3, "args": []}) == [
        "cmd.id: must be 1-64 letters, digits, '.', '_', ':' or '-'",
        "cmd.cmd: must be text",
        "cmd.args: must be an object",
    ]
    assert p.validate("record_ack", {"records": [{"record_id": "x", "rev": 0}]}) == [
        "record_ack.records[0]: must be {record_id: text, rev: >= 1}"
    ]
    assert p.validate("record", record(1)) == []
    assert p.validate("state", []) == ["state: must be a JSON object"]
    with pytest.raises(p.ProtocolError) as exc:
        p.decode(b'{"a": Infinity}', 100)
    assert exc.value.code == "malformed"
    with pytest.raises(p.ProtocolError) as exc:
        p.decode(b"{}" * 100, 100)
    assert exc.value.code == "too_large"


def test_topics():
    assert t.topic("c-01", "t-001", t.RECORD_ACK) == "rde/v1/c-01/t-001/record/ack"
    assert t.parse("rde/v1/c-01/t-001/record/ack") == t.Parsed("c-01", "t-001", "record/ack")
    assert t.parse("rde/v1/c-01/all/schedule").terminal == "all"
    assert t.parse("rde/v1/c-01/t-001/nope") is None
    assert t.parse("other/v1/c-01/t-001/state") is None
    assert t.county_schedule("c-01") in t.terminal_subscriptions("c-01", "t-001")


def test_msg_id_splice():
    assert json.loads(with_msg_id('{"a":1}', "m-1")) == {"msg_id": "m-1", "a": 1}
    assert json.loads(with_msg_id("{}", "m-2")) == {"msg_id": "m-2"}
    assert with_msg_id('{"msg_id":"x","a":1}', "m-3") == b'{"msg_id":"x","a":1}'


def test_config_section(tmp_path: Path):
    cfg = load_config(write_config(tmp_path, mqtt={"host": "broker.example", "protocol": "3.1.1"}))
    assert cfg.mqtt is not None and cfg.mqtt.protocol == "3.1.1"
    assert cfg.mqtt.effective_port == 1883 and cfg.mqtt.record_confirmation == "ack"
    assert load_config(write_config(tmp_path)).mqtt is None  # offline
    bad = {"host": "", "protocol": "4", "keepalive": 0, "backoff_min_seconds": 9,
           "backoff_max_seconds": 1, "tls": {"cert_file": "nope.crt"}, "colour": "red"}  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        load_config(write_config(tmp_path, mqtt=bad))
    text = str(exc.value)
    for key in ("mqtt.host", "mqtt.protocol", "mqtt.keepalive", "mqtt.colour", "mqtt.tls"):
        assert key in text, key


def test_collector_db_dedupes_and_keeps_the_newest_rev(tmp_path: Path):
    db = CollectorDb(tmp_path / "c.db")
    r = record(1)
    first = db.store([("record", "t-001", "x", r)])
    assert first["new"] == 1 and first["acks"][("c-01", "t-001")] == [(r["record_id"], 1)]
    again = db.store([("record", "t-001", "x", {**r, "rev": 2, "attendance": 9}),
                      ("record", "t-001", "x", r)])  # fmt: skip
    assert again["duplicates"] == 2
    row = db.db.execute("SELECT rev, attendance, deliveries FROM records").fetchone()
    assert row == (2, 9, 3)
    out = io.StringIO()
    assert db.export_csv(out) == 1 and r["record_id"] in out.getvalue()


def test_fleet_ignores_a_late_will():
    f = Fleet()
    state = "rde/v1/c-01/t-001/state"

    def msg(s: str, session: int) -> bytes:
        return json.dumps({"state": s, "session": session, "reason": "x"}).encode()

    assert "ONLINE" in f.update(state, msg("online", 5), now=0)
    assert "late will" in f.update(state, msg("offline", 4), now=1)
    assert f.rows(now=2)[0]["online"] is True
    assert "OFFLINE" in f.update(state, msg("offline", 5), now=3)
    hb = json.dumps({"seq": 1, "outbox": 3, "schedule_versions": {"terminal": 7}}).encode()
    f.update("rde/v1/c-01/t-001/heartbeat", hb, now=4)
    row = f.rows(now=6)[0]
    assert (row["heartbeat_age_s"], row["outbox"], row["schedule_versions"]) == (
        2,
        3,
        {"terminal": 7},
    )
    assert "t-001" in f.table(now=6)


def test_example_config_block_is_valid(tmp_path: Path):
    import yaml

    from tests.helpers import ROOT

    source = ROOT / "config" / "agent.example.yaml"
    block = yaml.safe_load(source.read_text())["mqtt"]
    if isinstance(block.get("tls"), dict):
        block["tls"].pop("ca_file", None)  # the example path does not exist here
    cfg = load_config(write_config(tmp_path, mqtt=block))
    from agent.adapters.mqtt.config import MqttConfig

    defaults = MqttConfig(host="x")
    for key, value in block.items():
        if key not in ("host", "tls"):
            assert getattr(cfg.mqtt, key) == getattr(defaults, key) == value, key


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a": 1, "a": 2}',
        b"{",
        b"[1,",
    ],
)
def test_decoder_is_strict(payload):
    with pytest.raises(p.ProtocolError):
        p.decode(payload, 1000)
    assert p.decode(b'{"a": [1, {"b": null}]}', 100) == {"a": [1, {"b": None}]}
    with pytest.raises(p.ProtocolError, match="limit"):
        p.decode(b'{"a": "' + b"x" * 200 + b'"}', 100)
