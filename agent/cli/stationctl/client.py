"""The control socket's client side (the server is agent/control.py): one JSON line out, one
back. Kept apart from the server so that stationctl starts without the server's imports."""

from __future__ import annotations

import json
import pwd
import socket
from pathlib import Path
from typing import Any


class AgentUnavailable(Exception):
    """The agent cannot be asked: ``reason`` is not_running, forbidden or timeout."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _encode(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()


def request(path: Path | str, cmd: str, *, timeout: float = 15.0, **args: Any) -> dict[str, Any]:
    """Send one request and return the answer; AgentUnavailable when nobody can be asked.

    A refusal by the agent itself (SO_PEERCRED) comes back as ``{"ok": false, "error":
    "forbidden"}``; a socket the user may not open raises AgentUnavailable("forbidden").
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AgentUnavailable("not_running", str(exc)) from None
        except PermissionError as exc:
            raise AgentUnavailable("forbidden", str(exc)) from None
        except TimeoutError:
            raise AgentUnavailable("timeout", "connect") from None
        except OSError as exc:
            raise AgentUnavailable("not_running", str(exc)) from None
        try:
            sock.sendall(_encode({"cmd": cmd, **args}))
        except TimeoutError:
            raise AgentUnavailable("timeout", cmd) from None
        except OSError:
            pass  # a refusing agent may have closed already; its answer is still to be read
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise AgentUnavailable("timeout", cmd) from None
        except OSError as exc:
            if not data:
                raise AgentUnavailable("not_running", str(exc)) from None
        if not data:
            raise AgentUnavailable("not_running", "the agent closed the connection")
        answer = json.loads(data.decode("utf-8"))
        if not isinstance(answer, dict):
            raise AgentUnavailable("not_running", "bad answer")
        return answer
    finally:
        sock.close()
