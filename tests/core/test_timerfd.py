"""agent.adapters.timerfd: a wall-clock deadline, a wake from another thread, a set of the clock.

Deadlines and wakes run on this machine's real kernel. Setting the clock cannot be done here
without moving this machine's clock for everyone: a time namespace virtualises only the
monotonic and boot clocks, and in a user namespace ``clock_settime(CLOCK_REALTIME)`` fails with
EPERM (the kernel wants CAP_SYS_TIME in the initial namespace). So the clock-set test boots a
second Linux kernel as a process, User-Mode Linux (Debian package user-mode-linux), with this
machine's files as its root file system, and sets *its* clock: the same timerfd code in a real
kernel, and this machine's clock is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.adapters.timerfd import LoopWaiter, Wakeup, WallClockTimer, sleep_until
from tests.helpers import ROOT

UML = shutil.which("linux.uml")


def wake_later(waiter: LoopWaiter, after: float) -> threading.Thread:
    th = threading.Thread(target=lambda: (time.sleep(after), waiter.wake()), daemon=True)
    th.start()
    return th


def test_deadline_fires_on_time_never_early() -> None:
    lateness = []
    with LoopWaiter() as waiter:
        for _ in range(7):
            deadline = time.time() + 0.05
            woke = waiter.wait(deadline, max_sleep=5)
            lateness.append(time.time() - deadline)
            assert woke == Wakeup(deadline=True)
    assert min(lateness) >= 0, lateness
    assert statistics.median(lateness) < 0.005, lateness  # the kernel's timer, not a poll


def test_a_wake_from_another_thread_returns_at_once() -> None:
    with LoopWaiter() as waiter:
        t0 = time.monotonic()
        wake_later(waiter, 0.2)
        woke = waiter.wait(time.time() + 30, max_sleep=10)
        elapsed = time.monotonic() - t0
    assert woke == Wakeup(woken=True)
    assert 0.2 <= elapsed < 0.25, elapsed


def test_wakes_before_the_wait_count_and_coalesce() -> None:
    with LoopWaiter() as waiter:
        for _ in range(10_000):  # more than the pipe holds: wake() never blocks
            waiter.wake()
        assert waiter.wait(None, max_sleep=5) == Wakeup(woken=True)
        assert waiter.wait(None, max_sleep=0.05).timed_out  # all ten thousand were one wake-up


def test_max_sleep_bounds_a_wait_with_no_deadline() -> None:
    with LoopWaiter() as waiter:
        t0 = time.monotonic()
        woke = waiter.wait(None, max_sleep=0.1)
    assert woke.timed_out and 0.1 <= time.monotonic() - t0 < 0.15


def test_a_passed_deadline_returns_at_once() -> None:
    with LoopWaiter() as waiter:
        t0 = time.monotonic()
        assert waiter.wait(time.time() - 3600, max_sleep=5) == Wakeup(deadline=True)
        assert waiter.wait(0.0, max_sleep=5) == Wakeup(deadline=True)  # 0 must not disarm
        assert time.monotonic() - t0 < 0.05


def test_a_signal_wakes_the_loop_through_wakeup_fd() -> None:
    seen = []
    old_handler = signal.signal(signal.SIGUSR1, lambda signum, _frame: seen.append(signum))
    with LoopWaiter() as waiter:
        old_fd = signal.set_wakeup_fd(waiter.wakeup_fd, warn_on_full_buffer=False)
        try:
            killer = threading.Thread(
                target=lambda: (time.sleep(0.1), os.kill(os.getpid(), signal.SIGUSR1))
            )
            killer.start()
            woke = waiter.wait(time.time() + 30, max_sleep=10)
            killer.join()
        finally:
            signal.set_wakeup_fd(old_fd)
            signal.signal(signal.SIGUSR1, old_handler)
    assert woke.woken and not woke.clock_set


def test_timer_read_without_expiry_or_set_says_nothing() -> None:
    with WallClockTimer() as timer:
        timer.arm(time.time() + 60)
        assert timer.read() is None
        timer.arm(time.time() - 1)
        assert timer.read() == "expired"


def test_sleep_until() -> None:
    deadline = time.time() + 0.05
    assert sleep_until(deadline) == Wakeup(deadline=True)
    assert time.time() >= deadline


# Runs as PID 1 of a User-Mode Linux kernel whose root file system is this machine's "/".
IN_UML = r"""
import ctypes, json, os, sys, threading, time, traceback
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else os.environ["REPO"])
out_path = os.environ["OUT"]
libc = ctypes.CDLL(None, use_errno=True)

class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

def set_clock(delta):
    ts = Timespec(int(time.time() + delta), 0)
    if libc.clock_settime(0, ctypes.byref(ts)) != 0:
        raise OSError(ctypes.get_errno(), "clock_settime")

def later(delay, fn):
    th = threading.Thread(target=lambda: (time.sleep(delay), fn()), daemon=True)
    th.start()
    return th

def timed(fn):
    t0 = time.monotonic()
    woke = fn()
    return {"deadline": woke.deadline, "woken": woke.woken, "clock_set": woke.clock_set,
            "after": round(time.monotonic() - t0, 3)}

results = {}
try:
    from agent.adapters.timerfd import LoopWaiter, sleep_until
    results["kernel"] = os.uname().release
    with LoopWaiter() as w:
        results["no_set"] = timed(lambda: w.wait(time.time() + 60, max_sleep=0.5))
        later(0.2, lambda: set_clock(+3600))
        results["forward_past_deadline"] = timed(lambda: w.wait(time.time() + 60, max_sleep=10))
        deadline = time.time() + 5
        later(0.2, lambda: set_clock(-3600))
        results["backward"] = timed(lambda: w.wait(deadline, max_sleep=10))
        # The same deadline is now an hour and five seconds away on the new clock.
        results["backward_rewait"] = timed(lambda: w.wait(deadline, max_sleep=0.5))
        set_clock(+1)  # while nobody waits
        results["set_between_waits"] = timed(lambda: w.wait(None, max_sleep=10))
        later(0.2, lambda: set_clock(-1))
        results["no_deadline"] = timed(lambda: w.wait(None, max_sleep=10))
    later(0.2, lambda: set_clock(+10))
    results["sleep_until"] = timed(lambda: sleep_until(time.time() + 60, max_sleep=10))
except BaseException:
    results["error"] = traceback.format_exc()
with open(out_path, "w") as fh:
    json.dump(results, fh)
os.sync()
libc.reboot(0x4321FEDC)  # RB_POWER_OFF: the UML process exits
"""


def run_in_uml(tmp_path: Path, program: str = IN_UML) -> dict:
    script = tmp_path / "init.py"
    out = tmp_path / "result.json"
    script.write_text(f"#!{os.path.realpath(sys.executable)}\n" + program)
    script.chmod(0o755)
    cmdline = [
        UML,
        "mem=128M",
        "rootfstype=hostfs",
        "rootflags=/",
        "rw",
        f"init={script}",
        "con=null",
        "con0=null,fd:1",
        f"REPO={ROOT}",  # unknown key=value words reach init as environment variables
        f"OUT={out}",
    ]
    log = tmp_path / "uml.log"
    with open(log, "wb") as fh:
        subprocess.run(cmdline, stdout=fh, stderr=subprocess.STDOUT, timeout=120, cwd=tmp_path)
    assert out.exists(), f"UML wrote no result; its console:\n{log.read_text()[-3000:]}"
    return json.loads(out.read_text())


@pytest.mark.skipif(UML is None, reason="needs User-Mode Linux (apt-get install user-mode-linux)")
def test_a_set_of_the_wall_clock_wakes_the_loop(tmp_path: Path) -> None:
    r = run_in_uml(tmp_path)
    assert "error" not in r, r.get("error")
    # Nothing set, nothing reported: the wait runs to max_sleep.
    no_set = r["no_set"]
    assert not (no_set["deadline"] or no_set["woken"] or no_set["clock_set"])
    assert no_set["after"] >= 0.5
    # Set forward past the deadline: woken at the set (0.2 s), not after the 60 s deadline.
    assert r["forward_past_deadline"]["clock_set"] and r["forward_past_deadline"]["deadline"]
    assert r["forward_past_deadline"]["after"] < 1.0
    # Set backward: woken at the set; the deadline has not come.
    assert r["backward"]["clock_set"] and not r["backward"]["deadline"]
    assert r["backward"]["after"] < 1.0
    # The timer follows the new clock: the old deadline is an hour away now.
    assert not r["backward_rewait"]["clock_set"] and not r["backward_rewait"]["deadline"]
    assert r["backward_rewait"]["after"] >= 0.5
    # A set while no one waited is reported by the next wait, at once.
    assert r["set_between_waits"]["clock_set"] and r["set_between_waits"]["after"] < 0.1
    # With no deadline at all, a set still wakes it.
    assert r["no_deadline"]["clock_set"] and r["no_deadline"]["after"] < 1.0
    assert r["sleep_until"]["clock_set"] and r["sleep_until"]["after"] < 1.0


# The whole runtime, idle inside User-Mode Linux: asleep, then woken by a set of the clock.
RUNTIME_IN_UML = r"""
import ctypes, glob, json, os, sys, threading, time, traceback
repo = os.environ["REPO"]  # the venv's packages too: init runs the base interpreter
sys.path[:0] = [repo, *glob.glob(f"{repo}/.venv/lib/python3*/site-packages")]
out_path = os.environ["OUT"]
libc = ctypes.CDLL(None, use_errno=True)

class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

def set_clock(delta):
    ts = Timespec(int(time.time() + delta), 0)
    if libc.clock_settime(0, ctypes.byref(ts)) != 0:
        raise OSError(ctypes.get_errno(), "clock_settime")

class QuietPlayer:
    busy_since = None
    def preroll(self, *a): pass
    def play(self, *a): pass
    def start(self, *a): pass
    def stop(self, *a): pass
    def unload(self): pass
    def shutdown(self, timeout=3.0): pass

results = {}
try:
    from pathlib import Path
    from agent.runtime.config import load_config
    from agent.runtime.loop import Runtime
    from tests.helpers import apply_schedule, one_off, schedule, write_config
    work = Path(os.path.dirname(out_path)) / "agent"
    work.mkdir()
    cfg = load_config(write_config(work, schedule_poll_seconds=600))
    apply_schedule(cfg.state_dir, schedule(1, [one_off("later", time.time() + 7200, "x.wav")]))
    rt = Runtime(cfg, player=QuietPlayer())
    rt.open()
    t = threading.Thread(target=rt.run, daemon=True)
    t.start()
    rt.ready.wait(10)
    time.sleep(1.0)
    before = rt.loop.iterations
    time.sleep(2.0)
    results["asleep_iterations"] = rt.loop.iterations - before
    set_at = time.monotonic()
    set_clock(+3600)
    while not rt.core.jumps and time.monotonic() - set_at < 10:
        time.sleep(0.005)
    results["jump_seen_after"] = round(time.monotonic() - set_at, 3)
    results["jumps"] = [round(after - before, 1) for before, after in rt.core.jumps]
    rt.request_stop()
    t.join(10)
    results["stopped"] = not t.is_alive()
except BaseException:
    results["error"] = traceback.format_exc()
with open(out_path, "w") as fh:
    json.dump(results, fh)
os.sync()
libc.reboot(0x4321FEDC)
"""


@pytest.mark.skipif(UML is None, reason="needs User-Mode Linux (apt-get install user-mode-linux)")
def test_an_idle_runtime_sleeps_and_a_clock_set_wakes_it_at_once(tmp_path: Path) -> None:
    r = run_in_uml(tmp_path, RUNTIME_IN_UML)
    assert "error" not in r, r.get("error")
    assert r["asleep_iterations"] == 0, r  # idle: no wake-up at all for two seconds
    (jump,) = r["jumps"]  # judged once, as a jump of an hour (the set drops the fraction)
    assert abs(jump - 3600.0) < 1.5, r
    assert r["jump_seen_after"] < 0.5, r  # by the kernel's wake-up, not a poll or a timeout
    assert r["stopped"], r
