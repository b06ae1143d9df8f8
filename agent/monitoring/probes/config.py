"""The ``probes:`` section of the agent config: the monitor's keys, one section per probe, and
under ``alarms:`` one section per alarm, all as the registered probes declare them.

Defaults are chosen for a village terminal on a slow, flaky link and an SD card: link checks once
a minute, slow things (CEC, DNS, wear) every few minutes or hourly, and alarms that need several
bad samples in a row so a flapping link gives one alarm, not a hundred.

A probe's section is its own config dataclass plus the three keys the monitor owns for every
probe (``enabled``, ``interval_seconds``, ``timeout_seconds``), declared here once from the
probe's ``Cadence``. ``ProbesConfig`` and ``AlarmsConfig`` follow the registry: when a probe
registers (or a scoped registration ends) their fields are declared again, in place, because the
agent's config class took ``ProbesConfig`` as a field type when it was imported and must see a
probe registered after that.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Literal

from agent.domain.schema import between
from agent.monitoring.probes.registry import REGISTRY, ProbeSpec


@dataclass
class AlarmsConfig:
    """One field per registered alarm: its settings (thresholds, counts, severity)."""


@dataclass
class ProbesConfig:
    """``mode`` picks the link probes: telecom (tcp/dns/icmp/gateway/netif) or satellite
    (dvb/datacast); one field per registered probe follows these."""

    enabled: bool = True
    mode: Literal["telecom", "satellite"] = "telecom"
    workers: int = field(default=3, metadata={"check": between(1, 16)})
    window_minutes: float = field(default=15.0, metadata={"check": between(1, 24 * 60)})
    summary_minutes: float = field(default=60.0, metadata={"check": between(1, 24 * 60)})
    emit_samples: bool = False
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing attribute: name the probes that exist.
        raise AttributeError(
            f"no probe section {name!r} in the probes config (registered: "
            f"{', '.join(REGISTRY.names())})"
        )


_GENERATED = (
    "__init__",
    "__repr__",
    "__eq__",
    "__hash__",
    "__match_args__",
    "__dataclass_fields__",
    "__dataclass_params__",
)
_OWN: dict[type, tuple[dict[str, Any], list[dataclasses.Field[Any]]]] = {
    cls: (dict(cls.__annotations__), list(dataclasses.fields(cls)))
    for cls in (ProbesConfig, AlarmsConfig)
}
_SECTIONS: dict[tuple[str, type], type] = {}


def section_type(spec: ProbeSpec) -> type:
    """The config section of one probe: its config dataclass plus the monitor's three keys."""
    key = (spec.name, spec.config)
    if key not in _SECTIONS:
        c = spec.cadence
        _SECTIONS[key] = make_dataclass(
            spec.config.__name__.removesuffix("Config") + "Section",
            [
                ("enabled", bool, field(default=c.enabled)),
                (
                    "interval_seconds",
                    float,
                    field(
                        default=float(c.interval), metadata={"check": between(*c.interval_range)}
                    ),
                ),
                (
                    "timeout_seconds",
                    float,
                    field(default=float(c.timeout), metadata={"check": between(*c.timeout_range)}),
                ),
            ],
            bases=(spec.config,),
            namespace={"__module__": spec.config.__module__},
        )
    return _SECTIONS[key]


def _declare(cls: type, sections: dict[str, type]) -> None:
    """Make ``cls`` a dataclass of its own fields plus one defaulted field per section, in place."""
    annotations, own = _OWN[cls]
    for name in list(getattr(cls, "__dataclass_fields__", {})):
        if name not in annotations and name in cls.__dict__:
            delattr(cls, name)
    for attr in _GENERATED:
        if attr in cls.__dict__:
            delattr(cls, attr)
    cls.__annotations__ = {**annotations, **sections}
    for f in own:
        setattr(cls, f.name, f)
    for name, kind in sections.items():
        setattr(cls, name, field(default_factory=kind))
    dataclass(cls)


def _follow_registry() -> None:
    _declare(ProbesConfig, {spec.name: section_type(spec) for spec in REGISTRY.specs()})
    _declare(AlarmsConfig, REGISTRY.alarm_settings())


REGISTRY.reserve(*_OWN[ProbesConfig][0])
_follow_registry()
REGISTRY.subscribe(_follow_registry)
