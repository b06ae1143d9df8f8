"""Stopping in order: adapters first (while the store is open), then the records, then the store.

The adapters' shutdown hooks (the MQTT link's offline state and last confirmations, the
monitor's last summary) may need the core thread (``runtime.call``); they run on a helper
thread while this, the core thread, keeps serving their calls. Commands are refused from then
on. What is playing is closed as interrupted (it resumes at the next start), held writes get a
last try, the last-known-good time is saved, and ``agent_stopped`` is the store's last event.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from agent.runtime.core_loop import Call, CoreLoop
from agent.runtime.executor import Executor
from agent.runtime.host import Host
from agent.runtime.housekeeping import Housekeeping

log = logging.getLogger("agent")

SHUTDOWN_HOOKS_S = 10.0  # adapters' last words (MQTT offline state, confirmations) at most
SERVE_POLL_S = 0.05


def shut_down(host: Host, loop: CoreLoop, executor: Executor, housekeeping: Housekeeping) -> None:
    core, store = host.core, host.store
    _run_shutdown_hooks(host, loop)
    _drain_calls(host, loop)
    executor.held.retry()
    if core is not None and store is not None:
        executor.execute(core.interrupt_current("the agent was stopped while this was playing"))
        executor.held.flush_at_exit()
    if hasattr(host.player, "shutdown"):
        host.player.shutdown()
    housekeeping.save_lkg()
    if store is not None:
        executor.store_event("info", "agent_stopped", "Agent stopped")
        store.close()
        host.store = None


def _run_shutdown_hooks(host: Host, loop: CoreLoop) -> None:
    """Run the shutdown hooks on a helper thread while this thread still serves their calls.

    A hook such as the MQTT link's stop confirms the last PUBACKs through ``runtime.call``,
    which only this (the core) thread answers: run on this thread, it would wait for itself.
    Calls are served until the hooks end or time runs out.
    """
    if not host.on_shutdown:
        return
    done = threading.Event()

    def run_hooks() -> None:
        for hook in host.on_shutdown:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")
        done.set()

    threading.Thread(target=run_hooks, name="shutdown-hooks", daemon=True).start()
    deadline = time.monotonic() + SHUTDOWN_HOOKS_S
    while not done.is_set() and time.monotonic() < deadline:
        try:
            ev = loop.events.get(timeout=SERVE_POLL_S)
        except queue.Empty:
            continue
        loop.refuse(ev)
    if not done.is_set():
        log.error("shutdown hooks still running after %.0f s; closing anyway", SHUTDOWN_HOOKS_S)


def _drain_calls(host: Host, loop: CoreLoop) -> None:
    """Run the adapter calls still queued (e.g. a last alarm or summary) before closing."""
    while True:
        try:
            ev = loop.events.get_nowait()
        except queue.Empty:
            return
        if isinstance(ev, Call) and host.store is None:
            continue
        loop.refuse(ev)
