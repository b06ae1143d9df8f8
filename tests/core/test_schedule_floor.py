"""The version floor of each schedule layer is kept apart from the document, so a stored document
that cannot be read (a damaged card, a bad write) does not open the door to older versions; the
agent raises an alarm for it, keeps running what it had and takes the same version again."""

from __future__ import annotations

import json

from agent.adapters.schedule_files import ScheduleStore
from agent.adapters.sqlite.store import Store
from agent.domain.schedule import ScheduleRejected
from agent.runtime.config import load_config
from agent.runtime.loop import Runtime
from tests.helpers import schedule, write_config

ALARM = "schedule_unreadable_terminal"


def doc(version: int) -> bytes:
    item = {
        "id": "w1",
        "weekly": {"days": ["mon"], "time": "19:30"},
        "course": {"id": "PH-01", "title": "党史", "media": "lesson.wav"},
    }
    return json.dumps(schedule(version, [item])).encode()


def corrupt(store: ScheduleStore, layer: str = "terminal") -> None:
    store.path(layer).write_bytes(b'{"version": 10, "items": [{"id": "\x00')


def test_floor_is_kept_apart_and_refuses_older_versions(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    assert store.apply(doc(10), "a").status == "applied"
    assert store.floor("terminal") == 10
    assert store.floor_path("terminal").read_text().strip() == "10"
    corrupt(store)
    try:
        store.load("terminal")
        raise AssertionError("the damaged document was read")
    except ScheduleRejected:
        pass
    older = store.apply(doc(9), "replay")
    assert older.status == "stale", older
    assert "10" in older.reasons[0] and older.previous_version == 10
    # the same version is taken again while no readable document is held ...
    again = store.apply(doc(10), "retained")
    assert (again.status, again.version) == ("applied", 10), again
    assert store.load("terminal").version == 10
    # ... but not once it is held
    assert store.apply(doc(10), "replay").status == "stale"
    assert store.apply(doc(11), "b").status == "applied"
    assert store.floor("terminal") == 11


def test_the_damaged_document_is_kept_aside_not_lost(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    store.apply(doc(10), "a")
    corrupt(store)
    damaged = store.path("terminal").read_bytes()
    assert store.apply(doc(10), "retained").status == "applied"
    aside = store.dir / "terminal.json.unreadable"
    assert aside.read_bytes() == damaged


def test_a_missing_document_keeps_the_floor(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    store.apply(doc(10), "a")
    store.path("terminal").unlink()
    assert store.apply(doc(9), "old").status == "stale"
    assert store.apply(doc(10), "retained").status == "applied"


def test_floor_from_the_document_when_the_floor_file_is_missing_or_bad(tmp_path) -> None:
    store = ScheduleStore(tmp_path)
    store.apply(doc(10), "a")
    store.floor_path("terminal").unlink()  # as written before floors existed
    assert store.apply(doc(10), "same").status == "stale"
    assert store.apply(doc(9), "older").status == "stale"
    store.floor_path("terminal").write_text("garbage\n")
    assert store.floor("terminal") is None
    assert store.apply(doc(10), "same").status == "stale"
    assert store.apply(doc(12), "newer").status == "applied"
    assert store.floor("terminal") == 12


def test_a_floor_ahead_of_the_document_takes_that_version(tmp_path) -> None:
    """A power cut between the floor write and the document write leaves the floor ahead."""
    store = ScheduleStore(tmp_path)
    store.apply(doc(10), "a")
    store.floor_path("terminal").write_text("11\n")
    assert store.apply(doc(10), "old").status == "stale"
    assert store.apply(doc(11), "retained").status == "applied"


def _alarms(cfg) -> list[tuple[str, str | None, str]]:
    s = Store(cfg.db_path)
    try:
        return s.db.execute("SELECT name, cleared_at, detail FROM alarms ORDER BY id").fetchall()
    finally:
        s.close()


def test_unreadable_document_on_restart_raises_an_alarm_and_refuses_older(tmp_path) -> None:
    cfg = load_config(write_config(tmp_path))
    store = ScheduleStore(cfg.state_dir)
    store.apply(doc(10), "a")
    corrupt(store)

    rt = Runtime(cfg)
    rt.open()
    try:
        assert "terminal" not in rt.core.layers
        (name, cleared, detail), *_ = _alarms(cfg)
        assert (name, cleared) == (ALARM, None)
        info = json.loads(detail)
        assert info["layer"] == "terminal" and info["version_floor"] == 10
        assert "terminal.json" in info["reason"]
        assert rt.apply_schedule(doc(9), "replay", "terminal").status == "stale"
        assert rt.apply_schedule(doc(10), "retained", "terminal").status == "applied"
        assert rt.core.layers["terminal"].version == 10
    finally:
        rt.shutdown()
    rows = _alarms(cfg)
    assert len(rows) == 1 and rows[0][0] == ALARM and rows[0][1] is not None  # cleared

    rt = Runtime(cfg)  # and a restart with a good document raises nothing
    rt.open()
    try:
        assert rt.core.layers["terminal"].version == 10
    finally:
        rt.shutdown()
    assert len(_alarms(cfg)) == 1


def test_damage_while_running_keeps_the_layer_and_tells_the_listeners(tmp_path) -> None:
    cfg = load_config(write_config(tmp_path))
    ScheduleStore(cfg.state_dir).apply(doc(10), "a")
    rt = Runtime(cfg)
    rt.open()
    seen: list[tuple[str, str]] = []
    rt.listeners.append(lambda kind, payload: seen.append((kind, getattr(payload, "name", ""))))
    try:
        corrupt(rt.schedules)
        rt.reload_schedules("files changed")
        assert rt.core.layers["terminal"].version == 10  # still runs what it had
        assert ("alarm", ALARM) in seen
        rt.reload_schedules("again")  # an open alarm is not raised twice
        assert seen.count(("alarm", ALARM)) == 1
        assert [r[:2] for r in _alarms(cfg)] == [(ALARM, None)]
    finally:
        rt.shutdown()
