"""Fixtures for the county tests: a private PostgreSQL database per test (created and dropped
on the machine's server; the tests that need it skip, saying why, when no server answers), the
storage under test for each back-end, a private Mosquitto, and message builders that follow
docs/protocol.md."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli.county.broker import PrivateBroker
from agent.cli.county.storage import Item, Storage, open_storage
from agent.domain import protocol as p
from agent.domain.records import utc_text

PG_SERVER = "postgresql://{user}@127.0.0.1:5432/postgres"
PG_USERS = ("postgres", "root")
COUNTY = "c-01"


def _admin_url() -> tuple[str | None, str]:
    """A URL on which this machine's server lets us create databases, or why not."""
    try:
        import psycopg
    except ImportError as exc:
        return None, f"psycopg is not installed: {exc}"
    why = "no PostgreSQL server answers at 127.0.0.1:5432"
    for user in PG_USERS:
        url = PG_SERVER.format(user=user)
        try:
            with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return url, ""
        except psycopg.Error as exc:
            why = f"PostgreSQL at 127.0.0.1:5432 refused user {user}: {str(exc).strip()[:200]}"
    return None, why


_ADMIN: tuple[str | None, str] | None = None


def admin_url() -> str:
    global _ADMIN
    if _ADMIN is None:
        _ADMIN = _admin_url()
    url, why = _ADMIN
    if url is None:
        pytest.skip(why)
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty database (unique name) on the machine's PostgreSQL; dropped afterwards."""
    import psycopg

    admin = admin_url()
    name = f"county_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "county.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    s = open_storage(db_url)
    yield s
    s.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path / "broker", extra=["max_inflight_messages 200"]).start()
    yield b
    b.stop()


# -- messages as terminals send them --------------------------------------------------------------


def at(text: str) -> float:
    """Epoch seconds of a local (Asia/Shanghai) time 'YYYY-MM-DD HH:MM'."""
    local = dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(
        tzinfo=dt.timezone(dt.timedelta(hours=8))
    )
    return local.timestamp()


def record(
    terminal: str,
    seq: int,
    *,
    start: str | None,
    outcome: str = "completed",
    trigger: str = "schedule",
    completion: float = 1.0,
    played: float = 1800.0,
    attendance: int | None = None,
    reason: str | None = None,
    rev: int = 1,
    occurrence_key: str | None = None,
    record_id: str | None = None,
    course: str = "PH-01",
    county: str = COUNTY,
) -> dict[str, Any]:
    """A record as docs/protocol.md shows it; ``start`` local time or None (never started)."""
    rid = record_id or str(uuid.uuid4())
    planned = utc_text(at(start)) if start else None
    return {
        "msg_id": rid,
        "record_id": rid,
        "seq": seq,
        "terminal": terminal,
        "county": county,
        "course_id": course,
        "title": "党史学习 第一讲",
        "media": "courses/ph-01.mp4",
        "trigger": trigger,
        "clock_state": "synced",
        "boot_id": "b-1",
        "occurrence_key": occurrence_key or f"terminal/{rid}",
        "schedule_layer": "terminal" if trigger == "schedule" else None,
        "schedule_version": 7 if trigger == "schedule" else None,
        "item_id": "w1" if trigger == "schedule" else None,
        "planned_start": planned if trigger == "schedule" else None,
        "started_at": planned if outcome not in ("missed", "skipped") else None,
        "ended_at": utc_text(at(start) + played) if start else None,
        "played_seconds": played if outcome not in ("missed", "skipped") else 0.0,
        "media_duration": 1800.0,
        "position": completion * 1800.0,
        "completion": completion,
        "outcome": outcome,
        "reason": reason,
        "attendance": attendance,
        "resumed_from": None,
        "rev": rev,
        "ts": planned or utc_text(at("2026-10-01 08:00")),
    }


def event(terminal: str, name: str, state: str, when: str, **detail: Any) -> dict[str, Any]:
    ts = utc_text(at(when))
    return {
        "msg_id": f"{terminal}-{name}-{state}-{ts}",
        "ts": ts,
        "terminal": terminal,
        "county": COUNTY,
        "type": "alarm",
        "name": name,
        "state": state,
        "severity": "warning",
        "raised_at": ts if state == "raised" else None,
        "cleared_at": ts if state == "cleared" else None,
        "detail": detail,
        "clock": "synced",
    }


def heartbeat(terminal: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "ts": utc_text(at("2026-10-01 08:00")),
        "terminal": terminal,
        "seq": seq,
        "session": 1,
        "version": "0.1.0",
        "uptime_s": 60.0 * seq,
        "clock": "synced",
        "playing": None,
        "schedule_versions": {"terminal": 7},
        "outbox": 0,
        **extra,
    }


def state(terminal: str, value: str, session: int, reason: str = "connect") -> dict[str, Any]:
    return {
        "ts": utc_text(at("2026-10-01 08:00")),
        "terminal": terminal,
        "county": COUNTY,
        "state": value,
        "session": session,
        "reason": reason,
        "boot_id": "b-1",
        "agent_version": "0.1.0",
        "protocol": "5",
        "clock": "synced",
        "v": 1,
    }


def link_summary(terminal: str, start: str, availability: float = 1.0) -> dict[str, Any]:
    s = at(start)
    return {
        "msg_id": f"{terminal}-link-{s}",
        "ts": utc_text(s + 3600),
        "terminal": terminal,
        "county": COUNTY,
        "mode": "telecom",
        "period_start": utc_text(s),
        "period_end": utc_text(s + 3600),
        "seconds": 3600.0,
        "availability": availability,
        "loss": 0.01,
        "rtt_p50_ms": 40.0,
        "rtt_p95_ms": 90.0,
        "longest_outage_s": 0.0,
        "clock": "synced",
    }


def item(kind: str, obj: dict[str, Any], terminal: str | None = None) -> Item:
    """An item as the collector's classifier makes it (the topic's terminal and county)."""
    term = terminal or obj["terminal"]
    county = obj.get("county", COUNTY)
    suffix = {"link_summary": "link/summary"}.get(kind, kind)
    topic = f"rde/v1/{county}/{term}/{suffix}"
    return Item(kind, county, term, topic, obj=obj, payload=p.dumps(obj))
