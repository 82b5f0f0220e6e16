"""Names of the learners and brains, by group: the plugin point.

Each entry says how to build an implementation of a protocol of :mod:`models.base` and the
memory it may hold per key, which ``tests/conformance`` checks. The built-ins are
registered here, in one list; a plugin registers the same way, under its own name.

Examples
--------
>>> from models import registry
>>> registry.names("detectors")
['series']
>>> detector = registry.create("detectors", "series")
>>> detector.learn_one(1_700_000_000.0, 1.0)
>>> registry.entry("detectors", "series").max_bytes_per_key
32768
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.brains.cost import CostBrain
from models.brains.errors import ErrorBrain
from models.brains.interactions import InteractionsBrain
from models.brains.metrics import MetricsBrain
from models.brains.tenants import TenantBrain
from models.detect.anomaly import SeriesDetector
from models.forecast.load import LoadForecaster

__all__ = ["GROUPS", "Entry", "RegistryError", "create", "entry", "names", "register"]

GROUPS = ("detectors", "forecasters", "brains")
"""What can be registered: per-series detectors and forecasters, and whole brains."""


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
    """

    group: str
    name: str
    factory: Callable[..., Any]
    max_bytes_per_key: int
    summary: str


_entries: dict[str, dict[str, Entry]] = {group: {} for group in GROUPS}


def register(
    group: str, name: str, factory: Callable[..., Any], *, max_bytes_per_key: int, summary: str
) -> Entry:
    """Register ``factory`` as ``name`` in ``group``; a name is registered once."""
    if group not in _entries:
        raise RegistryError(f"unknown group {group!r}; groups: {', '.join(GROUPS)}")
    if name in _entries[group]:
        raise RegistryError(f"{group} {name!r} is registered already")
    registered = Entry(group, name, factory, max_bytes_per_key, summary)
    _entries[group][name] = registered
    return registered


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


KIB = 1024
register(
    "detectors",
    "series",
    SeriesDetector,
    max_bytes_per_key=32 * KIB,
    summary="robust expectation with four tests: spike, level shift, variance, flat line",
)
register(
    "forecasters",
    "load",
    LoadForecaster,
    max_bytes_per_key=48 * KIB,
    summary="daily and weekly profiles with fast and slow levels, combined per horizon",
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
