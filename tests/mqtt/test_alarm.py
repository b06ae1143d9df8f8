"""The outbox alarm: raised near the bound (messages or free disk), cleared with hysteresis,
persisted and queued for the county like every alarm; never by dropping anything."""

from __future__ import annotations

from pathlib import Path

from agent.adapters.mqtt.alarm import ALARM, OutboxAlarm
from agent.adapters.sqlite.store import Store
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from tests.helpers import write_config
from tests.mqtt.conftest import enqueue_records


class NoPlayer:
    def preroll(self, *a: object) -> None: ...
    def play(self, *a: object) -> None: ...
    def start(self, *a: object) -> None: ...
    def stop(self, *a: object) -> None: ...
    def unload(self) -> None: ...


def test_outbox_alarm_raises_and_clears(tmp_path):
    cfg = load_config(write_config(tmp_path))  # offline: no mqtt section, the alarm still runs
    rt = Runtime(cfg, player=NoPlayer())
    rt.open()
    store = rt.store
    alarm = OutboxAlarm(rt, messages=10, free_mb=0)
    ids = enqueue_records(cfg.state_dir, 9)
    alarm.check()
    assert alarm.active is False
    enqueue_records(cfg.state_dir, 1, start_seq=10)
    alarm.next_check = 0
    alarm.check()
    assert alarm.active is True
    events = store.db.execute("SELECT payload FROM outbox WHERE kind='event'").fetchall()
    assert len(events) == 1 and ALARM in events[0][0] and '"raised"' in events[0][0]
    assert store.outbox_depth("record") == 10  # nothing dropped
    # hysteresis: 9 records + the event are still >= 80 % of the bound
    store.db.execute("DELETE FROM outbox WHERE msg_id=?", (ids[0],))
    alarm.next_check = 0
    alarm.check()
    assert alarm.active is True
    store.db.execute("DELETE FROM outbox WHERE kind='record'")
    alarm.next_check = 0
    alarm.check()
    assert alarm.active is False
    rows = store.db.execute("SELECT name, cleared_at FROM alarms").fetchall()
    assert rows[0][0] == ALARM and rows[0][1] is not None
    # After a restart the state comes from the alarms table, not from memory. Inside the
    # hysteresis band (8 or 9 messages for a bound of 10; no disk limit) only the table can tell
    # "still raised" from "clear": a fresh alarm must follow it both ways and say nothing new.
    fill_to(store, cfg.state_dir, 9)
    events_before = outbox_events(store)
    cleared = OutboxAlarm(rt, messages=10, free_mb=0)
    cleared.check()
    assert cleared.active is False  # the table says cleared: 9 is not enough to raise
    fill_to(store, cfg.state_dir, 10)
    cleared.next_check = 0
    cleared.check()
    assert cleared.active is True
    raised_events = outbox_events(store)
    assert raised_events == events_before + 1
    fill_to(store, cfg.state_dir, 9)
    restarted = OutboxAlarm(rt, messages=10, free_mb=0)
    restarted.check()
    assert restarted.active is True  # the table says raised: 9 is not low enough to clear
    assert outbox_events(store) == raised_events  # no second "raised", no false "cleared"
    store.close()


def outbox_events(store: Store) -> int:
    return store.db.execute("SELECT COUNT(*) FROM outbox WHERE kind='event'").fetchone()[0]


def fill_to(store: Store, state_dir: Path, depth: int) -> None:
    """Add or confirm (delete) records until exactly ``depth`` messages wait in the outbox."""
    have = store.outbox_depth()
    if have < depth:
        enqueue_records(state_dir, depth - have, start_seq=1000 + have, prefix=f"F{depth}")
    for _ in range(have - depth):
        store.db.execute(
            "DELETE FROM outbox WHERE id=(SELECT MIN(id) FROM outbox WHERE kind='record')"
        )
    assert store.outbox_depth() == depth
