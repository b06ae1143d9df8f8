"""The control protocol's limits, error codes and answer lines, shared by server and handlers."""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 64 * 1024
MAX_CLIENTS = 8
CLIENT_IDLE_S = 30.0
CORE_TIMEOUT_S = 10.0
SOCKET_MODE = 0o660

# Error codes in answers (stationctl turns them into the admin's language).
FORBIDDEN = "forbidden"
BAD_REQUEST = "bad_request"
UNKNOWN_COMMAND = "unknown_command"
BUSY = "agent_busy"
INTERNAL = "internal"
BAD_MEDIA = "bad_media"
BUSY_MESSAGE = "the agent was busy and did not take the request in time; nothing was done"
MAX_ID = 128  # characters of an echoed request id


def error(code: str, message: str, **data: Any) -> dict[str, Any]:
    """A refusal: ``ok`` false, the code stationctl translates, and what it needs to say why."""
    return {"ok": False, "error": code, "message": message, "data": data}


def encode(obj: dict[str, Any]) -> bytes:
    """One answer line (UTF-8 JSON, compact, newline-terminated)."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
