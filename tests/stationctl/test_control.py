"""The control socket's protocol and the attendance transaction, with a stand-in runtime.

The stand-in runs ``call``/``submit`` on its own single thread like the real core does, so the
server's threading is exercised; play/stop against the real agent are in test_agent.py.
"""

from __future__ import annotations

import grp
import json
import os
import queue
import socket
import stat
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.adapters.control_socket import ControlServer
from agent.adapters.sqlite.store import Store
from agent.cli.stationctl.client import AgentUnavailable, request
from agent.domain import core as c
from agent.runtime.attendance import AttendanceError, set_attendance
from tests.stationctl.fixture import build_station


class FakeRuntime:
    """Enough of agent.runtime.loop.Runtime for the control server: one 'core' thread."""

    def __init__(self, state: Path, admin_group: str = "stationadmin") -> None:
        self.cfg = SimpleNamespace(
            socket_path=state / "control.sock",
            admin_group=admin_group,
            terminal="t-001",
            county="c-01",
            content_dir=state.parent / "content",
        )
        self.store = Store(state / "agent.db")
        # No schedule in the stand-in core: a play request names media or an unknown course.
        self.core: Any = SimpleNamespace(
            current=None, find_course=lambda _course_id: None, handle=lambda _event: []
        )
        self.listeners: list[Any] = []
        self.started_wall = time.time()
        self.submitted: list[object] = []
        self.stall = threading.Event()  # set: the core thread is stuck
        self._q: queue.Queue[tuple[Any, Future[Any]]] = queue.Queue()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            fn, fut = self._q.get()
            while self.stall.is_set():
                time.sleep(0.01)
            try:
                fut.set_result(fn())
            except Exception as exc:
                fut.set_exception(exc)

    def call(self, fn: Any, timeout: float | None = 10.0) -> Any:
        fut: Future[Any] = Future()
        self._q.put((fn, fut))
        return fut if timeout is None else fut.result(timeout)

    def submit(self, event: object, timeout: float = 10.0) -> list[Any]:
        def handle() -> list[Any]:
            self.submitted.append(event)
            if isinstance(event, c.PlayCommand):
                return [c.Reply(True, f"playing {event.course_id}", {"record_id": "r-1"})]
            return [c.Reply(True, "nothing was playing", {"stopped": None})]

        return self.call(handle, timeout)

    def status_snapshot(self) -> dict[str, Any]:
        return {"playing": None, "upcoming": [], "started_at": "2026-11-29T00:00:00.000Z"}

    def close(self) -> None:
        """Close the store on the 'core' thread after what is queued there (the server logs its
        events there without waiting): closing it from here while the core thread writes an
        event is a use-after-close in sqlite3, which crashes the interpreter."""
        self.stall.clear()
        self.call(self.store.close)


@pytest.fixture
def served(tmp_path: Path):
    build_station(tmp_path)
    rt = FakeRuntime(tmp_path / "state")
    server = ControlServer(rt, core_timeout=1.0)
    server.start()
    yield rt, server
    server.stop()
    rt.close()


def raw(path: Path, payload: bytes) -> list[dict[str, Any]]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(str(path))
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return [json.loads(line) for line in data.splitlines()]


def test_json_lines_requests_and_answers(served) -> None:
    rt, server = served
    path = rt.cfg.socket_path
    answers = raw(
        path,
        b'{"cmd":"ping","id":7}\n'
        b"not json\n"
        b'{"cmd":"reboot"}\n'
        b'{"nocmd":1}\n'
        b'{"cmd":"play","course":"pig-1"}\n'
        b'{"cmd":"play"}\n'
        b'{"cmd":"stop"}\n'
        b'{"cmd":"status"}\n'
        b'{"cmd":"attendance","count":NaN}\n',
    )
    assert answers[0]["ok"] and answers[0]["id"] == 7 and answers[0]["data"]["pid"] == os.getpid()
    assert [a.get("error") for a in answers[1:4]] == [
        "bad_request",
        "unknown_command",
        "bad_request",
    ]
    assert answers[4]["ok"] and answers[4]["data"] == {"record_id": "r-1"}
    assert answers[5]["error"] == "bad_request"
    assert answers[6]["ok"]
    assert answers[7]["ok"] and answers[7]["data"]["pid"] == os.getpid()
    assert answers[8]["error"] == "bad_request"
    play, stop = rt.submitted
    assert isinstance(play, c.PlayCommand) and play.trigger == "admin"
    assert isinstance(stop, c.StopCommand) and stop.trigger == "admin"


def test_an_overlong_request_is_refused(served) -> None:
    rt, _ = served
    answers = raw(rt.cfg.socket_path, b'{"cmd":"ping","pad":"' + b"x" * 70000 + b'"}\n')
    assert answers == [
        {"ok": False, "error": "bad_request", "message": "request too long", "data": {}}
    ]


def test_a_stuck_core_gives_agent_busy_and_the_server_keeps_answering(served) -> None:
    rt, _ = served
    rt.stall.set()
    try:
        results: list[dict[str, Any]] = []
        t = threading.Thread(
            target=lambda: results.append(request(rt.cfg.socket_path, "stop", timeout=5))
        )
        t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        assert request(rt.cfg.socket_path, "ping", timeout=2)["ok"]  # not behind the stuck one
        assert time.monotonic() - t0 < 0.5
        t.join(5)
        assert results[0]["error"] == "agent_busy"
    finally:
        rt.stall.clear()


def test_socket_mode_without_and_with_the_admin_group(tmp_path: Path) -> None:
    rt = FakeRuntime(tmp_path, admin_group="no-such-group-here")
    server = ControlServer(rt)
    server.start()
    try:
        assert stat.S_IMODE(os.stat(rt.cfg.socket_path).st_mode) == 0o600
    finally:
        server.stop()
    assert not rt.cfg.socket_path.exists()
    group = grp.getgrgid(os.getgid()).gr_name
    server = ControlServer(rt, admin_group=group)
    server.start()
    try:
        st = os.stat(rt.cfg.socket_path)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid()
    finally:
        server.stop()
    rt.close()


def test_stale_socket_is_replaced_but_a_live_one_is_not_stolen(tmp_path: Path) -> None:
    rt = FakeRuntime(tmp_path)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(rt.cfg.socket_path))
    stale.close()  # a crash leaves the file behind with nobody listening
    first = ControlServer(rt)
    first.start()
    assert request(rt.cfg.socket_path, "ping")["ok"]
    second = ControlServer.start_for(rt)  # logs the problem, never raises
    assert second.sock is None
    assert request(rt.cfg.socket_path, "ping")["ok"]
    second.stop()
    assert rt.cfg.socket_path.exists()  # the second did not remove the first one's socket
    first.stop()
    with pytest.raises(AgentUnavailable) as exc:
        request(rt.cfg.socket_path, "ping")
    assert exc.value.reason == "not_running"
    rt.close()


# -- attendance ----------------------------------------------------------------------------------


def outbox_rows(store: Store, msg_id: str) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT payload FROM outbox WHERE kind='record' AND msg_id=?", (msg_id,)
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def test_attendance_over_the_socket_updates_requeues_and_logs(served) -> None:
    rt, _ = served
    store = rt.store
    before = store.get_record("00000000-0000-0000-0000-000000000007")
    assert before is not None and len(outbox_rows(store, before.record_id)) == 1
    answer = request(rt.cfg.socket_path, "attendance", count=31)
    assert answer["ok"], answer
    data = answer["data"]
    assert data["seq"] == 7 and data["attendance"] == 31 and data["queued"] is True
    after = store.get_record(before.record_id)
    assert after is not None and after.attendance == 31 and after.rev == before.rev + 1
    (msg,) = outbox_rows(store, before.record_id)  # replaced, not added
    assert msg["attendance"] == 31 and msg["rev"] == after.rev and msg["county"] == "c-01"
    ev = store.db.execute("SELECT kind, data FROM events ORDER BY id DESC LIMIT 1").fetchone()
    assert ev[0] == "attendance" and json.loads(ev[1])["attendance"] == 31
    # By record number, and by a unique prefix of the id.
    assert request(rt.cfg.socket_path, "attendance", count=9, record="2")["data"]["seq"] == 2
    rid3 = "00000000-0000-0000-0000-000000000003"
    assert store.get_record(rid3) is not None
    answer = request(rt.cfg.socket_path, "attendance", count=4, record="00000000")
    assert answer["error"] == "ambiguous"
    answer = request(rt.cfg.socket_path, "attendance", count=4, record="4")
    assert answer["error"] == "not_shown"  # a skipped session was never shown
    answer = request(rt.cfg.socket_path, "attendance", count=4, record="99")
    assert answer["error"] == "no_record"
    answer = request(rt.cfg.socket_path, "attendance", count=-1)
    assert answer["error"] == "bad_count"


def test_attendance_is_one_transaction(tmp_path: Path, monkeypatch) -> None:
    build_station(tmp_path)
    store = Store(tmp_path / "state" / "agent.db")
    rid = "00000000-0000-0000-0000-000000000007"
    before = store.get_record(rid)
    n_events = store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def broken(*_a: Any, **_k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "add_event", broken)
    with pytest.raises(OSError):
        set_attendance(store, "c-01", 12)
    assert store.get_record(rid) == before  # nothing half-done
    assert outbox_rows(store, rid)[0].get("attendance") is None
    assert store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == n_events
    store.close()


def test_attendance_on_the_session_playing_now_is_stored_and_not_yet_sent(tmp_path: Path) -> None:
    from agent.domain.records import Record

    build_station(tmp_path)
    store = Store(tmp_path / "state" / "agent.db")
    playing = Record(
        record_id="rec-open",
        seq=9,
        terminal="t-001",
        course_id="pig-1",
        title="正在播放",
        media="pig-1.wav",
        trigger="schedule",
        clock_state="synced",
        boot_id="b",
        started_at="2026-11-29T00:00:00.000Z",
    )
    store.insert_record(playing)
    rec, previous, queued = set_attendance(store, "c-01", 17)
    assert rec.record_id == "rec-open" and previous is None and queued is False
    assert rec.attendance == 17 and rec.rev == 2
    assert outbox_rows(store, "rec-open") == []  # it goes out when it closes
    with pytest.raises(AttendanceError):
        set_attendance(store, "c-01", 10001)
    store.close()
