"""Who may use the control socket and read the store: root, the agent's user, the admin group.

stationctl runs in a forked child that drops to an unprivileged uid (54321, no passwd entry) with
or without the admin group, so the kernel's checks are the real ones: the socket file's mode at
connect(), then the agent's SO_PEERCRED check. The admin group here is ``users`` (gid 100).
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agent.cli.stationctl.actions_cmd  # noqa: F401 - imported before fork: the child imports nothing
import agent.cli.stationctl.check_cmd  # noqa: F401
import agent.cli.stationctl.status_cmd  # noqa: F401
from agent.adapters.control_socket import ControlServer
from agent.cli.stationctl import main
from agent.cli.stationctl.client import AgentUnavailable, request
from tests.stationctl.fixture import build_station
from tests.stationctl.test_control import FakeRuntime

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")

UID = 54321
ADMIN = "users"


def as_user(fn: Callable[[], int], *, groups: tuple[int, ...] = ()) -> tuple[int, str, str]:
    """Run ``fn`` in a forked child as uid UID; returns (exit code, stdout, stderr)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, and leave without cleanup handlers
        code = 99
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.setgroups(list(groups))
            os.setgid(UID)
            os.setuid(UID)
            code = fn()
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            os.write(2, f"child failed: {exc!r}\n".encode())
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as fo, os.fdopen(err_r) as fe:
        out, err = fo.read(), fe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder the unprivileged user can traverse (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="stationctl-perm-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def agent_socket(open_dir: Path) -> Iterator[tuple[Path, FakeRuntime]]:
    config = build_station(open_dir, admin_group=ADMIN)
    config.chmod(0o644)
    state = open_dir / "state"
    state.chmod(0o755)
    rt = FakeRuntime(state, admin_group=ADMIN)
    server = ControlServer(rt)
    server.start()
    yield config, rt
    server.stop()
    rt.close()


def ctl(config: Path, *args: str, lang: str = "en") -> Callable[[], int]:
    return lambda: main(["-c", str(config), "--lang", lang, *args])


def test_socket_is_root_and_admin_group_only(agent_socket) -> None:
    config, rt = agent_socket
    st = os.stat(rt.cfg.socket_path)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == grp.getgrnam(ADMIN).gr_gid


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_non_admin_gets_a_clear_refusal(agent_socket, lang: str) -> None:
    config, rt = agent_socket
    code, out, err = as_user(ctl(config, "play", "pig-1", lang=lang))
    assert code == 4, (out, err)
    if lang == "en":
        assert f"Permission denied: user {UID} may not control the agent." in err
        assert f"Only root and members of the group {ADMIN} may." in err
    else:
        assert f"权限不足：用户 {UID} 无权控制终端服务。" in err
        assert f"只有 root 和 {ADMIN} 组的成员可以操作" in err
    assert rt.submitted == []  # nothing reached the core


def test_agent_refuses_by_credentials_even_if_the_mode_is_loosened(agent_socket) -> None:
    config, rt = agent_socket
    os.chmod(rt.cfg.socket_path, 0o666)  # a mistake by hand must not open the door

    def ask() -> int:
        try:
            answer = request(rt.cfg.socket_path, "play", course="pig-1")
        except AgentUnavailable as exc:
            print(json.dumps({"unavailable": exc.reason}))
            return 1
        print(json.dumps(answer))
        return 0

    code, out, err = as_user(ask)
    answer: dict[str, Any] = json.loads(out)
    assert answer["ok"] is False and answer["error"] == "forbidden", (out, err)
    assert str(UID) in answer["message"] and ADMIN in answer["message"]
    code, out, err = as_user(ctl(config, "attendance", "3"))
    assert code == 4 and "Permission denied" in err
    assert rt.submitted == []


def test_admin_group_member_may_act(agent_socket) -> None:
    config, rt = agent_socket
    gid = grp.getgrnam(ADMIN).gr_gid
    code, out, err = as_user(ctl(config, "play", "pig-1"), groups=(gid,))
    assert code == 0, (out, err)
    assert "Playing pig-1 now" in out
    assert len(rt.submitted) == 1


def test_admin_reads_the_store_of_a_stopped_agent_without_write_access(open_dir: Path) -> None:
    """State folder 2750 root:users, database 0640: an admin may read but cannot create the
    WAL side files; records and status still work. Others get a clear message."""
    config = build_station(open_dir, admin_group=ADMIN)
    config.chmod(0o644)
    gid = grp.getgrnam(ADMIN).gr_gid
    state = open_dir / "state"
    for path in [state, *state.rglob("*")]:
        os.chown(path, 0, gid)
        path.chmod(0o2750 if path.is_dir() else 0o640)
    assert not (state / "agent.db-wal").exists()
    code, out, err = as_user(ctl(config, "records", "--json"), groups=(gid,))
    assert code == 0, err
    assert len(json.loads(out)) == 8
    code, out, err = as_user(ctl(config, "status", "--json"), groups=(gid,))
    assert code == 0, err
    assert json.loads(out)["agent"]["running"] is False
    assert not (state / "agent.db-shm").exists()  # the reader left nothing behind
    code, out, err = as_user(ctl(config, "records", lang="zh_CN"))
    assert code == 4, err
    assert f"权限不足：{state}" in err and f"{ADMIN} 组成员" in err
