"""The probe registry refuses declarations that cannot work, and a probe's buggy verdict or
summary function costs its own alarms and fields, never the monitor's thread."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest

from agent.domain.health import Verdict
from agent.monitoring.judge import AlarmJudge
from agent.monitoring.monitor import Monitor
from agent.monitoring.probes import ProbesConfig
from agent.monitoring.probes.base import ProbeContext, Sample
from agent.monitoring.probes.registry import (
    REGISTRY,
    Cadence,
    CountHysteresis,
    Judging,
    Registry,
    RegistryError,
    Severity,
    register,
)


@dataclass
class KettleConfig:
    litres: float = 1.5


@dataclass
class KettleSample(Sample):
    boiling: bool | None = None


@dataclass
class BoilingAlarm(CountHysteresis):
    severity: Severity = "info"


def no_verdicts(sample: Any, ctx: Judging) -> dict[str, Verdict]:
    return {}


def declare(registry: Registry, name: str = "kettle", **kw: Any) -> type:
    options: dict[str, Any] = {
        "config": KettleConfig,
        "sample": KettleSample,
        "cadence": Cadence(interval=60, timeout=1),
        "registry": registry,
    }
    options.update(kw)

    class Kettle:
        @classmethod
        def create(cls, cfg: Any, ctx: ProbeContext) -> Any:
            return cls()

        def collect(self, deadline: float) -> KettleSample:
            return KettleSample(at=time.time(), boiling=True)

    return register(name, **options)(Kettle)


@dataclass
class SharedKeyConfig:
    interval_seconds: float = 5.0


class OtherSample(Sample):
    pass


@pytest.mark.parametrize(
    ("name", "kw", "message"),
    [
        ("Kettle", {}, "lower-case identifier"),
        ("mode", {}, "one of the monitor's own keys"),
        ("kettle", {"config": SharedKeyConfig}, "interval_seconds belong to the monitor"),
        ("kettle", {"sample": Sample}, "subclass of Sample"),
        ("kettle", {"alarms": {"boiling": BoilingAlarm}}, "alarms and a verdicts function"),
        ("kettle", {"verdicts": no_verdicts}, "alarms and a verdicts function"),
        (
            "kettle",
            {"alarms": {"boiling": KettleConfig}, "verdicts": no_verdicts},
            "settings must be a dataclass with a severity",
        ),
    ],
)
def test_a_declaration_that_cannot_work_is_refused(
    name: str, kw: dict[str, Any], message: str
) -> None:
    registry = Registry()
    registry.reserve("mode")
    with pytest.raises(RegistryError, match=message):
        declare(registry, name, **kw)
    assert registry.names() == ()


def test_names_sample_types_and_alarms_are_taken_once() -> None:
    registry = Registry()
    declare(registry, alarms={"boiling": BoilingAlarm}, verdicts=no_verdicts)
    with pytest.raises(RegistryError, match="sample type already used by 'kettle'"):
        declare(registry, "teapot")
    with pytest.raises(RegistryError, match="alarm 'boiling' .* already declared by 'kettle'"):
        declare(
            registry,
            "teapot",
            sample=OtherSample,
            alarms={"boiling": BoilingAlarm},
            verdicts=no_verdicts,
        )
    assert registry.names() == ("kettle",) and list(registry.alarm_settings()) == ["boiling"]


def test_a_second_module_cannot_take_a_registered_name() -> None:
    registry = Registry()
    declare(registry)
    spec = registry.get("kettle")
    with pytest.raises(RegistryError, match="already registered by"):
        registry.add(type(spec)(**{**spec.__dict__, "module": "somewhere.else"}))
    declare(registry)  # the same module again (a reload) replaces it
    assert registry.names() == ("kettle",)


def boom(sample: Any, *args: Any) -> Any:
    raise RuntimeError("plugin bug")


def test_a_failing_verdict_or_summary_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with REGISTRY.scoped():
        probe_cls = declare(REGISTRY, alarms={"boiling": BoilingAlarm}, verdicts=boom, summary=boom)
        judge = AlarmJudge(ProbesConfig().alarms)
        with caplog.at_level(logging.ERROR):
            assert judge.sample(KettleSample(boiling=True), 1.0, 1.0) == []
        assert "verdicts of probe kettle failed" in caplog.text
        cfg = ProbesConfig(workers=1)
        probe = probe_cls()
        probe.interval = 0.05
        monitor = Monitor(cfg, None, None, probes=[probe])
        monitor.start()
        try:
            deadline = time.monotonic() + 5
            while runs(monitor) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            summary = monitor.summary()
        finally:
            monitor.stop()
        assert runs(monitor) >= 3  # the monitor thread went on after each failed verdict
        assert summary["alarms"] == [] and "kettle" not in str(summary)
        assert "summary fields failed" in caplog.text


def runs(monitor: Monitor) -> int:
    return monitor.snapshot()["runner"]["stats"]["kettle"]["runs"]


def test_verdicts_on_undeclared_alarms_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    def stray(sample: Any, ctx: Judging) -> dict[str, Verdict]:
        return {"boiling": Verdict(True), "overheat": Verdict(True)}

    with REGISTRY.scoped():
        declare(REGISTRY, alarms={"boiling": BoilingAlarm}, verdicts=stray)
        cfg = ProbesConfig().alarms
        cfg.boiling.raise_after = 1
        judge = AlarmJudge(cfg)
        changes = judge.sample(KettleSample(boiling=True), 1.0, 1.0)
    assert [(c.name, c.action) for c in changes] == [("boiling", "raised")]
    assert "does not declare: ['overheat']" in caplog.text


def test_the_config_follows_the_registry() -> None:
    with REGISTRY.scoped():
        declare(REGISTRY, alarms={"boiling": BoilingAlarm}, verdicts=no_verdicts)
        cfg = ProbesConfig()
        assert (cfg.kettle.litres, cfg.kettle.enabled, cfg.kettle.interval_seconds) == (
            1.5,
            True,
            60.0,
        )
        assert cfg.alarms.boiling.severity == "info"
    with pytest.raises(AttributeError, match="no probe section 'kettle'"):
        ProbesConfig().kettle  # noqa: B018
    assert not hasattr(ProbesConfig().alarms, "boiling")
