"""The outbox alarm: raised near the bound (messages or free disk), cleared with hysteresis,
persisted and queued for the county like every alarm; never by dropping anything."""

from __future__ import annotations

from agent.config import load_config
from agent.mqtt.alarm import ALARM, OutboxAlarm
from agent.runtime import Runtime
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
    # after a restart the alarm state comes from the alarms table, not from memory
    again = OutboxAlarm(rt, messages=10, free_mb=10**9)  # "disk nearly full"
    again.check()
    assert again.active is True
    store.close()
