"""The outbox alarm: the outbox is bounded by the disk, never by dropping records.

When too many messages wait (a link down for weeks) or the state folder's file system runs low,
an ``outbox_backlog`` alarm is raised through the same path as every other alarm (the store's
``alarms`` view, ``agent.runtime.ports.AlarmLog``: alarms table, event log, and an ``event``
message for the county). It clears with hysteresis. Runs on the core thread (a per-tick hook), every ``CHECK_S`` seconds; it works
offline too, where it matters most.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

from agent.domain.health import AlarmChange
from agent.runtime.ports import LinkStore

log = logging.getLogger("agent.adapters.mqtt")

ALARM = "outbox_backlog"
CHECK_S = 30.0
DEFAULT_MESSAGES = 20000
DEFAULT_FREE_MB = 200.0


class OutboxAlarm:
    def __init__(self, runtime: Any, messages: int, free_mb: float) -> None:
        self.runtime = runtime
        self.messages = messages
        self.free_bytes = free_mb * 1024 * 1024
        self.next_check = 0.0
        self.active: bool | None = None  # unknown until the first check reads the alarms table

    def verdict(self, depth: int, free: float) -> bool:
        """Raised (True) or clear (False), with hysteresis around the current state."""
        if self.active:
            return depth >= self.messages * 0.8 or free < self.free_bytes * 1.25
        return depth >= self.messages or free < self.free_bytes

    def check(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + CHECK_S
        store: LinkStore | None = self.runtime.store
        if store is None:
            return
        if self.active is None:
            self.active = ALARM in store.alarms.active()
        depth = store.outbox_depth()
        try:
            free = float(shutil.disk_usage(self.runtime.cfg.state_dir).free)
        except OSError:
            free = float("inf")
        want = self.verdict(depth, free)
        if want == self.active:
            return
        self.active = want
        detail = {
            "messages": depth,
            "records": store.outbox_depth("record"),
            "free_mb": round(free / 1048576, 1) if free != float("inf") else None,
            "limit_messages": self.messages,
            "limit_free_mb": round(self.free_bytes / 1048576, 1),
        }
        change = AlarmChange(
            ALARM, "raised" if want else "cleared", self.runtime.clock.wall(), "warning", detail
        )
        clock = self.runtime.core.clock_state() if self.runtime.core is not None else None
        store.alarms.persist(
            change, self.runtime.cfg.terminal, self.runtime.cfg.county, clock_state=clock
        )
        log.log(
            logging.WARNING if want else logging.INFO, "outbox alarm %s: %s", change.action, detail
        )


def install_outbox_alarm(runtime: Any, mqtt_cfg: Any) -> OutboxAlarm:
    messages = mqtt_cfg.outbox_alarm_messages if mqtt_cfg is not None else DEFAULT_MESSAGES
    free_mb = mqtt_cfg.outbox_alarm_free_mb if mqtt_cfg is not None else DEFAULT_FREE_MB
    alarm = OutboxAlarm(runtime, messages, free_mb)
    runtime.hooks_per_tick.append(alarm.check)
    return alarm
