"""A schedule that names no time zone runs in the terminal's configured ``timezone``."""

from __future__ import annotations

import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

from agent.adapters.schedule_files import ScheduleStore, parse_untrusted
from agent.domain.records import utc_text
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from tests.helpers import write_config

ZONE = "America/Sao_Paulo"  # UTC-3 all year: 11 h from the old Asia/Shanghai default


def one_off_in(zone: str, start: float) -> dict:
    local = dt.datetime.fromtimestamp(start, ZoneInfo(zone)).replace(tzinfo=None)
    return {
        "id": "once",
        "at": local.isoformat(timespec="seconds"),
        "course": {"id": "c1", "title": "Course", "media": "c1.wav"},
    }


def test_a_document_without_a_zone_takes_the_stores_zone(tmp_path) -> None:
    data = json.dumps({"version": 1, "items": [one_off_in(ZONE, time.time() + 3600)]}).encode()
    store = ScheduleStore(tmp_path, timezone=ZONE)
    assert store.apply(data, "a").status == "applied"
    assert "timezone" not in json.loads(store.path("terminal").read_text())  # not frozen in
    assert store.load("terminal").tz.key == ZONE
    assert store.load("terminal", timezone="Europe/Berlin").tz.key == "Europe/Berlin"
    named = json.dumps({"version": 2, "timezone": "Asia/Tokyo", "items": []}).encode()
    store.apply(named, "b")
    assert store.load("terminal").tz.key == "Asia/Tokyo"
    assert parse_untrusted(data, "x", timezone=ZONE).tz.key == ZONE


def test_the_runtime_plans_in_the_configured_zone(tmp_path) -> None:
    cfg = load_config(write_config(tmp_path, timezone=ZONE))
    start = time.time() + 3600
    data = json.dumps({"version": 1, "items": [one_off_in(ZONE, start)]}).encode()
    ScheduleStore(cfg.state_dir).apply(data, "usb")
    rt = Runtime(cfg)
    rt.open()
    try:
        assert rt.core.layers["terminal"].tz.key == ZONE
        (first, *_) = rt.status_snapshot()["upcoming"]
        assert first["start"] == utc_text(int(start))
    finally:
        rt.shutdown()


def test_stationctl_next_plans_in_the_stations_zone(tmp_path, capsys) -> None:
    from agent.cli.stationctl import main

    config = write_config(tmp_path, timezone=ZONE)
    start = time.time() + 86400
    path = tmp_path / "usb.json"
    path.write_text(json.dumps({"version": 1, "items": [one_off_in(ZONE, start)]}))
    assert main(["schedule", "next", str(path), "-c", str(config), "--json", "--days", "2"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    expected = dt.datetime.fromtimestamp(int(start), ZoneInfo(ZONE))
    assert row["start"] == expected.isoformat(timespec="minutes")
