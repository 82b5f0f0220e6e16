"""Scenario files: the scripted incidents a simulation run plays out.

A scenario is a small JSON document::

    {"name": "eu-outage", "duration_s": 1800, "tick_s": 5,
     "incidents": [{"type": "region_outage", "region": "eu-west",
                    "start_s": 600, "duration_s": 300, "degrade_s": 60}]}

Times are seconds of *event* time from the start of the run. Every field is
checked on load and a bad one fails with a :class:`ScenarioError` that names it
(``incidents[0].region``), so a typo never turns into a silently healthy run.
Names of services and regions are checked later, against the simulated fleet,
by :meth:`Scenario.check_fleet`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import orjson

__all__ = [
    "FAULT_TYPES",
    "INCIDENT_TYPES",
    "MAX_DURATION_S",
    "SATURATING_METRICS",
    "SCENARIO_DIR",
    "Brownout",
    "ErrorBurst",
    "Flapping",
    "Incident",
    "LoadSurge",
    "RegionOutage",
    "Saturation",
    "Scenario",
    "ScenarioError",
    "bundled_scenarios",
    "load_scenario",
    "parse_scenario",
]

#: Longest simulated span: downstream validators reject events older than a day,
#: and a run that ends near now must start less than that before it.
MAX_DURATION_S = 23 * 3600.0

#: The fault types an ``error_burst`` may name; the simulator has log templates for each.
FAULT_TYPES = (
    "db_connection_pool_exhausted",
    "upstream_timeout",
    "dependency_unavailable",
    "health_check_failed",
    "out_of_memory",
    "validation_error",
    "rate_limited",
    "null_reference",
    "tls_handshake_failure",
    "disk_full",
)

#: The metrics a ``saturation`` incident may drive, and the value each breaches at (the
#: worker's default limits, :data:`models.forecast.breach.DEFAULT_LIMITS`).
SATURATING_METRICS = {
    "mem_util": 0.95,
    "disk_util": 0.95,
    "conn_pool_util": 1.0,
    "error_budget_used": 1.0,
}

#: The example scenarios shipped with the package.
SCENARIO_DIR = Path(__file__).with_name("scenarios")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_VERSION = re.compile(r"^v\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_MISSING: Any = object()


class ScenarioError(ValueError):
    """A scenario file is unreadable or has a field the simulator cannot run."""


def _fail(where: str, message: str) -> ScenarioError:
    return ScenarioError(f"{where} {message}" if where else message)


class _Fields:
    """Typed, named access to one JSON object; every failure names the field."""

    def __init__(self, raw: object, where: str, allowed: Iterable[str]) -> None:
        if not isinstance(raw, Mapping):
            raise _fail(where or "scenario", f"must be a JSON object, got {type(raw).__name__}")
        allowed = tuple(allowed)
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise _fail(
                self._path(where, unknown[0]),
                f"is not a known field here (allowed: {', '.join(allowed)})",
            )
        self.raw = raw
        self.where = where

    @staticmethod
    def _path(where: str, field: str) -> str:
        return f"{where}.{field}" if where else field

    def path(self, field: str) -> str:
        return self._path(self.where, field)

    def number(
        self,
        field: str,
        *,
        low: float,
        high: float = math.inf,
        low_open: bool = False,
        default: float = _MISSING,
    ) -> float:
        value = self.raw.get(field, default)
        if value is _MISSING:
            raise _fail(self.path(field), "is required")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(self.path(field), f"must be a number, got {value!r}")
        too_low = value <= low if low_open else value < low
        if too_low or value > high or not math.isfinite(value):
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            upper = f" and <= {high:g}" if math.isfinite(high) else ""
            raise _fail(self.path(field), f"must be {bound}{upper}, got {value!r}")
        return float(value)

    def string(
        self, field: str, *, pattern: re.Pattern[str] | None = None, default: str | None = _MISSING
    ) -> str | None:
        value = self.raw.get(field, default)
        if value is _MISSING:
            raise _fail(self.path(field), "is required")
        if value is None and default is None:
            return None
        if not isinstance(value, str):
            raise _fail(self.path(field), f"must be a string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise _fail(self.path(field), f"{value!r} does not match {pattern.pattern}")
        return value

    def name(self, field: str, *, optional: bool = False) -> str | None:
        return self.string(field, pattern=_NAME, default=None if optional else _MISSING)


@dataclass(frozen=True, slots=True)
class _Window:
    """When an incident is active: ``[start_s, start_s + duration_s)`` of event time."""

    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class RegionOutage(_Window):
    """A region degrades for ``degrade_s`` and then goes completely silent until the end."""

    type: ClassVar[str] = "region_outage"
    region: str
    degrade_s: float = 60.0

    @property
    def stop_s(self) -> float:
        """When the region stops sending anything at all."""
        return self.start_s + self.degrade_s


@dataclass(frozen=True, slots=True)
class Brownout(_Window):
    """Every service of a region answers slowly and fails a fraction of requests."""

    type: ClassVar[str] = "brownout"
    region: str
    error_rate: float = 0.2
    latency_factor: float = 4.0


@dataclass(frozen=True, slots=True)
class ErrorBurst(_Window):
    """One series logs ``rate_per_s`` errors of one fault type, maybe after a new deploy."""

    type: ClassVar[str] = "error_burst"
    service: str
    region: str
    fault_type: str
    rate_per_s: float = 20.0
    deploy_version: str | None = None


@dataclass(frozen=True, slots=True)
class LoadSurge(_Window):
    """Demand ramps up to ``factor`` x over ``ramp_s``, holds, and ramps back down."""

    type: ClassVar[str] = "load_surge"
    service: str
    region: str | None = None
    factor: float = 3.0
    ramp_s: float = 120.0

    @property
    def peak_s(self) -> float:
        """The middle of the plateau, where demand is at ``factor`` x."""
        return self.start_s + self.duration_s / 2

    def multiplier(self, t_s: float) -> float:
        """The demand multiplier at ``t_s`` seconds into the run.

        >>> s = LoadSurge(start_s=100, duration_s=400, service="search", factor=3, ramp_s=100)
        >>> [s.multiplier(t) for t in (50, 100, 150, 300, 450, 500)]
        [1.0, 1.0, 2.0, 3.0, 2.0, 1.0]
        """
        into = t_s - self.start_s
        if into <= 0 or into >= self.duration_s:
            return 1.0
        ramp = min(into, self.duration_s - into)
        share = 1.0 if self.ramp_s <= 0 else min(1.0, ramp / self.ramp_s)
        return 1.0 + (self.factor - 1.0) * share


@dataclass(frozen=True, slots=True)
class Flapping(_Window):
    """A region alternates between down (first half of each period) and healthy."""

    type: ClassVar[str] = "flapping"
    region: str
    period_s: float = 120.0

    def is_down(self, t_s: float) -> bool:
        """Whether the region is in a down phase ``t_s`` seconds into the run.

        >>> f = Flapping(start_s=100, duration_s=400, region="eu-west", period_s=100)
        >>> [f.is_down(t) for t in (99, 100, 149, 150, 200, 500)]
        [False, True, True, False, True, False]
        """
        into = t_s - self.start_s
        if into < 0 or into >= self.duration_s:
            return False
        return into % self.period_s < self.period_s / 2


@dataclass(frozen=True, slots=True)
class Saturation(_Window):
    """A saturating metric of one series climbs linearly, e.g. a memory leak or a disk fill.

    It goes from ``from_value`` at the start to ``to_value`` at the end (a value at or past
    the metric's limit in :data:`SATURATING_METRICS` is a breach); then the incident is over
    (the process restarted, the volume cleaned) and the metric is back to normal.
    """

    type: ClassVar[str] = "saturation"
    service: str
    region: str
    metric: str = "mem_util"
    from_value: float = 0.5
    to_value: float = 1.0

    def value(self, t_s: float) -> float:
        """The metric's value ``t_s`` seconds into the run, while the incident is active.

        >>> s = Saturation(start_s=0, duration_s=100, service="a", region="b", from_value=0.5)
        >>> s.value(50), round(s.breach_s, 6)
        (0.75, 90.0)
        """
        share = (t_s - self.start_s) / self.duration_s
        return self.from_value + (self.to_value - self.from_value) * share

    @property
    def breach_s(self) -> float | None:
        """When the value reaches the metric's limit, if it does."""
        limit = SATURATING_METRICS[self.metric]
        if self.to_value < limit:
            return None
        if self.from_value >= limit:
            return self.start_s
        share = (limit - self.from_value) / (self.to_value - self.from_value)
        return self.start_s + share * self.duration_s


Incident = RegionOutage | Brownout | ErrorBurst | LoadSurge | Flapping | Saturation
INCIDENT_TYPES: dict[str, type[Incident]] = {
    cls.type: cls for cls in (RegionOutage, Brownout, ErrorBurst, LoadSurge, Flapping, Saturation)
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named run length, tick and list of scripted incidents.

    Examples
    --------
    >>> s = parse_scenario({"name": "calm", "duration_s": 600})
    >>> s.name, s.duration_s, s.tick_s, s.incidents
    ('calm', 600.0, 5.0, ())
    """

    name: str
    duration_s: float
    tick_s: float = 5.0
    incidents: tuple[Incident, ...] = ()
    description: str = ""

    def after(self, history_s: float) -> Scenario:
        """The same scenario, preceded by ``history_s`` event seconds without incidents.

        >>> s = parse_scenario({"name": "x", "duration_s": 60, "incidents": [
        ...     {"type": "brownout", "region": "eu", "start_s": 10, "duration_s": 20}]})
        >>> later = s.after(100)
        >>> later.duration_s, later.incidents[0].start_s
        (160.0, 110.0)
        """
        return replace(
            self,
            duration_s=self.duration_s + history_s,
            incidents=tuple(replace(i, start_s=i.start_s + history_s) for i in self.incidents),
        )

    def check_fleet(
        self, services: Iterable[str], regions: Iterable[str], duration_s: float | None = None
    ) -> None:
        """Fail unless every incident names a simulated service and region and fits the run.

        ``duration_s`` is the run's length when it overrides the scenario's own.

        >>> s = parse_scenario({"name": "x", "duration_s": 60, "incidents": [
        ...     {"type": "brownout", "region": "mars", "start_s": 0, "duration_s": 10}]})
        >>> s.check_fleet(["checkout"], ["eu"])
        Traceback (most recent call last):
        ...
        streams.lab.scenario.ScenarioError: incidents[0].region 'mars' \
is not a simulated region (eu)
        """
        services, regions = tuple(services), tuple(regions)
        span = self.duration_s if duration_s is None else duration_s
        for i, incident in enumerate(self.incidents):
            where = f"incidents[{i}]"
            service = getattr(incident, "service", None)
            if service is not None and service not in services:
                raise _fail(
                    f"{where}.service",
                    f"{service!r} is not a simulated service ({', '.join(services)})",
                )
            region = getattr(incident, "region", None)
            if region is not None and region not in regions:
                raise _fail(
                    f"{where}.region",
                    f"{region!r} is not a simulated region ({', '.join(regions)})",
                )
            if incident.end_s > span:
                raise _fail(
                    f"{where}.duration_s",
                    f"makes the incident end at {incident.end_s:g} s, after the run's {span:g} s",
                )


def _incident(raw: object, where: str) -> Incident:
    if not isinstance(raw, Mapping):
        raise _fail(where, f"must be a JSON object, got {type(raw).__name__}")
    kind = raw.get("type", _MISSING)
    if kind is _MISSING:
        raise _fail(f"{where}.type", f"is required (one of {', '.join(INCIDENT_TYPES)})")
    if kind not in INCIDENT_TYPES:
        raise _fail(f"{where}.type", f"{kind!r} is not one of {', '.join(INCIDENT_TYPES)}")
    common = ("type", "start_s", "duration_s")
    extra: dict[str, tuple[str, ...]] = {
        "region_outage": ("region", "degrade_s"),
        "brownout": ("region", "error_rate", "latency_factor"),
        "error_burst": ("service", "region", "fault_type", "rate_per_s", "deploy_version"),
        "load_surge": ("service", "region", "factor", "ramp_s"),
        "flapping": ("region", "period_s"),
        "saturation": ("service", "region", "metric", "from_value", "to_value"),
    }
    f = _Fields(raw, where, common + extra[kind])
    start_s = f.number("start_s", low=0, high=MAX_DURATION_S)
    duration_s = f.number("duration_s", low=0, high=MAX_DURATION_S, low_open=True)
    window = {"start_s": start_s, "duration_s": duration_s}
    if kind == "region_outage":
        degrade_s = f.number("degrade_s", low=0, high=duration_s, default=min(60.0, duration_s))
        return RegionOutage(**window, region=f.name("region"), degrade_s=degrade_s)
    if kind == "brownout":
        return Brownout(
            **window,
            region=f.name("region"),
            error_rate=f.number("error_rate", low=0, high=1, default=0.2),
            latency_factor=f.number("latency_factor", low=1, high=1000, default=4.0),
        )
    if kind == "error_burst":
        fault = f.string("fault_type")
        if fault not in FAULT_TYPES:
            raise _fail(f.path("fault_type"), f"{fault!r} is not one of {', '.join(FAULT_TYPES)}")
        return ErrorBurst(
            **window,
            service=f.name("service"),
            region=f.name("region"),
            fault_type=fault,
            rate_per_s=f.number("rate_per_s", low=0, high=100_000, low_open=True, default=20.0),
            deploy_version=f.string("deploy_version", pattern=_VERSION, default=None),
        )
    if kind == "load_surge":
        ramp_s = f.number("ramp_s", low=0, default=min(120.0, duration_s / 2))
        if 2 * ramp_s > duration_s:
            raise _fail(
                f.path("ramp_s"),
                f"must be at most half of duration_s ({duration_s / 2:g}), got {ramp_s:g}",
            )
        return LoadSurge(
            **window,
            service=f.name("service"),
            region=f.name("region", optional=True),
            factor=f.number("factor", low=0, high=1000, low_open=True, default=3.0),
            ramp_s=ramp_s,
        )
    if kind == "saturation":
        metric = f.string("metric", default="mem_util")
        if metric not in SATURATING_METRICS:
            names = ", ".join(SATURATING_METRICS)
            raise _fail(f.path("metric"), f"{metric!r} is not one of {names}")
        return Saturation(
            **window,
            service=f.name("service"),
            region=f.name("region"),
            metric=metric,
            from_value=f.number("from_value", low=0, high=10, default=0.5),
            to_value=f.number("to_value", low=0, high=10, default=1.0),
        )
    return Flapping(
        **window,
        region=f.name("region"),
        period_s=f.number(
            "period_s", low=0, high=duration_s, low_open=True, default=min(120.0, duration_s)
        ),
    )


def parse_scenario(raw: object, *, source: str = "") -> Scenario:
    """Validate a decoded scenario document and build the :class:`Scenario`.

    Parameters
    ----------
    raw
        The decoded JSON document.
    source
        Where it came from, prefixed to error messages (e.g. the file name).

    Raises
    ------
    ScenarioError
        Naming the first bad field, e.g. ``incidents[1].factor must be > 0``.

    Examples
    --------
    >>> parse_scenario({"name": "x", "duration_s": 60, "incidents": [{"type": "quake"}]})
    Traceback (most recent call last):
    ...
    streams.lab.scenario.ScenarioError: incidents[0].type 'quake' is not one of region_outage, \
brownout, error_burst, load_surge, flapping, saturation
    """
    try:
        f = _Fields(raw, "", ("name", "description", "duration_s", "tick_s", "incidents"))
        duration_s = f.number("duration_s", low=0, high=MAX_DURATION_S, low_open=True)
        tick_s = f.number("tick_s", low=0, high=duration_s, low_open=True, default=5.0)
        raw_incidents = f.raw.get("incidents", [])
        if not isinstance(raw_incidents, list):
            raise _fail("incidents", f"must be a list, got {type(raw_incidents).__name__}")
        scenario = Scenario(
            name=f.string("name", pattern=re.compile(r"^\S.{0,99}$")),
            duration_s=duration_s,
            tick_s=tick_s,
            incidents=tuple(
                _incident(item, f"incidents[{i}]") for i, item in enumerate(raw_incidents)
            ),
            description=f.string("description", default=""),
        )
        for i, incident in enumerate(scenario.incidents):
            if incident.end_s > duration_s:
                raise _fail(
                    f"incidents[{i}].duration_s",
                    f"makes the incident end at {incident.end_s:g} s, after the scenario's "
                    f"duration_s {duration_s:g}",
                )
    except ScenarioError as exc:
        if source:
            raise ScenarioError(f"{source}: {exc}") from None
        raise
    return scenario


def bundled_scenarios() -> list[str]:
    """Names of the example scenarios shipped in :data:`SCENARIO_DIR`."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file.

    Parameters
    ----------
    path
        A JSON file, or the bare name of a bundled scenario (``"region_outage"``).

    Raises
    ------
    ScenarioError
        If the file is missing, is not JSON, or has a bad field (named in the message).
    """
    path = Path(path)
    if not path.exists() and path.name == str(path) and path.suffix == "":
        bundled = SCENARIO_DIR / f"{path.name}.json"
        if bundled.exists():
            path = bundled
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        names = ", ".join(bundled_scenarios())
        raise ScenarioError(f"{path}: no such scenario file (bundled: {names})") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not valid JSON: {exc}") from None
    return parse_scenario(raw, source=str(path))
