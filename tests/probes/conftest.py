"""Shared fixtures for the probe tests: fake sysfs/procfs trees, recorded tool output, and real
loopback sockets (a listening port, a closed port, and a port that never answers)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest


@pytest.fixture
def listening_port() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture
def closed_port() -> int:
    """A port nobody listens on (bound, then released): connects get a RST."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops further SYNs, so connects hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    time.sleep(0.05)
    yield port
    for c in fillers:
        c.close()
    srv.close()
