"""Schedules on the core thread: the stored layers handed to the core, documents applied, the
inbox polled, files changed on disk noticed.

Documents from outside are parsed off the core thread (by the MQTT link, the inbox worker);
here they are only validated against the version floors, persisted and handed to the core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent.domain import core as c
from agent.domain.manifest import ManifestDoc, ManifestRejected
from agent.domain.schedule import LAYERS, ScheduleRejected
from agent.runtime.executor import Executor
from agent.runtime.host import Host
from agent.runtime.layered_files import verdict_entry
from agent.runtime.sidejobs import SideJobs
from agent.runtime.trust import TrustGate, TrustUpdate
from agent.runtime.trust_unsigned import report_unsigned

log = logging.getLogger("agent")


class Schedules:
    def __init__(self, host: Host, executor: Executor, jobs: SideJobs) -> None:
        self.host = host
        self.executor = executor
        self.jobs = jobs
        self._mtimes: tuple[float, ...] = ()
        # Every document from outside passes the trust gate first (docs/trust.md).
        self.trust = TrustGate.for_config(host.cfg)
        if host.inbox is not None:
            host.inbox.trust = self.trust
        # Course manifests found in the inbox go here (the library's ``apply``), set by the runtime.
        self.apply_manifest: Callable[..., Any] | None = None

    def load_layers(
        self, fresh: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        """The schedule layers for the core, each in the terminal's time zone (``timezone``).

        ``fresh`` holds documents just applied, already read on the caller's thread: they are
        used as they are. A stored document that cannot be read raises the alarm
        ``schedule_unreadable_{layer}`` (once) and the layer the core runs is kept; the MQTT link
        hears of the alarm and asks the county for the layer again, and its version floor keeps
        older versions out meanwhile. A readable document clears that alarm.
        """
        from agent.adapters.sqlite.alarms import active_alarms
        from agent.domain.schedule import unreadable_alarm

        host, files = self.host, self.host.schedules
        timezone = host.cfg.timezone
        layers, since = {}, {}
        open_alarms = active_alarms(host.store) if host.store is not None else {}
        actions: list[c.Action] = []
        for layer in LAYERS:
            alarm = unreadable_alarm(layer)
            doc = (fresh or {}).get(layer)
            try:
                if doc is None:
                    doc = files.load(layer, timezone=timezone)
            except ScheduleRejected as exc:
                kept = host.core.layers.get(layer) if host.core is not None else None
                now_runs = f"v{kept.version} runs on from memory" if kept else "the layer is empty"
                reason = "; ".join(exc.problems[:3])[:500]
                log.error("stored %s schedule is unreadable (%s); %s", layer, reason, now_runs)
                if kept is not None:
                    layers[layer] = kept
                if alarm not in open_alarms:
                    detail = {
                        "layer": layer,
                        "reason": reason,
                        "version_floor": files.floor(layer),
                        "running_version": kept.version if kept else None,
                    }
                    actions.append(c.Alarm(alarm, "raised", "critical", detail))
                continue
            if alarm in open_alarms:
                detail = {"layer": layer, "version": doc.version if doc else None}
                actions.append(c.Alarm(alarm, "cleared", "info", detail))
            if doc is None:
                continue
            doc.default_timezone = timezone
            layers[layer] = doc
            since[layer] = files.path(layer).stat().st_mtime
            if (files.floor(layer) or 0) < doc.version:
                try:
                    files.keep_floor(layer, doc.version)
                except OSError as exc:
                    log.warning("cannot write the %s schedule's version floor: %s", layer, exc)
        self.executor.execute(actions)
        if host.store is not None:
            report_unsigned(host.cfg, host.store, self.executor.log)
        return layers, since

    def remember_files(self) -> None:
        """The files as loaded now: a later change on disk means a reload."""
        self._mtimes = self.host.schedules.mtimes()

    def versions(self) -> dict[str, int]:
        core = self.host.core
        assert core is not None
        return {layer: doc.version for layer, doc in core.layers.items()}

    def reload(self, why: str, applied: Any = None) -> None:
        """Hand the stored layers to the core again; ``applied`` is a document just applied
        (a ``ScheduleDoc`` with its ``layer`` set), used as it is instead of being read again."""
        core = self.host.core
        assert core is not None
        self.remember_files()
        layers, since = self.load_layers({applied.layer: applied} if applied else None)
        self.executor.execute(core.handle(c.ScheduleChanged(layers, since)))
        self.host.notify("schedules", {k: v.version for k, v in layers.items()})
        log.info("schedules reloaded (%s): %s", why, {k: v.version for k, v in layers.items()})

    def read(self, data: bytes, source: str, layer: str | None = None) -> Any:
        """A schedule from outside, its signature checked first (any thread): the document or
        the ``ScheduleRejected`` saying why it cannot be used."""
        return self.trust.read_schedule(data, source, timezone=self.host.cfg.timezone, layer=layer)

    def apply(self, data: bytes, source: str, layer: str | None = None, parsed: Any = None) -> Any:
        """Validate, persist and load a schedule document; returns the ApplyResult.

        ``parsed`` is what ``agent.domain.schedule.parse_untrusted(data, source)`` returned or
        raised (a ``ScheduleDoc`` or a ``ScheduleRejected``): adapters read documents from
        outside on their own thread, so that the core thread never parses one.
        """
        host = self.host
        assert host.store is not None
        if parsed is None:
            parsed = self.read(data, source, layer)
        result = host.schedules.apply(
            data,
            source,
            layer=layer,
            terminal=host.cfg.terminal,
            county=host.cfg.county,
            parsed=parsed,
        )
        self.executor.log(verdict_entry("Schedule", "schedule", result, source))
        if result.status == "applied":
            self.reload(f"applied {result.layer} v{result.version}", applied=result.doc)
        return result

    def apply_trust(self, update: TrustUpdate, source: str) -> Any:
        """Apply a revocation list read off this thread; log the verdict like a schedule's."""
        result = self.trust.apply_update(update, source)
        level = "info" if result.status == "applied" else "warning"
        version = "(no valid version)" if result.version is None else f"v{result.version}"
        message = f"Revocation list {version} from {source}: {result.status}"
        if result.reasons:
            message += " — " + "; ".join(result.reasons[:5])
        detail = {"version": result.version, "reasons": result.reasons[:20]}
        self.executor.log(c.Log(level, f"trust_{result.status}", message, detail))
        return result

    def reload_if_changed(self) -> None:
        if self.host.schedules.mtimes() != self._mtimes:
            self.reload("schedule files changed on disk")

    def poll_inbox(self) -> None:
        """Hand settled inbox documents to the inbox's worker (it parses them off this thread)."""
        if self.host.inbox is not None:
            self.host.inbox.poll(self._apply_inbox_document, self._inbox_report)

    def _apply_inbox_document(self, data: bytes, source: str, parsed: Any) -> Any:
        if isinstance(parsed, TrustUpdate):
            return self.apply_trust(parsed, source)
        if isinstance(parsed, ManifestDoc | ManifestRejected) and self.apply_manifest is not None:
            return self.apply_manifest(data, source, parsed=parsed)
        return self.apply(data, source, parsed=parsed)

    def _inbox_report(self, name: str, failure: BaseException | None) -> None:
        if failure is None:
            self.jobs.ok("schedule_inbox")
        else:
            self.jobs.failed("schedule_inbox", OSError(f"{name}: {failure}"))
