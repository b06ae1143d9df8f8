"""The media gate: media is checked off the core thread, then handed to the player."""

from __future__ import annotations

import logging
import queue
import threading

from agent.adapters.media_files import HashCache, MediaError
from agent.adapters.media_files import check as check_media
from agent.domain import core as c
from agent.domain.schedule import is_url
from agent.runtime.host import Host

log = logging.getLogger("agent")

CANCELLED_KEPT = 256  # tokens remembered as cancelled; a stop older than that has long passed


class MediaGate:
    """Checks media off the core thread, then hands it to the player.

    Hashing a large video for its sha256 takes seconds on a small board (the result is cached
    per file version), so it runs on one worker thread, never on the core thread. The worker
    blocks on its queue: it wakes only when there is media to check. A stop that arrives while
    a check is running cancels the open that would follow it: the lock makes "check cancelled,
    then queue the open" and "mark cancelled, then queue the stop" atomic, so the player never
    opens a media after its stop.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.hashes = HashCache()
        self.lock = threading.Lock()
        self._cancelled: set[str] = set()
        self._jobs: queue.SimpleQueue[tuple[str, str, str | None, float, bool]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="media-check", daemon=True)
        self._thread.start()

    def submit(
        self, token: str, media: str, sha256: str | None, start_at: float, paused: bool
    ) -> None:
        self._jobs.put((token, media, sha256, start_at, paused))

    def cancel(self, token: str) -> None:
        with self.lock:
            self._cancelled.add(token)
            if len(self._cancelled) > CANCELLED_KEPT:
                self._cancelled = {token}
            self.host.player.stop(token)

    def _run(self) -> None:
        while True:
            token, media, sha256, start_at, paused = self._jobs.get()
            if is_url(media):
                mrl = media
            else:
                try:
                    content = self.host.cfg.content_dir
                    mrl = str(check_media(content, media, sha256, self.hashes))
                except MediaError as exc:
                    log.warning("media %s rejected: %s", media, exc.message)
                    self.host.post(c.MediaRejected(token, exc.reason, exc.message))
                    continue
                except Exception as exc:  # an unexpected failure must still reach the core
                    log.exception("media check of %s failed", media)
                    self.host.post(c.MediaRejected(token, "unreadable", str(exc)))
                    continue
            with self.lock:
                if token in self._cancelled:
                    continue
                player = self.host.player
                if paused:
                    player.preroll(token, mrl, start_at)
                else:
                    player.play(token, mrl, start_at)
