"""Names of the learners, policies, actions and brains, by group: the plugin point.

Each :class:`Entry` says how to build an implementation of a protocol of :mod:`models.base`,
the memory it may hold per key and the time it may take per call, which the conformance
checks (:mod:`models.plugins.checks`) verify. The built-ins are registered here, in one list.

A plugin is an :class:`Entry` published under an entry point of the group
``paas_autopilot.<group>`` (``detectors``, ``forecasters``, ``policies``, ``actions``) of an
installed package, Python's convention for plugins; :func:`load_plugins` registers them. The
built-ins are published the same way (``pyproject.toml``), so a listing of the entry points
shows every implementation there is.

Examples
--------
>>> from models import registry
>>> "series" in registry.names("detectors")
True
>>> detector = registry.create("detectors", "series")
>>> detector.learn_one({"ts": 1_700_000_000.0, "value": 1.0})
>>> registry.entry("detectors", "series").max_bytes_per_key
32768
>>> registry.entry("detectors", "series").builtin
True
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from models.brains.cost import CostBrain
from models.brains.errors import ErrorBrain
from models.brains.interactions import InteractionsBrain
from models.brains.metrics import MetricsBrain
from models.brains.tenants import TenantBrain
from models.detect.anomaly import SeriesDetector
from models.forecast.load import LoadForecaster
from models.policy.autoscalers import make_policy

__all__ = [
    "CAPABILITIES",
    "ENTRY_POINT_GROUPS",
    "GROUPS",
    "PLUGIN_GROUPS",
    "Entry",
    "RegistryError",
    "create",
    "entry",
    "load_plugins",
    "names",
    "register",
]

PLUGIN_GROUPS = ("detectors", "forecasters", "policies", "actions")
"""What a plugin can implement: a per-series detector or forecaster, a scaling policy, an
action (what is done with a decision)."""
GROUPS = (*PLUGIN_GROUPS, "brains")
"""What can be registered; whole brains only by the product itself."""
ENTRY_POINT_GROUPS = {group: f"paas_autopilot.{group}" for group in PLUGIN_GROUPS}
"""The entry point group of each plugin group."""
CAPABILITIES = frozenset({"network", "filesystem", "subprocess"})
"""What a plugin may declare it needs; admission refuses code that uses an undeclared one."""


class RegistryError(LookupError):
    """An unknown group or name, or a name registered twice."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One registered implementation.

    Attributes
    ----------
    group, name
        Where it is registered, e.g. ``("detectors", "series")``.
    factory
        Builds an instance from keyword configuration.
    max_bytes_per_key
        Memory it may hold per key (a series, a tenant), as its docstring states.
    summary
        One line for listings.
    max_seconds_per_call
        Time one call may take (a detector's ``score_one`` plus ``learn_one``, a
        forecaster's ``update`` or ``forecast_at``, a policy's ``decide``); a plugin that
        takes longer is counted as failing (:mod:`models.plugins.guard`).
    capabilities
        What its code needs beyond computing: any of :data:`CAPABILITIES`.
    event_time
        Detectors: whether ``x`` carries the event time as ``x["ts"]`` besides
        ``x["value"]``. A River estimator that knows nothing of time leaves it ``False``.
    threshold
        Detectors: the score at or above which a value is flagged.
    warmup
        Detectors, forecasters, policies: values learned before a score, a forecast or a
        decision counts (the built-in serves until then).
    builtin
        Whether it is part of the product (set by :func:`register` from the factory's module).
    """

    group: str
    name: str
    factory: Callable[..., Any]
    max_bytes_per_key: int
    summary: str
    max_seconds_per_call: float = 0.001
    capabilities: frozenset[str] = field(default_factory=frozenset)
    event_time: bool = False
    threshold: float = 0.5
    warmup: int = 0
    builtin: bool = False

    def features(self, ts: float, value: float) -> dict[str, float]:
        """What a detector of this entry is given for one value of a series: River's dict of
        features, with the event time only if it asks for it.

        >>> entry("detectors", "series").features(60.0, 1.5)
        {'ts': 60.0, 'value': 1.5}
        """
        return {"ts": ts, "value": value} if self.event_time else {"value": value}


_entries: dict[str, dict[str, Entry]] = {group: {} for group in GROUPS}


def _add(registered: Entry) -> Entry:
    if registered.group not in _entries:
        raise RegistryError(f"unknown group {registered.group!r}; groups: {', '.join(GROUPS)}")
    if registered.name in _entries[registered.group]:
        raise RegistryError(f"{registered.group} {registered.name!r} is registered already")
    unknown = set(registered.capabilities) - CAPABILITIES
    if unknown:
        raise RegistryError(
            f"{registered.group} {registered.name!r} declares unknown capabilities "
            f"{sorted(unknown)}; known: {', '.join(sorted(CAPABILITIES))}"
        )
    _entries[registered.group][registered.name] = registered
    return registered


def register(
    group: str, name: str, factory: Callable[..., Any], *, max_bytes_per_key: int, summary: str,
    **limits: Any,
) -> Entry:  # fmt: skip
    """Register ``factory`` as ``name`` in ``group``; a name is registered once.

    ``limits`` are the other fields of :class:`Entry` (``max_seconds_per_call``, ...).
    """
    # A partial is the product's when what it calls is.
    module = getattr(getattr(factory, "func", factory), "__module__", "") or ""
    builtin = module.split(".")[0] in {"models", "agents", "streams"}
    return _add(Entry(group, name, factory, max_bytes_per_key, summary, builtin=builtin, **limits))


def entry(group: str, name: str) -> Entry:
    """The entry registered as ``name`` in ``group``."""
    try:
        return _entries[group][name]
    except KeyError:
        known = ", ".join(sorted(_entries.get(group, {}))) or "none"
        raise RegistryError(f"no {group} named {name!r} (registered: {known})") from None


def names(group: str) -> list[str]:
    """Names registered in ``group``, sorted."""
    if group not in _entries:
        raise RegistryError(f"unknown group {group!r}; groups: {', '.join(GROUPS)}")
    return sorted(_entries[group])


def create(group: str, name: str, **config: Any) -> Any:
    """A new instance of ``name`` in ``group``, built with ``config``."""
    return entry(group, name).factory(**config)


def load_plugins(modules: Iterable[str] = ()) -> dict[str, str]:
    """Register the entries of every installed package's ``paas_autopilot.*`` entry points,
    and those defined at the top of ``modules`` (``AUTOPILOT_PLUGIN_MODULES``: plugins not
    packaged, such as a team's module on the worker's path).

    An entry point names an :class:`Entry` (``package.module:OBJECT``). The built-ins'
    own entry points give back the very entries registered here and are skipped. Returns
    what could not be registered, ``"group/name"`` (or ``"module/name"``) to a one-line
    reason: a broken plugin is refused, it does not stop the others.
    """
    refused: dict[str, str] = {}
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a plugin's import can raise anything
            refused[f"module/{module_name}"] = f"cannot import: {type(exc).__name__}: {exc}"
            continue
        for value in vars(module).values():
            if isinstance(value, Entry) and _entries[value.group].get(value.name) is not value:
                try:
                    _add(value)
                except RegistryError as exc:
                    refused[f"{value.group}/{value.name}"] = str(exc)
    for group, ep_group in ENTRY_POINT_GROUPS.items():
        for point in importlib.metadata.entry_points(group=ep_group):
            where = f"{group}/{point.name}"
            try:
                loaded = point.load()
            except Exception as exc:  # a plugin's import can raise anything
                refused[where] = f"cannot import {point.value}: {type(exc).__name__}: {exc}"
                continue
            if not isinstance(loaded, Entry):
                refused[where] = f"{point.value} is a {type(loaded).__name__}, not a registry Entry"
                continue
            if (loaded.group, loaded.name) != (group, point.name):
                refused[where] = (
                    f"{point.value} is registered as {loaded.group}/{loaded.name}, "
                    f"not as its entry point {where}"
                )
                continue
            if _entries[group].get(point.name) is loaded:
                continue
            try:
                _add(loaded)
            except RegistryError as exc:
                refused[where] = str(exc)
    return refused


KIB = 1024
SERIES_DETECTOR = register(
    "detectors",
    "series",
    SeriesDetector,
    max_bytes_per_key=32 * KIB,
    summary="robust expectation with four tests: spike, level shift, variance, flat line",
    max_seconds_per_call=0.0002,
    event_time=True,
    threshold=0.5,
)
LOAD_FORECASTER = register(
    "forecasters",
    "load",
    LoadForecaster,
    max_bytes_per_key=48 * KIB,
    summary="daily and weekly profiles with fast and slow levels, combined per horizon",
)
PREDICTIVE_POLICY = register(
    "policies",
    "predictive",
    functools.partial(make_policy, "predictive"),
    max_bytes_per_key=64 * KIB,
    summary="sizes for the load forecast at the start-up delay ahead, learns the delay",
    # A decide takes 90 µs (median; p99 260 µs): a forecast, a capacity and a delay learned.
    max_seconds_per_call=0.005,
)
HPA_POLICY = register(
    "policies",
    "hpa",
    functools.partial(make_policy, "hpa"),
    max_bytes_per_key=4 * KIB,
    summary="Kubernetes' HPA rule with its defaults: the baseline",
)
# Brains: memory per (service, region) series, per tenant, or per error template.
register(
    "brains",
    "metrics",
    MetricsBrain,
    max_bytes_per_key=64 * KIB,
    summary="anomaly detectors, breach risk and predictive scaling per service and region",
)
register(
    "brains",
    "errors",
    ErrorBrain,
    max_bytes_per_key=64 * KIB,
    summary="templates, bursts and the remediation policy",
)
register(
    "brains",
    "interactions",
    InteractionsBrain,
    max_bytes_per_key=64 * KIB,
    summary="SLO burn, usage profiles and feedback sentiment per service and region",
)
register(
    "brains",
    "tenants",
    TenantBrain,
    max_bytes_per_key=64 * KIB,
    summary="each tenant's SLO burn, usage peaks and behaviour",
)
register("brains", "cost", CostBrain, max_bytes_per_key=16 * KIB,
         summary="cost per service and region, rightsizing and spot advice")  # fmt: skip
