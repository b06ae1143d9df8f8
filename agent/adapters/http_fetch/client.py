"""The HTTP client: urllib3, and the mapping of its exceptions to fetch reasons.

Why urllib3 (scripts/bench/http_client_choice.py has the figures): pure Python on the stdlib's
ssl, so the Debian 12 package (python3-urllib3 1.26) runs this code unchanged; it costs less
resident memory than pycurl with its libcurl, and the per-byte CPU of both is dominated by the
sha256. The code keeps to the API common to urllib3 1.26 and 2.x.

Timeouts: connect = ``connect_timeout``; read = ``stall_seconds``, which is a per-``recv``
timeout, i.e. exactly "no byte for N seconds". A cancel during a blocked read is delivered by
``Interrupter``, which shuts the socket down from a helper thread (a timed-out socket file cannot
be read again, so polling with short timeouts is not an option).
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

from .errors import FetchError

REDIRECTS = 3
CANCEL_POLL_SECONDS = 0.2


def make_pool(connect_timeout: float, stall_seconds: float, ca_file: Path | None) -> Any:
    """A PoolManager that verifies TLS against ``ca_file`` (else the system's CAs), no retries
    (the caller decides what to try next) and at most a few redirects."""
    timeout = urllib3.Timeout(connect=connect_timeout, read=stall_seconds)
    retries = urllib3.Retry(total=REDIRECTS, connect=0, read=0, status=0, redirect=REDIRECTS)
    kwargs: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
    if ca_file is not None:
        kwargs["ca_certs"] = str(ca_file)
    return urllib3.PoolManager(num_pools=4, maxsize=1, timeout=timeout, retries=retries, **kwargs)


def open_stream(pool: Any, url: str, offset: int) -> Any:
    """Send the GET (with a Range from ``offset`` when resuming); returns the unread response."""
    headers = {"Accept-Encoding": "identity", "User-Agent": "station-agent"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    try:
        return pool.request(
            "GET", url, headers=headers, preload_content=False, decode_content=False
        )
    except Exception as e:  # noqa: BLE001 - every client failure becomes a reason below
        raise as_fetch_error(e, url) from e


def read_chunk(resp: Any, amount: int, url: str) -> bytes:
    try:
        return resp.read(amount, decode_content=False)
    except Exception as e:  # noqa: BLE001
        raise as_fetch_error(e, url) from e


def as_fetch_error(exc: BaseException, url: str) -> FetchError:
    """Name the failure the way a technician would: tls, stalled or network."""
    if isinstance(exc, FetchError):
        return exc
    cause: BaseException = exc
    while isinstance(cause, MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    text = str(cause) or type(cause).__name__
    if isinstance(cause, Urllib3SSLError | ssl.SSLError) or _caused_by_ssl(cause):
        return FetchError("tls", text, url)
    if isinstance(cause, NewConnectionError):  # a subclass of ConnectTimeoutError in 1.26
        return FetchError("network", f"cannot connect: {text}", url)
    if isinstance(cause, ConnectTimeoutError):
        return FetchError("network", f"connect timed out: {text}", url)
    if isinstance(cause, ReadTimeoutError | socket.timeout | TimeoutError):
        return FetchError("stalled", f"no data: {text}", url)
    if isinstance(cause, NewConnectionError | HTTPError | OSError):
        return FetchError("network", text, url)
    return FetchError("network", f"{type(cause).__name__}: {text}", url)


def _caused_by_ssl(exc: BaseException) -> bool:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return any(isinstance(a, ssl.SSLError) for a in getattr(exc, "args", ()))


class Interrupter:
    """While active, shuts the response's socket down as soon as ``cancel`` is set, so a read
    blocked on a stalled server returns at once instead of after ``stall_seconds``."""

    def __init__(self, resp: Any, cancel: threading.Event | None) -> None:
        self._resp = resp
        self._cancel = cancel
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Interrupter:
        if self._cancel is not None:
            self._thread = threading.Thread(target=self._watch, name="fetch-cancel", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        assert self._cancel is not None
        while not self._done.is_set():
            if self._cancel.wait(CANCEL_POLL_SECONDS):
                sock = _socket_of(self._resp)
                if sock is not None and not self._done.is_set():
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return


def _socket_of(resp: Any) -> socket.socket | None:
    """The socket a response reads from. On a keep-alive reply it is the connection's; on a
    ``Connection: close`` reply http.client has already detached it from the connection and
    only the response's socket file still holds it."""
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    if sock is None:
        raw = getattr(getattr(getattr(resp, "_fp", None), "fp", None), "raw", None)
        sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
