"""A fault-injecting TCP proxy for loopback tests, in front of a real HTTP server (nginx).

Why a proxy and not a fake server: the fetcher must meet the faults of a rural line (cuts,
stalls, slow links, a flipped byte) while the server side stays the real nginx with real Range
handling. One request per connection: the proxy rewrites ``Connection`` to ``close``, so each
connection carries exactly one response and the per-connection plans stay unambiguous.

    proxy = FaultProxy(nginx.port, plans=[Plan(cut_after=1_000_000)], throttle=2e6).start()
    proxy.url("big.bin") ... proxy.stop()

Offsets: ``cut_after`` and ``stall_after`` count body bytes of that connection's response;
``corrupt_at`` is an offset in the *file* (a 206 body starts at its Content-Range start).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Plan:
    """What goes wrong on one connection (the N-th connection uses plans[N])."""

    cut_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 0.0


class FaultProxy:
    """Threads on loopback; ``stop()`` closes every socket so stalled threads end at once."""

    def __init__(
        self,
        upstream_port: int,
        *,
        plans: Sequence[Plan] = (),
        default: Plan = Plan(),
        throttle: float | None = None,
        corrupt_at: int | None = None,
        strip_range: bool = False,
    ) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.plans = list(plans)
        self.default = default
        self.throttle = throttle
        self.corrupt_at = corrupt_at
        self.strip_range = strip_range
        self.port = 0
        self.connections = 0
        self.body_bytes = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._socks: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> FaultProxy:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        self.port = ls.getsockname()[1]
        self._listener = ls
        t = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            _close(self._listener)
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            _close(s)
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                index = self.connections
                self.connections += 1
                self._socks.add(client)
            plan = self.plans[index] if index < len(self.plans) else self.default
            t = threading.Thread(target=self._serve, args=(client, plan), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, client: socket.socket, plan: Plan) -> None:
        upstream: socket.socket | None = None
        try:
            head, rest = _read_head(client)
            if head is None:
                return
            upstream = socket.create_connection(self.upstream, 10)
            with self._lock:
                self._socks.add(upstream)
            upstream.sendall(self._rewrite_request(head) + rest)
            rhead, body = _read_head(upstream)
            if rhead is None:
                return
            client.sendall(rhead)
            self._forward_body(client, upstream, body, plan, _body_start(rhead))
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    _close(s)
                    with self._lock:
                        self._socks.discard(s)

    def _rewrite_request(self, head: bytes) -> bytes:
        lines = head[: -len(_HEAD_END)].split(b"\r\n")
        with self._lock:
            self.requests.append(lines[0].decode("latin-1"))
        keep = [lines[0]]
        for line in lines[1:]:
            name = line.split(b":", 1)[0].strip().lower()
            if name == b"connection" or (self.strip_range and name == b"range"):
                continue
            keep.append(line)
        keep.append(b"Connection: close")
        return b"\r\n".join(keep) + _HEAD_END

    def _forward_body(
        self, client: socket.socket, upstream: socket.socket, first: bytes, plan: Plan, start: int
    ) -> None:
        sent = 0
        stalled = False
        began = time.monotonic()
        piece = 64 * 1024 if not self.throttle else max(1024, int(self.throttle / 50))
        pending = first
        while not self._stopped.is_set():
            if not pending:
                pending = upstream.recv(piece)
                if not pending:
                    return
            data, pending = pending[:piece], pending[piece:]
            if plan.stall_after is not None and not stalled and sent + len(data) > plan.stall_after:
                cut = max(0, plan.stall_after - sent)
                data, pending = data[:cut], data[cut:] + pending
                stalled = True
                if data:
                    self._send(client, data, sent, start)
                    sent += len(data)
                self._stopped.wait(plan.stall_seconds)
                began = time.monotonic() - sent / self.throttle if self.throttle else began
                continue
            if plan.cut_after is not None and sent + len(data) >= plan.cut_after:
                self._send(client, data[: plan.cut_after - sent], sent, start)
                return
            if self.throttle:
                due = began + (sent + len(data)) / self.throttle
                delay = due - time.monotonic()
                if delay > 0:
                    self._stopped.wait(delay)
            self._send(client, data, sent, start)
            sent += len(data)

    def _send(self, client: socket.socket, data: bytes, sent: int, start: int) -> None:
        if self.corrupt_at is not None:
            k = self.corrupt_at - (start + sent)
            if 0 <= k < len(data):
                data = data[:k] + bytes([data[k] ^ 0xFF]) + data[k + 1 :]
        client.sendall(data)
        with self._lock:
            self.body_bytes += len(data)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """Bytes up to and including the blank line, and whatever came after it."""
    buf = b""
    while _HEAD_END not in buf:
        if len(buf) > _MAX_HEAD:
            return None, b""
        data = sock.recv(16 * 1024)
        if not data:
            return None, b""
        buf += data
    end = buf.index(_HEAD_END) + len(_HEAD_END)
    return buf[:end], buf[end:]


def _body_start(head: bytes) -> int:
    """The file offset the body starts at: Content-Range's first byte for a 206, else 0."""
    m = re.search(rb"(?im)^content-range:\s*bytes\s+(\d+)-", head)
    return int(m.group(1)) if m else 0


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
