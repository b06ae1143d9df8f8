"""Demo driver (called by scripts/demo): a county content server (private nginx) with the course
media, a course manifest and a schedule from the county, the agent fetching the courses and then
playing them; shows the records at the end."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.cli.county.demo import (  # noqa: E402
    CountySide,
    demo_keys,
    sign_for_demo,
    with_private_broker,
)
from agent.runtime.config import load_config  # noqa: E402
from agent.testing.media import write_wav  # noqa: E402
from agent.testing.nginx import NginxServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description="station agent demo")
    ap.add_argument("--config", default=str(ROOT / "config" / "demo.yaml"))
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = ap.parse_args()
    cfg = load_config(args.config)
    tz = ZoneInfo(cfg.timezone)

    # The county's content server: the course media on a private nginx, never in the terminal's
    # content folder; the terminal fetches them through its content pipeline.
    demo_dir = cfg.state_dir.parent
    www = demo_dir / "county-www"
    courses = {
        "PH-01": (
            "courses/party-history-01.wav",
            "党史学习 第一讲",
            "Party history, lecture 1",
            8,
            440,
        ),
        "FT-02": ("courses/farming-tech-02.wav", "农业技术 第二讲", "Farming techniques 2", 6, 660),
    }
    for path, _title, _en, seconds, tone in courses.values():
        write_wav(www / path, seconds, tone_hz=tone)
        (cfg.content_dir / path).unlink(missing_ok=True)  # fetched afresh every run
    nginx = NginxServer(demo_dir / "nginx", root=www).start()
    print(f"demo: county content server (nginx) on 127.0.0.1:{nginx.port} serving {www}")
    version = int(time.time())
    manifest = {
        "version": version,
        "courses": [
            {
                "id": cid,
                "title": title,
                "title_en": title_en,
                "category": "党史" if cid.startswith("PH") else "农业技术",
                "files": [
                    {
                        "path": path,
                        "size": (www / path).stat().st_size,
                        "sha256": hashlib.sha256((www / path).read_bytes()).hexdigest(),
                        "sources": [nginx.url(path)],
                    }
                ],
            }
            for cid, (path, title, title_en, _s, _t) in courses.items()
        ],
    }
    now = dt.datetime.now(tz).replace(microsecond=0)
    first, second = now + dt.timedelta(seconds=25), now + dt.timedelta(seconds=40)
    schedule = {
        "version": version,
        "timezone": cfg.timezone,
        "items": [
            {
                "id": "demo-collective-1",
                "priority": 20,
                "at": first.replace(tzinfo=None).isoformat(),
                "slot_minutes": 0.25,
                "course": {
                    "id": "PH-01",
                    "title": "党史学习 第一讲",
                    "media": "courses/party-history-01.wav",
                },
            },
            {
                "id": "demo-farming-2",
                "at": second.replace(tzinfo=None).isoformat(),
                "slot_minutes": 0.25,
                "course": {
                    "id": "FT-02",
                    "title": "农业技术 第二讲",
                    "media": "courses/farming-tech-02.wav",
                },
            },
            {
                "id": "demo-weekly",
                "weekly": {"days": ["mon", "wed", "fri"], "time": "19:30"},
                "course": {
                    "id": "PH-01",
                    "title": "党史学习 第一讲",
                    "media": "courses/party-history-01.wav",
                },
            },
        ],
    }
    # The county's keys: a province root (installed in the terminal's trust.roots_dir) and a
    # county key it certifies; the schedule and the manifest go out signed.
    signer = demo_keys(demo_dir, cfg.county, cfg.trust.roots_dir)
    print(
        f"demo: signing with county key {signer[0].key_id} (root installed in {cfg.trust.roots_dir})"
    )
    inbox = cfg.schedule_dir or (cfg.state_dir / "inbox")
    inbox.mkdir(parents=True, exist_ok=True)
    drop = inbox / f"demo-schedule-{version}.json"
    signed = sign_for_demo(
        json.dumps(schedule, ensure_ascii=False, indent=1).encode(),
        signer,
        "schedule",
        terminal=cfg.terminal,  # this terminal's own layer, as the unsigned demo file was
    )
    drop.write_bytes(signed)
    old = time.time() - 10
    os.utime(drop, (old, old))  # a finished datacast file
    print(
        f"demo: schedule v{version} dropped into {inbox}; slots at {first:%H:%M:%S} and {second:%H:%M:%S} ({cfg.timezone})"
    )

    # MQTT: a private Mosquitto on a free port unless the config names a broker; the county's
    # view (state, heartbeats, records, acks) is printed beside the agent's log as [county] lines.
    config_path, broker = with_private_broker(Path(args.config), cfg)
    county = CountySide(load_config(config_path), cfg.state_dir.parent / "county.db").start()
    county.publish_library(
        sign_for_demo(json.dumps(manifest, ensure_ascii=False).encode(), signer, "manifest")
    )
    print(f"demo: course manifest v{version} published for the county ({len(courses)} courses)")
    duration = ["--duration", str(args.duration)] if args.duration else []
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "-c", str(config_path), *duration], cwd=ROOT
    )
    try:
        agent.wait()
    except KeyboardInterrupt:
        agent.send_signal(signal.SIGINT)
        agent.wait()
    finally:
        county.stop()
        if broker is not None:
            broker.stop()
        nginx.stop()
    print("\ndemo: viewing records in the local store:")
    subprocess.run(
        [sys.executable, "-m", "agent.cli.stationctl", "-c", args.config, "records"], cwd=ROOT
    )
    return agent.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
