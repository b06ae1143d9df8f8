"""Shared plumbing for probes: samples, what a probe reads through, bounded command runs, bounded
name lookups, sysfs reads.

Every probe is a small class with a ``collect(deadline)`` method. Nothing here may block past the
deadline it is given, because the monitor runs probes on a handful of worker threads (the quick
ones on its own thread) and a probe that hangs would starve the others. Where the OS offers no timeout (``getaddrinfo``), the call runs
on a throw-away thread and is abandoned at the deadline; the number of abandoned calls is capped so
a dead resolver cannot leak threads without bound.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

from agent.adapters.kernel_clock import AdjtimexFn, libc_adjtimex


@dataclass
class Sample:
    """Fields every sample carries: when it was taken and whether the probe itself worked.

    ``ok`` is about the probe (could it measure?), not about the thing measured: a TCP probe that
    measured a dead link is ``ok`` with every target failed. ``skipped`` carries the reason a probe
    cannot run on this box (no tuner, no ping permission...), which is information, not an error.
    """

    at: float = 0.0
    ok: bool = True
    error: str | None = None
    skipped: str | None = None
    elapsed_ms: float = 0.0


class Probe(Protocol):
    """What the monitor needs from a probe.

    ``interval`` and ``timeout`` are the monitor's settings for this probe (``interval_seconds``
    and ``timeout_seconds`` in its config section); a registered probe class carries its defaults.
    A probe may also define ``has_targets() -> bool`` (is there anything to measure?),
    ``begin(run)`` / ``end(run)`` with a ``RunContext``, called when the monitor starts and stops,
    and ``quick = True`` (``Cadence.quick``) when it never blocks: the monitor then runs it on
    its own thread instead of a worker's.
    """

    name: str
    interval: float
    timeout: float

    def collect(self, deadline: float) -> Sample:
        """Measure once; ``deadline`` is a ``time.monotonic()`` value the call must not pass."""
        ...


@dataclass
class CommandResult:
    """What a tool printed. ``timed_out`` output is kept: some tools (dvb-fe-tool -m) never exit."""

    returncode: int | None
    stdout: str
    stderr: str = ""
    timed_out: bool = False
    missing: bool = False


Runner = Callable[[Sequence[str], float], CommandResult]
IoctlFn = Callable[[int, int, Any], int]
Resolver = Callable[..., list[Any]]


def kernel_ioctl(fd: int, request: int, arg: Any) -> int:
    """The real ioctl: ``arg`` is a ctypes object that the kernel fills in place."""
    return fcntl.ioctl(fd, request, arg, True)


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run a tool with a hard timeout, killing its whole process group when time is up."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError:
        return CommandResult(None, "", f"{argv[0]}: not found", missing=True)
    except PermissionError as exc:
        return CommandResult(None, "", f"{argv[0]}: {exc.strerror}", missing=True)
    try:
        out, err = proc.communicate(timeout=max(0.0, timeout))
        timed_out = False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        timed_out = True
    return CommandResult(
        None if timed_out else proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        timed_out=timed_out,
    )


@dataclass
class Roots:
    """Where probes read the world from; defaults are the real system. Tests and benchmarks point
    these at fake trees, recorded tool output and fake kernels; ``extra`` holds seams of probes
    that are not part of the agent (a plugin looks its own up by name)."""

    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    dev: Path = Path("/dev")
    runner: Runner = run_command
    ioctl: IoctlFn = kernel_ioctl
    resolver: Resolver = socket.getaddrinfo
    adjtimex: AdjtimexFn = libc_adjtimex
    which: Callable[[str], str | None] = shutil.which
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeContext:
    """What a probe's ``create(cfg, ctx)`` gets besides its config section: the roots, and the
    targets the agent itself implies (its broker, its own folders), added to the configured ones."""

    roots: Roots = field(default_factory=Roots)
    tcp_targets: Sequence[str] = ()
    dns_names: Sequence[str] = ()
    disk_paths: Sequence[Path] = ()


ConfigT = TypeVar("ConfigT")


class SysfsProbe(Generic[ConfigT]):
    """The shape of a probe that reads only a sysfs tree: its config section and where /sys is
    (the real one, or a fake tree in tests and benchmarks)."""

    def __init__(self, cfg: ConfigT, *, sysfs: Path = Path("/sys")) -> None:
        self.cfg = cfg
        self.sysfs = sysfs

    @classmethod
    def create(cls, cfg: ConfigT, ctx: ProbeContext) -> Self:
        return cls(cfg, sysfs=ctx.roots.sysfs)


@dataclass(frozen=True)
class RunContext:
    """What the monitor knows about its run that a probe's ``begin``/``end`` hooks may need."""

    shutdown_marker: Path | None = None


def merge(first: Sequence[Any], second: Sequence[Any]) -> list[Any]:
    """``first`` then the items of ``second`` it lacks, in order (configured targets come first)."""
    out: list[Any] = []
    for item in [*first, *second]:
        if item not in out:
            out.append(item)
    return out


def remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def read_text(path: Path) -> str | None:
    """Read a small sysfs/procfs file; None when absent or unreadable (attributes come and go)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def read_int(path: Path, base: int = 10) -> int | None:
    text = read_text(path)
    if text is None or text == "":
        return None
    try:
        return int(text.split()[0], base)
    except ValueError:
        return None


# -- name resolution with a deadline -------------------------------------------------------

_lookup_slots = threading.BoundedSemaphore(4)
_MAX_HUNG_LOOKUPS = 4


class ResolveError(Exception):
    """A lookup failed or ran out of time; ``reason`` is short and stable for alarms."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Lookup:
    result: list[Any] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def resolve(
    host: str,
    port: int | None,
    deadline: float,
    *,
    resolver: Resolver = socket.getaddrinfo,
    family: int = socket.AF_UNSPEC,
) -> list[tuple[int, tuple[Any, ...]]]:
    """getaddrinfo with a deadline; returns (family, sockaddr) pairs.

    Numeric addresses skip the resolver entirely. At most four lookups may be outstanding at
    once (hung ones included); past that we fail fast with ``resolver busy`` rather than pile up
    threads behind a dead DNS server.
    """
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        addr: tuple[Any, ...] = (
            (str(ip), port or 0) if fam == socket.AF_INET else (str(ip), port or 0, 0, 0)
        )
        return [(fam, addr)]
    if not _lookup_slots.acquire(blocking=False):
        raise ResolveError("resolver busy (earlier lookups still hung)")
    job = _Lookup()

    def work() -> None:
        try:
            job.result = resolver(host, port, family, socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            job.error = exc
        finally:
            _lookup_slots.release()
            job.done.set()

    threading.Thread(target=work, name=f"resolve-{host}", daemon=True).start()
    if not job.done.wait(remaining(deadline)):
        raise ResolveError("timeout")
    if job.error is not None:
        if isinstance(job.error, socket.gaierror):
            raise ResolveError(f"resolve failed: {job.error.strerror or job.error}")
        raise ResolveError(f"resolve failed: {job.error}")
    out: list[tuple[int, tuple[Any, ...]]] = []
    for fam, _type, _proto, _canon, sockaddr in job.result or []:
        if (fam, sockaddr) not in out:
            out.append((fam, sockaddr))
    if not out:
        raise ResolveError("resolve failed: no addresses")
    return out


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int | None]:
    """Split ``host:port``, ``[v6]:port``, ``v6`` or ``host`` into its parts."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def check_host_port(value: str) -> str | None:
    """Config check for ``host:port`` entries."""
    try:
        host, port = parse_host_port(value)
    except ValueError:
        return f"{value!r} is not host:port"
    if not host or port is None or not 0 < port < 65536:
        return f"{value!r} is not host:port with a port between 1 and 65535"
    return None


def check_host_port_list(values: list[str]) -> str | None:
    for value in values:
        message = check_host_port(value)
        if message:
            return message
    return None
