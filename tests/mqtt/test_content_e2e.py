"""End to end, as a county runs it: `countyctl push-schedule` a slot, `countyctl content` says the
file is missing, `countyctl push-library` the manifest, the real agent fetches the course from a
real nginx, `countyctl content` says ready, and the course plays on time."""

from __future__ import annotations

import hashlib
import json
import time

from agent.adapters.sqlite.store import Store
from agent.testing.media import write_wav
from agent.testing.nginx import NginxServer
from tests.helpers import one_off, schedule, wait_for
from tests.mqtt.conftest import COUNTY, TERMINAL, agent_config, countyctl, online


def test_a_pushed_manifest_reaches_the_terminal_and_the_course_plays_on_time(
    tmp_path, broker, spy, agents
) -> None:
    www = tmp_path / "www"
    write_wav(www / "courses" / "pig.wav", 2.0, tone_hz=440)
    data = (www / "courses" / "pig.wav").read_bytes()
    nginx = NginxServer(tmp_path / "nginx", root=www).start()
    try:
        config = agent_config(tmp_path, broker)
        agent = agents(config).start()
        online(spy, timeout=30)
        slot = time.time() + 25
        doc = schedule(3, [one_off("pig", slot, "courses/pig.wav", course_id="PIG")])
        (tmp_path / "schedule.json").write_text(json.dumps(doc, ensure_ascii=False))
        pushed = countyctl(
            broker, "push-schedule", str(tmp_path / "schedule.json"), "--county", COUNTY,
            "--terminal", TERMINAL, "--wait", "20",
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr

        def content_says(code: int) -> bool:
            out = countyctl(broker, "content", "--county", COUNTY, "--wait", "1", "--json")
            return out.returncode == code

        wait_for(lambda: content_says(1), 30, 0.5, "countyctl content to report the gap")
        manifest = {
            "version": 1,
            "courses": [
                {
                    "id": "PIG",
                    "title": "生猪养殖",
                    "category": "农业技术",
                    "files": [
                        {
                            "path": "courses/pig.wav",
                            "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "sources": [nginx.url("courses/pig.wav")],
                        }
                    ],
                }
            ],
        }
        (tmp_path / "library.json").write_text(json.dumps(manifest, ensure_ascii=False))
        pushed = countyctl(
            broker, "push-library", str(tmp_path / "library.json"), "--county", COUNTY,
            "--expect", TERMINAL, "--wait", "20",
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        wait_for(lambda: content_says(0), 30, 0.5, "countyctl content to report ready")
        landed = tmp_path / "content" / "courses" / "pig.wav"
        assert landed.read_bytes() == data
        assert time.time() < slot, "the fetch took until the slot; the test proves nothing"
        record = spy.wait(
            lambda s: s.obj.get("outcome") == "completed", 40, "the record", suffix="record"
        )
        assert record.obj["course_id"] == "PIG"
    finally:
        nginx.stop()
    agent.stop()
    store = Store(tmp_path / "state" / "agent.db", readonly=True)
    try:
        (planned, started) = store.db.execute(
            "SELECT planned_start, started_at FROM records WHERE course_id = 'PIG'"
        ).fetchone()
    finally:
        store.close()

    def ts(text: str) -> float:
        import datetime as dt

        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    assert abs(ts(started) - ts(planned)) < 1.0, (planned, started)
