"""What the agent needs from the machine, checked from inside the hardened unit.

Run by tests/ops/sandbox/run.sh as the unit's ExecStart=; prints one JSON object, one key per
check. Also sends READY=1 through agent.adapters.sdnotify, so a Type=notify unit becomes active.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import mmap
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.environ.get("AGENT_SOURCE", "/work/main"))

from agent import sdnotify  # noqa: E402
from agent.adapters.kernel_clock import kernel_clock_synced  # noqa: E402

MEDIA = os.environ.get("SANDBOX_MEDIA", "/srv/media")
STATE = "/var/lib/station-agent"
out: dict[str, Any] = {
    "ready_sent": sdnotify.ready("sandbox probe"),
    "watchdog_interval": sdnotify.watchdog_interval(),
}


def code(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def check(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def run(fn: Callable[[], Any]) -> Callable[[], Any]:
        try:
            out[name] = fn()
        except OSError as exc:
            out[name] = code(exc)
        except Exception as exc:  # a probe must report, not stop
            out[name] = f"{type(exc).__name__}: {exc}"
        return fn

    return run


@check("ids")
def _ids():
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}


@check("adjtimex_read")
def _adjtimex():
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = ctypes.create_string_buffer(512)  # struct timex with modes=0: a pure read
    ret = libc.adjtimex(buf)
    return {
        "ret": ret,
        "errno": errno.errorcode.get(ctypes.get_errno()) if ret < 0 else None,
        "kernel_clock_synced": kernel_clock_synced(),
    }


@check("ctypes_callback")
def _callback():
    return ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x * 2)(21)


@check("mmap_write_exec")
def _wx():
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    return "allowed"


@check("proc_reads")
def _proc():
    sizes = {}
    for path in (
        "/proc/stat",
        "/proc/meminfo",
        "/proc/uptime",
        "/proc/net/route",
        "/proc/sys/kernel/random/boot_id",
        "/proc/self/mountinfo",
        "/sys/class/net/lo/operstate",
    ):
        try:
            with open(path) as f:
                sizes[path] = len(f.read())
        except OSError as exc:
            sizes[path] = code(exc)
    return sizes


@check("psutil")
def _psutil():
    import psutil

    return {
        "cpu": psutil.cpu_percent(interval=0.1) >= 0,
        "mem": psutil.virtual_memory().total > 0,
        "ifs": sorted(psutil.net_if_addrs()),
    }


@check("getaddrinfo_addrconfig")
def _gai():
    return len(socket.getaddrinfo("localhost", 1883, flags=socket.AI_ADDRCONFIG)) > 0


@check("af_packet")
def _packet():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    return "allowed"


@check("writes")
def _writes():
    result = {}
    for path in (f"{STATE}/probe.txt", "/etc/probe.txt", "/opt/probe.txt", "/tmp/probe.txt"):
        try:
            with open(path, "w") as f:
                f.write("x")
            st = os.stat(path)
            result[path] = f"ok {oct(st.st_mode & 0o7777)} gid={st.st_gid}"
            os.unlink(path)
        except OSError as exc:
            result[path] = code(exc)
    return result


@check("chown_to_own_group")
def _chown():
    path = f"{STATE}/chown.txt"
    open(path, "w").close()
    try:
        os.chown(path, -1, os.getgid())
        return "ok"
    finally:
        os.unlink(path)


@check("group_only_file")
def _group_file():
    with open(os.environ.get("GROUP_FILE", "/run/sandbox/audio-only.txt")) as f:
        return f.read().strip()


@check("other_users_processes_visible")
def _procs():
    me = os.getuid()
    return sum(
        1
        for d in os.listdir("/proc")
        if d.isdigit() and os.path.exists(f"/proc/{d}") and os.stat(f"/proc/{d}").st_uid != me
    )


def play(path: str, limit: float = 10.0) -> dict[str, Any]:
    import vlc

    inst = vlc.Instance("--vout=dummy", "--aout=dummy", "--quiet", "--no-video-title-show")
    player = inst.media_player_new()
    events: list[str] = []
    manager = player.event_manager()
    for ev in (
        vlc.EventType.MediaPlayerPlaying,
        vlc.EventType.MediaPlayerEndReached,
        vlc.EventType.MediaPlayerEncounteredError,
    ):
        label = str(ev).split(".")[-1]
        manager.event_attach(ev, lambda _e, name=label: events.append(name))
    player.set_media(inst.media_new(path))
    start = time.monotonic()
    player.play()
    while time.monotonic() - start < limit and player.get_state() not in (
        vlc.State.Ended,
        vlc.State.Error,
    ):
        time.sleep(0.05)
    result = {"state": str(player.get_state()).split(".")[-1], "events": events}
    player.stop()
    player.release()
    inst.release()
    return result


@check("vlc_wav")
def _wav():
    return play(f"{MEDIA}/tone.wav")


@check("vlc_h264_mp4")
def _mp4():
    return play(f"{MEDIA}/clip.mp4")


sdnotify.status("sandbox probe done")
print(json.dumps(out, indent=1, default=str), flush=True)
