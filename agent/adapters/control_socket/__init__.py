"""The local control socket: how ``stationctl`` asks the running agent to act.

A Unix stream socket at ``cfg.socket_path``, owned by the agent, mode 0660 with group
``cfg.admin_group`` (0600 when that group does not exist): the file mode keeps everyone else out,
and every connection is checked again with SO_PEERCRED (uid 0, the agent's own uid, or a member
of the admin group), so a loosened mode does not open the door and a refused user gets a clear
answer instead of silence.

Protocol: JSON lines. Each request is one object ``{"cmd": NAME, ...}`` (an optional ``id``,
text or a whole number, is echoed); each answer is one object ``{"ok": bool, "message": str,
"data": {...}, "error": code}`` (``error`` only when not ok). Commands: ping, status, play, stop,
attendance. Every line gets exactly one answer, whatever it holds.

    server.py    ControlServer: the socket file, its mode, the accept loop, client threads
    peers.py     peer credentials (SO_PEERCRED) and who may control the agent
    handlers.py  RequestHandlers: one line in, one answer out; the commands; call_or_nothing
    wire.py      limits, error codes, answer lines

The client side is agent/cli/stationctl/client.py (``request``), kept apart so that stationctl
starts without the server's imports.
"""

from .handlers import RequestHandlers, call_or_nothing
from .peers import (
    admin_gid,
    admitted_by_mode,
    is_permitted,
    overflow_uid,
    peer_credentials,
    process_groups,
    user_name,
)
from .server import ControlServer
from .wire import (
    BAD_MEDIA,
    BAD_REQUEST,
    BUSY,
    BUSY_MESSAGE,
    CLIENT_IDLE_S,
    CORE_TIMEOUT_S,
    FORBIDDEN,
    INTERNAL,
    MAX_CLIENTS,
    MAX_ID,
    MAX_LINE,
    SOCKET_MODE,
    UNKNOWN_COMMAND,
)

__all__ = [
    "BAD_MEDIA",
    "BAD_REQUEST",
    "BUSY",
    "BUSY_MESSAGE",
    "CLIENT_IDLE_S",
    "CORE_TIMEOUT_S",
    "FORBIDDEN",
    "INTERNAL",
    "MAX_CLIENTS",
    "MAX_ID",
    "MAX_LINE",
    "SOCKET_MODE",
    "UNKNOWN_COMMAND",
    "ControlServer",
    "RequestHandlers",
    "admin_gid",
    "admitted_by_mode",
    "call_or_nothing",
    "is_permitted",
    "overflow_uid",
    "peer_credentials",
    "process_groups",
    "user_name",
]
