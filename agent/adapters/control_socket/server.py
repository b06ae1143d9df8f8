"""``ControlServer``: the socket file, its permissions, the accept loop and one thread per client.

The accept is blocking: the server thread sleeps until a client comes, and ``stop`` wakes it at
once with ``shutdown()``. Each connection gets a short-lived handler thread (at most
``MAX_CLIENTS`` at once); nothing here ever runs on, or waits inside, the core thread.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .handlers import RequestHandlers
from .peers import admin_gid, admitted_by_mode, is_permitted, peer_credentials, user_name
from .wire import (
    BAD_REQUEST,
    BUSY,
    CLIENT_IDLE_S,
    CORE_TIMEOUT_S,
    FORBIDDEN,
    MAX_CLIENTS,
    MAX_LINE,
    SOCKET_MODE,
    encode,
    error,
)

log = logging.getLogger("agent.adapters.control_socket")


class ControlServer:
    """Serve the control socket for a Runtime (see the package docstring)."""

    def __init__(
        self,
        runtime: Any,
        path: Path | None = None,
        admin_group: str | None = None,
        *,
        core_timeout: float = CORE_TIMEOUT_S,
    ) -> None:
        self.runtime = runtime
        cfg = runtime.cfg
        self.path = Path(path or cfg.socket_path)
        self.admin_group = cfg.admin_group if admin_group is None else admin_group
        self.core_timeout = core_timeout
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._inode: tuple[int, int] | None = None
        self.requests = RequestHandlers(runtime, core_timeout)
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = (
            self.requests.commands
        )

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def start_for(cls, runtime: Any) -> ControlServer:
        """Start the server; never raises (the agent plays courses without its socket too)."""
        server = cls(runtime)
        try:
            server.start()
        except OSError as exc:
            log.error("control socket %s not available: %s", server.path, exc)
            server._log_event("error", f"The control socket {server.path} is not available: {exc}")
        return server

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            # Nobody can connect before listen(), so the mode is right before the door opens.
            os.chmod(self.path, self._socket_mode())
            sock.listen(16)  # blocking accept: the thread sleeps until a client comes
        except OSError:
            sock.close()
            raise
        st = os.stat(self.path)
        self._inode = (st.st_dev, st.st_ino)
        self.sock = sock
        self.thread = threading.Thread(target=self._serve, name="control-socket", daemon=True)
        self.thread.start()
        log.info("control socket listening at %s", self.path)

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        try:
            probe.connect(str(self.path))
        except OSError:
            os.unlink(self.path)  # left over from a crash: nobody answers on it
            return
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, f"another agent answers on {self.path}")

    def _socket_mode(self) -> int:
        """0660 with the admin group on the socket, else 0600 (root and the agent only).

        Under systemd with ``PrivateUsers=yes`` the admin group is not mapped into the agent's
        user namespace and cannot be named in chown(); the state directory is setgid
        stationadmin there, so the socket is born in that group and 0660 is still right.
        """
        gid = admin_gid(self.admin_group)
        if gid is None:
            log.warning(
                "admin group %r does not exist; control socket is for root only", self.admin_group
            )
            return 0o600
        try:
            os.chown(self.path, -1, gid)
            return SOCKET_MODE
        except OSError as exc:
            if os.stat(self.path.parent).st_mode & stat.S_ISGID:
                return SOCKET_MODE
            log.warning(
                "cannot give %s to group %s (%s); root only", self.path, self.admin_group, exc
            )
            return 0o600

    def stop(self) -> None:
        self._stop.set()
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once
            except OSError:
                pass  # not connected-state on some kernels: close() below still ends it
        if self.thread is not None:
            self.thread.join(2.0)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        try:
            st = os.stat(self.path)
            if self._inode == (st.st_dev, st.st_ino):
                os.unlink(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("control socket %s not removed: %s", self.path, exc)

    # -- connections -----------------------------------------------------------------------------

    def _serve(self) -> None:
        sock = self.sock
        if sock is None:
            log.error("control socket: serve() called before start()")
            return
        while not self._stop.is_set():
            try:
                conn, _addr = sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                self._refuse(conn, BUSY, "too many stationctl connections at once; try again")
                continue
            threading.Thread(
                target=self._client, args=(conn,), name="control-client", daemon=True
            ).start()

    def _refuse(self, conn: socket.socket, code: str, message: str, **data: Any) -> None:
        try:
            conn.settimeout(1.0)
            conn.sendall(encode(error(code, message, **data)))
        except OSError as exc:
            log.debug("control: refusal (%s) not delivered, the client left: %s", code, exc)
        finally:
            conn.close()

    def _client(self, conn: socket.socket) -> None:
        try:
            pid, uid, gid = peer_credentials(conn)
            permitted = is_permitted(pid, uid, gid, self.admin_group)
            if not (permitted or admitted_by_mode(uid, self.path)):
                log.warning("control: refused %s (uid %d, pid %d)", user_name(uid), uid, pid)
                self._refuse(
                    conn,
                    FORBIDDEN,
                    f"user {user_name(uid)} may not control the agent: only root and members "
                    f"of group {self.admin_group} may",
                    user=user_name(uid),
                    group=self.admin_group,
                )
                return
            conn.settimeout(CLIENT_IDLE_S)
            with conn, conn.makefile("rb") as reader:
                while not self._stop.is_set():
                    line = reader.readline(MAX_LINE + 1)
                    if not line:
                        return
                    if len(line) > MAX_LINE:
                        conn.sendall(encode(error(BAD_REQUEST, "request too long")))
                        return
                    conn.sendall(encode(self.handle_line(line, uid=uid)))
        except OSError as exc:
            log.debug("control: connection ended: %s", exc)
        finally:
            self._slots.release()

    def handle_line(self, line: bytes, *, uid: int = 0) -> dict[str, Any]:
        """One request line -> one answer; never raises (see ``RequestHandlers.answer``)."""
        return self.requests.answer(line, uid)

    def _log_event(self, level: str, message: str) -> None:
        store = getattr(self.runtime, "store", None)
        if store is None:
            return
        try:
            self.runtime.call(
                lambda: store.add_event(level, "control_socket", message), timeout=None
            )
        except Exception:
            log.warning("control: event %r not logged", message, exc_info=True)
