"""The documented --json shapes of stationctl (docs/stationctl.md), and a small checker.

A shape is a type, a tuple of alternatives (``None`` for null), a dict of required keys (no
others allowed; ``dict`` itself means any object) or a one-element list (every item).
"""

from __future__ import annotations

from typing import Any

from agent.domain.records import RECORD_COLUMNS

NUM = (int, float)
OPT_STR = (str, None)

RECORD = {name: object for name in RECORD_COLUMNS}

ALARM = {"name": str, "severity": str, "raised_at": str, "cleared_at": OPT_STR}

MONTH = {
    "month": str,
    "timezone": str,
    "course_id": OPT_STR,
    "records": int,
    "collective_sessions": {"held": int, "target": int, "met": bool},
    "attendance_total": int,
    "completed": int,
    "courses_completed": [str],
    "shown_without_attendance": int,
    "missed": int,
    "missed_reasons": [{"outcome": str, "reason": str, "count": int}],
    "open": int,
    "by_outcome": dict,
}

UPCOMING = {
    "start": str,
    "local_start": str,
    "course_id": str,
    "title": str,
    "media": str,
    "media_status": str,
    "media_problem": OPT_STR,
}

STATUS = {
    "station": {"terminal": str, "county": str, "timezone": str},
    "now": str,
    "local_now": str,
    "agent": {
        "running": (bool, None),
        "answered": bool,
        "reason": OPT_STR,
        "since": OPT_STR,
        "clean_stop": (bool, None),
        "pid": (int, None),
    },
    "problems": [{"code": str, "severity": str, "message": str, "advice": str, "data": dict}],
    "playing": (dict, None),
    "schedule_versions": dict,
    "upcoming": [UPCOMING],
    "link": {"state": OPT_STR, "mode": OPT_STR, "rtt_ms": (*NUM, None), "loss_pct": (*NUM, None)},
    "broker": {"connected": (bool, None), "last_contact": OPT_STR, "configured": bool},
    "clock": {"state": str, "kernel_synced": (bool, None), "last_known_good": OPT_STR},
    "disk": (
        {"path": str, "free_bytes": int, "total_bytes": int, "free_pct": NUM},
        None,
    ),
    "display": str,
    "records_unsent": (int, None),
    "oldest_unsent": OPT_STR,
    "alarms": [ALARM],
    "recent_alarms": [ALARM],
    "month": (MONTH, None),
    "last_failure": (dict, None),
    "store": OPT_STR,
    "config_error": OPT_STR,
}

# The agent's own status snapshot (``agent.runtime.status.StatusSnapshot.to_dict``): what the
# control socket answers to ``status`` and the MQTT status message carries before its envelope.
# These are its declared fields; the adapters' sections (mqtt, monitor, alarms, link...) come
# beside them.
AGENT_PLAYING = {
    "record_id": str,
    "course_id": str,
    "title": str,
    "trigger": str,
    "phase": str,
    "position": NUM,
    "length": NUM,
}

AGENT_UPCOMING = {
    "start": str,
    "local_start": str,
    "item_id": str,
    "course_id": str,
    "title": str,
    "media": str,
    "layer": str,
    "priority": int,
}

AGENT_STATUS = {
    "uptime_s": NUM,
    "playing": (AGENT_PLAYING, None),
    "schedule_versions": dict,
    "clock": str,
    "outbox": int,
    "terminal": str,
    "county": str,
    "started_at": str,
    "boot_id": str,
    "timezone": str,
    "upcoming": [AGENT_UPCOMING],
    "open_records": int,
    "records_unsent": int,
}

EVENT = {
    "id": int,
    "ts": str,
    "local_time": str,
    "level": str,
    "kind": str,
    "message": str,
    "data": (dict, str, None),
}

SESSION = {
    "start": str,
    "end": str,
    "local_start": str,
    "local_end": str,
    "layer": str,
    "item_id": str,
    "course_id": str,
    "title": str,
    "media": str,
    "media_status": str,
    "media_problem": OPT_STR,
    "now_playing": bool,
    "cut_by": OPT_STR,
    "readiness": (dict, None),
    "readiness_label": str,
}

SCHEDULE = {
    "versions": dict,
    "days": NUM,
    "sessions": [SESSION],
    "problems": [str],
    "readiness_known": bool,
}

CHECK = {
    "ok": bool,
    "checks": [{"name": str, "status": str, "message": str, "data": dict}],
}

ANSWER = {"ok": bool, "message": str, "data": dict}
ANSWER_ERROR = {"ok": bool, "message": str, "data": dict, "error": str}

ERROR = {"ok": bool, "error": str, "advice": OPT_STR}


def check(value: Any, shape: Any, where: str = "$") -> None:
    """Raise AssertionError naming the first place where ``value`` does not fit ``shape``."""
    if shape is object:
        return
    if shape is None:
        assert value is None, f"{where}: expected null, got {value!r}"
        return
    if isinstance(shape, tuple):
        errors = []
        for alt in shape:
            try:
                check(value, alt, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(" / ".join(errors))
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{where}: expected an object, got {value!r}"
        assert set(value) == set(shape), (
            f"{where}: keys differ: missing {set(shape) - set(value)}, "
            f"extra {set(value) - set(shape)}"
        )
        for key, sub in shape.items():
            check(value[key], sub, f"{where}.{key}")
        return
    if isinstance(shape, list):
        assert isinstance(value, list), f"{where}: expected a list, got {value!r}"
        for i, item in enumerate(value):
            check(item, shape[0], f"{where}[{i}]")
        return
    if shape is float:
        shape = NUM
    if shape is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r}"
        return
    assert isinstance(value, shape), f"{where}: expected {shape}, got {value!r}"
