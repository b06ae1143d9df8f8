"""Who is at the other end of a connection, and whether they may control the agent.

The socket file's mode keeps most users out; these checks run again on every connection with the
kernel's word (SO_PEERCRED), so a loosened mode does not open the door and a refused user gets a
clear answer instead of silence.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from pathlib import Path


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, from the kernel (SO_PEERCRED)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def admin_gid(group: str | None) -> int | None:
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def process_groups(pid: int, proc_root: Path = Path("/proc")) -> set[int]:
    """The supplementary groups the peer process runs with (its real credentials, not /etc)."""
    try:
        text = (proc_root / str(pid) / "status").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("Groups:"):
            return {int(g) for g in line.split()[1:] if g.isdigit()}
    return set()


def is_permitted(
    pid: int, uid: int, gid: int, group: str | None, *, own_uid: int | None = None
) -> bool:
    """Root, the agent's own user, or a member of the admin group."""
    if uid == 0 or uid == (os.getuid() if own_uid is None else own_uid):
        return True
    agid = admin_gid(group)
    if agid is None:
        return False
    if gid == agid or agid in process_groups(pid):
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
        return name in grp.getgrgid(agid).gr_mem
    except KeyError:
        return False


def admitted_by_mode(uid: int, path: Path) -> bool:
    """A peer whose uid is not mapped into our user namespace (systemd PrivateUsers=yes shows
    it as the overflow uid) can only have connected through the file's group bits: accept
    it while the socket grants nothing to others, refuse it otherwise."""
    if uid != overflow_uid():
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return mode & 0o007 == 0 and mode & 0o060 == 0o060


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def overflow_uid() -> int:
    try:
        return int(Path("/proc/sys/kernel/overflowuid").read_text().strip())
    except (OSError, ValueError):
        return 65534
