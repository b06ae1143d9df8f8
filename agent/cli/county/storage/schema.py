"""The collector's own schema, as numbered migrations both back-ends run in order.

Version 1 is the schema of the first SQLite collector (records, events, rejected), written with
``IF NOT EXISTS`` so a database made by that collector passes through it unchanged; version 2
adds what the county report needs (more record columns, link summaries, heartbeat hours, state
changes, content readiness). ``schema_version`` holds the number applied. Placeholders in braces
are the dialect's types: ``{serial}`` an auto-numbered key, ``{real}``, ``{blob}``.

Times are stored as UTC text in one form (``2026-11-28T11:30:00.000Z``), so comparing text
compares instants in both back-ends.
"""

from __future__ import annotations

RECORD_COLUMNS_V1 = [
    "record_id",
    "rev",
    "terminal",
    "county",
    "seq",
    "course_id",
    "title",
    "media",
    "trigger",
    "outcome",
    "reason",
    "schedule_layer",
    "schedule_version",
    "item_id",
    "planned_start",
    "started_at",
    "ended_at",
    "played_seconds",
    "media_duration",
    "completion",
    "attendance",
    "clock_state",
]
RECORD_COLUMNS_V2 = ["occurrence_key", "position", "resumed_from", "boot_id", "ts"]
RECORD_COLUMNS = RECORD_COLUMNS_V1 + RECORD_COLUMNS_V2
RECORD_TIMES = ("planned_start", "started_at", "ended_at", "ts")

V1 = [
    """CREATE TABLE IF NOT EXISTS records (
        record_id TEXT PRIMARY KEY, rev INTEGER NOT NULL, terminal TEXT NOT NULL,
        county TEXT NOT NULL, seq INTEGER, course_id TEXT, title TEXT, media TEXT,
        trigger TEXT, outcome TEXT, reason TEXT, schedule_layer TEXT, schedule_version INTEGER,
        item_id TEXT, planned_start TEXT, started_at TEXT, ended_at TEXT,
        played_seconds {real}, media_duration {real}, completion {real}, attendance INTEGER,
        clock_state TEXT, payload TEXT NOT NULL, first_received_at TEXT NOT NULL,
        received_at TEXT NOT NULL, deliveries INTEGER NOT NULL DEFAULT 1)""",
    "CREATE INDEX IF NOT EXISTS records_terminal ON records(terminal, seq)",
    """CREATE TABLE IF NOT EXISTS events (
        msg_id TEXT PRIMARY KEY, terminal TEXT NOT NULL, county TEXT NOT NULL, ts TEXT,
        type TEXT, name TEXT, state TEXT, severity TEXT, payload TEXT NOT NULL,
        received_at TEXT NOT NULL, deliveries INTEGER NOT NULL DEFAULT 1)""",
    """CREATE TABLE IF NOT EXISTS rejected (
        id {serial}, topic TEXT NOT NULL, payload {blob}, reason TEXT NOT NULL,
        received_at TEXT NOT NULL)""",
]

V2 = [
    *(f"ALTER TABLE records ADD COLUMN {c} {{t_{c}}}" for c in RECORD_COLUMNS_V2),
    "ALTER TABLE records ADD COLUMN stored_by TEXT",
    "UPDATE records SET ts = received_at WHERE ts IS NULL",
    "CREATE INDEX records_month ON records(county, started_at)",
    "CREATE INDEX records_planned ON records(county, planned_start)",
    "ALTER TABLE events ADD COLUMN raised_at TEXT",
    "ALTER TABLE events ADD COLUMN cleared_at TEXT",
    "ALTER TABLE events ADD COLUMN detail TEXT",
    "CREATE INDEX events_terminal ON events(county, terminal, ts)",
    """CREATE TABLE link_summaries (
        msg_id TEXT PRIMARY KEY, terminal TEXT NOT NULL, county TEXT NOT NULL, mode TEXT,
        period_start TEXT NOT NULL, period_end TEXT NOT NULL, availability {real},
        loss {real}, rtt_p50_ms {real}, rtt_p95_ms {real}, longest_outage_s {real},
        payload TEXT NOT NULL, received_at TEXT NOT NULL,
        deliveries INTEGER NOT NULL DEFAULT 1)""",
    "CREATE INDEX link_summaries_terminal ON link_summaries(county, terminal, period_start)",
    """CREATE TABLE heartbeat_hours (
        county TEXT NOT NULL, terminal TEXT NOT NULL, hour TEXT NOT NULL,
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, beats INTEGER NOT NULL,
        PRIMARY KEY (county, terminal, hour))""",
    """CREATE TABLE state_changes (
        county TEXT NOT NULL, terminal TEXT NOT NULL, session INTEGER NOT NULL,
        state TEXT NOT NULL, reason TEXT NOT NULL, ts TEXT, received_at TEXT NOT NULL,
        payload TEXT NOT NULL, PRIMARY KEY (county, terminal, session, state, reason))""",
    "CREATE INDEX state_changes_received ON state_changes(county, received_at)",
    """CREATE TABLE content (
        county TEXT NOT NULL, terminal TEXT NOT NULL, readiness TEXT, readiness_ts TEXT,
        files TEXT, files_total INTEGER, status_ts TEXT, received_at TEXT NOT NULL,
        PRIMARY KEY (county, terminal))""",
]

MIGRATIONS: list[list[str]] = [V1, V2]
VERSION = len(MIGRATIONS)

COLUMN_TYPES = {
    "t_occurrence_key": "TEXT",
    "t_position": "{real}",
    "t_resumed_from": "TEXT",
    "t_boot_id": "TEXT",
    "t_ts": "TEXT",
}


def statements(version: int, types: dict[str, str]) -> list[str]:
    """The SQL of migration ``version`` (1-based) with the dialect's types filled in."""
    out = []
    for sql in MIGRATIONS[version - 1]:
        for key, value in COLUMN_TYPES.items():
            sql = sql.replace("{" + key + "}", value)
        out.append(sql.format(**types))
    return out
