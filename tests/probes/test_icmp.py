from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.monitoring.probes.base import CommandResult
from agent.monitoring.probes.icmp import (
    IcmpProbe,
    IcmpProbeConfig,
    _checksum,
    echo_request,
    parse_ping_output,
)
from tests.probes.probe_helpers import RecordedRunner, write_tree

IPUTILS_OK = """PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.061 ms
64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.058 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 405ms
rtt min/avg/max/mdev = 0.045/0.054/0.061/0.007 ms
"""

IPUTILS_PARTIAL = """PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.
64 bytes from 10.0.0.1: icmp_seq=2 ttl=63 time=812 ms

--- 10.0.0.1 ping statistics ---
3 packets transmitted, 1 received, 66.6667% packet loss, time 2010ms
rtt min/avg/max/mdev = 812.000/812.000/812.000/0.000 ms
"""

IPUTILS_DEAD = """PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.

--- 10.0.0.1 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2047ms
"""

BUSYBOX_OK = """PING 127.0.0.1 (127.0.0.1): 56 data bytes
64 bytes from 127.0.0.1: seq=0 ttl=64 time=0.081 ms
64 bytes from 127.0.0.1: seq=1 ttl=64 time=0.101 ms

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 packets received, 0% packet loss
round-trip min/avg/max = 0.081/0.091/0.101 ms
"""


def denied() -> None:
    raise PermissionError(errno.EACCES, "Permission denied")


def test_parse_iputils_and_busybox() -> None:
    ok = parse_ping_output("h", IPUTILS_OK)
    assert (ok.sent, ok.received, ok.rtts_ms, ok.loss) == (3, 3, [0.045, 0.061, 0.058], 0.0)
    part = parse_ping_output("h", IPUTILS_PARTIAL)
    assert (part.sent, part.received, part.rtts_ms) == (3, 1, [812.0])
    assert part.loss == pytest.approx(2 / 3)
    dead = parse_ping_output("h", IPUTILS_DEAD)
    assert (dead.sent, dead.received, dead.rtts_ms, dead.loss) == (3, 0, [], 1.0)
    bb = parse_ping_output("h", BUSYBOX_OK)
    assert (bb.sent, bb.received, bb.rtts_ms) == (2, 2, [0.081, 0.101])


def test_garbage_output_is_an_error_not_a_pass() -> None:
    r = parse_ping_output("h", "ping: unknown host\n")
    assert r.received == 0 and r.error


def test_skipped_with_the_reason_when_nothing_is_allowed(tmp_path: Path) -> None:
    procfs = write_tree(tmp_path, {"sys/net/ipv4/ping_group_range": "1\t0\n"})
    p = IcmpProbe(
        IcmpProbeConfig(hosts=["127.0.0.1"]),
        procfs=procfs,
        which=lambda _n: None,
        socket_opener=denied,
    )
    s = p.collect(time.monotonic() + 1)
    assert s.skipped is not None
    assert "ping_group_range=1 0" in s.skipped and "no 'ping' binary" in s.skipped
    assert not s.results


def test_falls_back_to_the_ping_binary(tmp_path: Path) -> None:
    runner = RecordedRunner(CommandResult(0, IPUTILS_OK))
    p = IcmpProbe(
        IcmpProbeConfig(hosts=["127.0.0.1"], count=3),
        runner=runner,
        procfs=tmp_path,
        which=lambda n: f"/usr/bin/{n}",
        socket_opener=denied,
    )
    s = p.collect(time.monotonic() + 2)
    assert s.method == "binary" and s.skipped is None
    (r,) = s.results
    assert r.received == 3 and len(r.rtts_ms) == 3
    argv, timeout = runner.calls[0]
    assert argv[0] == "ping" and "-c" in argv and argv[-1] == "127.0.0.1"
    assert 0 < timeout <= 2


def test_binary_that_overruns_is_marked(tmp_path: Path) -> None:
    runner = RecordedRunner(CommandResult(None, "PING 127.0.0.1\n", timed_out=True))
    p = IcmpProbe(
        IcmpProbeConfig(hosts=["127.0.0.1"], method="binary"),
        runner=runner,
        which=lambda n: n,
        procfs=tmp_path,
    )
    (r,) = p.collect(time.monotonic() + 1).results
    assert r.received == 0 and "deadline" in (r.error or "")


def test_echo_request_checksum_verifies() -> None:
    packet = echo_request(7, b"abcdefgh")
    assert _checksum(packet) == 0
    assert packet[0] == 8 and int.from_bytes(packet[6:8], "big") == 7


CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from agent.monitoring.probes.icmp import IcmpProbe, IcmpProbeConfig
p = IcmpProbe(IcmpProbeConfig(hosts=["127.0.0.1"], count=3, method="socket"))
s = p.collect(time.monotonic() + 2)
r = s.results[0]
print(json.dumps({{"method": s.method, "skipped": s.skipped, "sent": r.sent, "received": r.received,
                  "rtts": r.rtts_ms, "error": r.error}}))
"""


def test_real_ping_socket_in_a_private_network_namespace() -> None:
    """Open ping_group_range inside a throw-away netns (never the host's) and ping its loopback."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("unshare/ip not available")
    root = str(Path(__file__).resolve().parents[2])
    script = (
        'echo "0 2147483647" > /proc/sys/net/ipv4/ping_group_range && ip link set lo up && '
        f'exec "{sys.executable}" -c "$CHILD"'
    )
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        env={"CHILD": CHILD.format(root=root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    if proc.returncode != 0 and (
        "Operation not permitted" in proc.stderr or "unshare failed" in proc.stderr
    ):
        pytest.skip(f"cannot create a network namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["method"] == "socket" and out["skipped"] is None
    assert out["sent"] == 3 and out["received"] == 3, out
    assert all(0 < rtt < 1000 for rtt in out["rtts"])
