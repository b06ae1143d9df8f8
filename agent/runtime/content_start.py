"""Starting the content service beside a running runtime, and what it is wired to."""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.runtime.content import ContentService


def _epoch(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def start_content(runtime: Any) -> ContentService:
    """The content worker for ``runtime``: told of every manifest and schedule change, shown in
    the status (``content``) and the heartbeat, stopped before the store closes."""

    def last_played() -> dict[str, float]:
        store = runtime.store
        if store is None:
            return {}
        plays = {media: _epoch(text) for media, text in store.last_played().items()}
        return {media: ts for media, ts in plays.items() if ts is not None}

    service = ContentService(
        runtime,
        runtime.executor.execute,
        runtime.library.courses,
        last_played,
    )
    runtime.library.on_change.append(service.kick)
    runtime.listeners.append(lambda kind, _payload: service.kick() if kind == "schedules" else None)
    runtime.status_providers["content"] = service.state.section
    runtime.summary_providers["content"] = service.state.summary
    runtime.on_shutdown.append(service.stop)
    runtime.content = service
    service.start()
    return service
