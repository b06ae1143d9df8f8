"""What a probe declares, and the registry that holds the declarations.

A probe is one file, as Telegraf's inputs are: its config dataclass (its own keys only), its
sample type, a class with ``create(cfg, ctx)`` and ``collect(deadline)``, the alarms it owns
(alarm name -> settings dataclass) with a pure ``verdicts(sample, ctx)`` function, its summary
fields, and one ``@register(...)`` line. Importing the file registers the probe; the package
imports each of its probe files once (``agent/monitoring/probes/__init__.py``), and the config
(``probes.config``), the monitor and the alarm judge read everything else from here.

What stays with the monitor, in one place: the ``enabled``, ``interval_seconds`` and
``timeout_seconds`` keys of every probe's section (a probe declares only their defaults and
bounds, as a ``Cadence``) and the hysteresis counting (``agent.domain.health``).

Errors are data here as in the rest of the monitor: a probe whose ``collect`` raises yields a
failed sample, and a verdict or summary function that raises is logged and skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from agent.domain.health import HysteresisSettings, Verdict
from agent.domain.linkstats import SummaryBuilder
from agent.domain.schema import between
from agent.monitoring.probes.base import Probe, ProbeContext, Sample

Severity = Literal["critical", "warning", "info"]
SHARED_KEYS = ("enabled", "interval_seconds", "timeout_seconds")


@dataclass
class CountHysteresis:
    """Alarm settings: raise after ``raise_after`` bad verdicts in a row, clear after
    ``clear_after`` good ones. Settings classes add ``severity`` and their own thresholds; one may
    define a ``raise_after_seconds`` property (bad for at least that long, too)."""

    raise_after: int = field(default=3, metadata={"check": between(1, 1000)})
    clear_after: int = field(default=2, metadata={"check": between(1, 1000)})


@dataclass(frozen=True)
class Cadence:
    """A probe's default schedule and the bounds a config may set it to.

    The monitor turns this into the ``enabled``, ``interval_seconds`` and ``timeout_seconds``
    keys of the probe's section; ``enabled=False`` makes a probe opt-in. ``quick=True`` says the
    probe cannot block (it reads a few kernel files or makes a syscall that returns at once): the
    monitor runs it on its own thread, so a turn wakes no worker. A probe that touches the
    network, runs a tool, scans a folder or talks to a driver that may sleep leaves it False.
    """

    interval: float
    timeout: float
    interval_range: tuple[float, float] = (1, 86400)
    timeout_range: tuple[float, float] = (0.1, 60)
    enabled: bool = True
    quick: bool = False


@dataclass(frozen=True)
class Judging:
    """What a verdict function may look at besides the sample.

    ``alarms`` is the ``probes.alarms`` config (each alarm's settings by name);
    ``watched_seconds`` is how long (monotonic) the monitor has been receiving this probe's
    samples, for conditions such as "an empty folder, for longer than the limit".
    """

    mode: str
    alarms: Any
    watched_seconds: float = 0.0


@dataclass(frozen=True)
class LinkCycle:
    """One probe run read as a link measurement: up or not, the individual attempts
    ``(ok, rtt_ms)`` for the window, and the detail a link_down change carries."""

    up: bool
    attempts: list[tuple[bool, float | None]]
    detail: dict[str, Any] = field(default_factory=dict)


Verdicts = Callable[[Any, Judging], Mapping[str, Verdict]]
SummaryFields = Callable[[Any, str], Mapping[str, Any]]
PeriodFeed = Callable[[Any, SummaryBuilder, float], None]
LinkReading = Callable[[Any], LinkCycle | None]
Factory = Callable[[Any, ProbeContext], Probe]


@dataclass(frozen=True)
class ProbeSpec:
    """Everything a probe file declares (see the module docstring).

    ``summary(sample, mode)`` gives heartbeat fields from the latest sample; ``period(sample,
    builder, mono)`` feeds the periodic link summary; ``link(sample)`` reads a sample as a link
    cycle (``agent.monitoring.probes.link`` decides whose cycles count).
    """

    name: str
    factory: Factory
    config: type
    sample: type[Sample]
    cadence: Cadence
    alarms: Mapping[str, type] = field(default_factory=dict)
    verdicts: Verdicts | None = None
    summary: SummaryFields | None = None
    period: PeriodFeed | None = None
    link: LinkReading | None = None
    module: str = ""


def hysteresis_of(settings: Any) -> HysteresisSettings:
    """The counting part of an alarm's settings; keys a settings class lacks count as 1 (or 0 s)."""
    return HysteresisSettings(
        severity=settings.severity,
        raise_after=getattr(settings, "raise_after", 1),
        clear_after=getattr(settings, "clear_after", 1),
        raise_after_seconds=getattr(settings, "raise_after_seconds", 0.0),
    )


class RegistryError(ValueError):
    """A probe or alarm declaration that cannot work; the message names it and its module."""


class Registry:
    """Probes by name and by sample type, alarms by name; listeners hear of every change."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._probes: dict[str, ProbeSpec] = {}
        self._alarms: dict[str, tuple[str, type]] = {}  # alarm name -> (owner, settings type)
        self._reserved: set[str] = set()
        self._listeners: list[Callable[[], None]] = []
        self._held = 0  # > 0 inside batch(): listeners hear once, at its end
        self._missed = False

    # -- reading -----------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        return tuple(self._probes)

    def specs(self) -> tuple[ProbeSpec, ...]:
        return tuple(self._probes.values())

    def get(self, name: str) -> ProbeSpec:
        return self._probes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._probes

    def for_sample(self, sample: object) -> ProbeSpec | None:
        """The probe whose sample type ``sample`` is (a plain ``Sample`` belongs to none)."""
        for kind in type(sample).__mro__:
            if kind is Sample:
                return None
            for spec in self._probes.values():
                if spec.sample is kind:
                    return spec
        return None

    def alarm_settings(self) -> dict[str, type]:
        """Every registered alarm's settings type, by alarm name, in registration order."""
        return {name: settings for name, (_owner, settings) in self._alarms.items()}

    # -- changing ----------------------------------------------------------------------------

    def add(self, spec: ProbeSpec) -> None:
        with self._lock:
            old = self._probes.get(spec.name)
            if old is not None and old.module != spec.module:
                raise RegistryError(
                    f"probe {spec.name!r} from {spec.module} is already registered by {old.module}"
                )
            self._check_probe(spec)
            if old is not None:  # the same module imported again (a reload): replace it
                self._drop(spec.name)
            self._check_alarms(spec.name, spec.alarms, spec.module)
            self._probes[spec.name] = spec
            self._alarms.update({a: (spec.name, s) for a, s in spec.alarms.items()})
        self._notify()

    def add_alarms(self, owner: str, alarms: Mapping[str, type]) -> None:
        """Alarms that no single probe owns (the link's, judged across probes)."""
        with self._lock:
            for name in [a for a, (o, _s) in self._alarms.items() if o == owner]:
                del self._alarms[name]
            self._check_alarms(owner, alarms, owner)
            self._alarms.update({a: (owner, s) for a, s in alarms.items()})
        self._notify()

    def remove(self, name: str) -> None:
        with self._lock:
            self._drop(name)
        self._notify()

    def reserve(self, *keys: str) -> None:
        """Names no probe may take (the monitor's own keys in the ``probes:`` section)."""
        with self._lock:
            taken = sorted(set(keys) & set(self._probes))
            if taken:
                raise RegistryError(f"probe name(s) {', '.join(taken)} clash with config keys")
            self._reserved.update(keys)

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    @contextlib.contextmanager
    def batch(self) -> Iterator[Registry]:
        """Many registrations, one notice to the listeners (the package importing its files)."""
        with self._lock:
            self._held += 1
        try:
            yield self
        finally:
            with self._lock:
                self._held -= 1
                due = self._held == 0 and self._missed
            if due:
                self._notify()

    @contextlib.contextmanager
    def scoped(self) -> Iterator[Registry]:
        """Registrations made inside the block are undone at its end (tests, trial plugins)."""
        with self._lock:
            probes, alarms = dict(self._probes), dict(self._alarms)
        try:
            yield self
        finally:
            with self._lock:
                self._probes, self._alarms = probes, alarms
            self._notify()

    # -- checks ------------------------------------------------------------------------------

    def _drop(self, name: str) -> None:
        self._probes.pop(name, None)
        for alarm in [a for a, (o, _s) in self._alarms.items() if o == name]:
            del self._alarms[alarm]

    def _check_probe(self, spec: ProbeSpec) -> None:
        where = f"probe {spec.name!r} ({spec.module})"
        if not spec.name.isidentifier() or spec.name != spec.name.lower():
            raise RegistryError(f"{where}: a probe name must be a lower-case identifier")
        if spec.name in self._reserved:
            raise RegistryError(f"{where}: {spec.name!r} is one of the monitor's own keys")
        if not dataclasses.is_dataclass(spec.config):
            raise RegistryError(f"{where}: config must be a dataclass")
        shared = sorted({f.name for f in dataclasses.fields(spec.config)} & set(SHARED_KEYS))
        if shared:
            raise RegistryError(
                f"{where}: {', '.join(shared)} belong to the monitor; declare them in the Cadence"
            )
        if not issubclass(spec.sample, Sample) or spec.sample is Sample:
            raise RegistryError(f"{where}: sample must be a subclass of Sample")
        for other in self._probes.values():
            if other.sample is spec.sample and other.name != spec.name:
                raise RegistryError(f"{where}: sample type already used by {other.name!r}")
        if bool(spec.alarms) != (spec.verdicts is not None):
            raise RegistryError(f"{where}: alarms and a verdicts function go together")

    def _check_alarms(self, owner: str, alarms: Mapping[str, type], where: str) -> None:
        for name, settings in alarms.items():
            if not name.isidentifier():
                raise RegistryError(f"alarm {name!r} ({where}): must be an identifier")
            taken = self._alarms.get(name)
            if taken is not None and taken[0] != owner:
                raise RegistryError(f"alarm {name!r} ({where}) is already declared by {taken[0]!r}")
            if not dataclasses.is_dataclass(settings) or "severity" not in {
                f.name for f in dataclasses.fields(settings)
            }:
                raise RegistryError(
                    f"alarm {name!r} ({where}): settings must be a dataclass with a severity"
                )

    def _notify(self) -> None:
        with self._lock:
            self._missed = self._held > 0
            if self._missed:
                return
        for listener in list(self._listeners):
            listener()


REGISTRY = Registry()

P = TypeVar("P", bound=type)


def register(
    name: str,
    *,
    config: type,
    sample: type[Sample],
    cadence: Cadence,
    alarms: Mapping[str, type] | None = None,
    verdicts: Verdicts | None = None,
    summary: SummaryFields | None = None,
    period: PeriodFeed | None = None,
    link: LinkReading | None = None,
    registry: Registry = REGISTRY,
) -> Callable[[P], P]:
    """Class decorator: declare and register a probe class (it needs ``create(cfg, ctx)``).

    The class gets ``name``, ``quick`` and, as defaults for instances built outside the monitor
    (tests, stationctl), ``interval`` and ``timeout`` from the cadence.
    """

    def decorate(cls: P) -> P:
        cls.name = name
        cls.interval = float(cadence.interval)
        cls.timeout = float(cadence.timeout)
        cls.quick = cadence.quick
        registry.add(
            ProbeSpec(
                name=name,
                factory=cls.create,
                config=config,
                sample=sample,
                cadence=cadence,
                alarms=dict(alarms or {}),
                verdicts=verdicts,
                summary=summary,
                period=period,
                link=link,
                module=cls.__module__,
            )
        )
        return cls

    return decorate
