"""The real agent killed with SIGKILL ten times in the middle of a download: each start goes on
from the ``.part`` it left, and the file lands once, verified, with little sent twice. The
manifest arrives through the inbox folder, as from a satellite datacast."""

from __future__ import annotations

import json
import os
import signal
import time

from agent.testing.nginx import write_random
from tests.helpers import start_agent, wait_for, write_config

SIZE = 12 * 1024 * 1024
KILLS = 10


def _part_size(content_dir) -> int:
    parts = list((content_dir / ".partial").glob("*.part"))
    return parts[0].stat().st_size if parts else 0


def test_sigkill_mid_download_resumes_from_the_part_file(tmp_path, nginx) -> None:
    sha = write_random(nginx.root / "big.bin", SIZE)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = write_config(
        tmp_path,
        schedule_dir="inbox",
        content={"max_kbps": 16000, "retry_seconds": 0.5},  # 2 MB/s: about 6 s for the file
    )
    manifest = {
        "version": 1,
        "courses": [
            {
                "id": "BIG",
                "title": "大文件",
                "files": [
                    {
                        "path": "courses/big.bin",
                        "size": SIZE,
                        "sha256": sha,
                        "sources": [nginx.url("big.bin")],
                    }
                ],
            }
        ],
    }
    drop = inbox / "library.json"
    drop.write_text(json.dumps(manifest, ensure_ascii=False))
    old = time.time() - 10
    os.utime(drop, (old, old))
    content = tmp_path / "content"
    dest = content / "courses" / "big.bin"
    seen = kills_mid_download = 0
    for _ in range(KILLS):
        agent = start_agent(config, log=tmp_path / "agent.log")
        try:
            wait_for(
                lambda floor=seen + 256 * 1024: _part_size(content) >= floor or dest.exists(),
                30,
                0.02,
                "the download to move on",
            )
        finally:
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
        if dest.exists():
            break
        kills_mid_download += 1
        now = _part_size(content)
        assert now >= seen, "a start began the file again instead of resuming"
        seen = now
    assert seen > 0, "never killed mid-download"
    agent = start_agent(config, log=tmp_path / "agent.log")
    try:
        wait_for(dest.exists, 60, 0.1, "the file to land")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
    assert dest.stat().st_size == SIZE
    from agent.testing.nginx import sha256_of

    assert sha256_of(dest) == sha
    assert not list((content / ".partial").glob("*.part"))
    assert kills_mid_download >= KILLS // 2, kills_mid_download
    # nginx's own count includes what sat in killed sockets' buffers; what the agent took over
    # from the .part is what its last start reports.
    from agent.adapters.sqlite.store import Store

    store = Store(tmp_path / "state" / "agent.db", readonly=True)
    try:
        rows = store.db.execute("SELECT data FROM events WHERE kind = 'content_fetched'")
        fetched = [json.loads(data) for (data,) in rows]
    finally:
        store.close()
    assert len(fetched) == 1, fetched
    assert fetched[0]["resumed_from"] >= seen > 0
    assert (inbox / "applied" / "library.json").exists()
