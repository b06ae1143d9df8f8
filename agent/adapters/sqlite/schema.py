"""The terminal database's schema: what every table holds, and how a healthy file is recognised.

Tables
- ``records``  one row per viewing record; ``outcome`` is NULL while the record is open.
- ``outbox``   messages waiting to leave the terminal, in order; removed only when confirmed.
- ``events``   the agent's own event log (notable events, not debug chatter) for stationctl.
- ``alarms``   current and past alarms (raised/cleared), one row per raise.
- ``kv``       small durable values (session counter, plan cursor, seen command ids...).

``mqtt_commands`` (see ``commands.py``) is made on first use by the MQTT link, not here.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    record_id        TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL UNIQUE,
    occurrence_key   TEXT,
    terminal         TEXT NOT NULL,
    course_id        TEXT NOT NULL,
    title            TEXT NOT NULL,
    media            TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    schedule_layer   TEXT,
    schedule_version INTEGER,
    item_id          TEXT,
    planned_start    TEXT,
    started_at       TEXT,
    ended_at         TEXT,
    played_seconds   REAL NOT NULL DEFAULT 0,
    media_duration   REAL,
    position         REAL NOT NULL DEFAULT 0,
    completion       REAL NOT NULL DEFAULT 0,
    outcome          TEXT,
    reason           TEXT,
    clock_state      TEXT NOT NULL,
    boot_id          TEXT NOT NULL,
    attendance       INTEGER,
    resumed_from     TEXT,
    rev              INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_open ON records(outcome) WHERE outcome IS NULL;
CREATE INDEX IF NOT EXISTS records_occurrence ON records(occurrence_key);
CREATE INDEX IF NOT EXISTS records_planned ON records(planned_start);
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    topic      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    qos        INTEGER NOT NULL DEFAULT 1,
    retain     INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_msg ON outbox(msg_id);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      TEXT NOT NULL,
    level   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL,
    data    TEXT
);
CREATE TABLE IF NOT EXISTS alarms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    raised_at  TEXT NOT NULL,
    cleared_at TEXT,
    detail     TEXT
);
CREATE INDEX IF NOT EXISTS alarms_active ON alarms(name) WHERE cleared_at IS NULL;
CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Every table and index SCHEMA makes: a store that has them all opens without a write.
SCHEMA_OBJECTS = frozenset(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", SCHEMA))
