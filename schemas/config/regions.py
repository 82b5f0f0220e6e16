"""Region configuration: jurisdictions, headroom, cost, latencies and data residency rules.

The configuration is a TOML file (the simulator's three regions are described by the bundled
``streams/config/regions.toml``)::

    [regions.eu-west]
    jurisdiction = "EU"
    headroom = 0.35        # share of capacity free to absorb moved traffic, in [0, 1]
    cost = 1.1             # relative cost of serving there, > 0

    [latency_ms.eu-west]
    us-east = 75           # one direction is enough; the other is the same unless given

    [residency]
    default = ["*"]        # required: the rule of data classes without one of their own
    eu-personal = ["EU"]   # jurisdictions a data class may be served from; "*" is anywhere

Every region pair needs a latency and every jurisdiction a rule names must be some region's,
so that a typo cannot silently widen or narrow where data may go. A bad file raises
:class:`RegionConfigError` naming the line and the field, e.g.
``regions.toml:12: regions.eu-west.headroom: must be in [0, 1], got 1.5``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.config.toml import CONFIG_DIR, ConfigError, Value, from_mapping, load, parse

__all__ = [
    "ANY_JURISDICTION",
    "DEFAULT_DATA_CLASS",
    "DEFAULT_REGION_CONFIG_PATH",
    "Region",
    "RegionConfig",
    "RegionConfigError",
    "load_region_config",
    "parse_region_config",
]

DEFAULT_REGION_CONFIG_PATH = CONFIG_DIR / "regions.toml"
"""The bundled configuration of the simulator's regions (us-east, eu-west, ap-south)."""
DEFAULT_DATA_CLASS = "default"
"""Data class of traffic without a classification; its rule also covers unlisted classes."""
ANY_JURISDICTION = "*"
"""In a residency rule: any jurisdiction."""

# Same shapes as schemas.fields: region names as NAME, data classes as LABEL_PATTERN.
_REGION_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DATA_CLASS = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_JURISDICTION = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_REGION_FIELDS = ("jurisdiction", "headroom", "cost")
_TOP_LEVEL = ("regions", "latency_ms", "residency")


class RegionConfigError(ConfigError):
    """A region configuration is unreadable or invalid; the message names line and field."""


@dataclass(frozen=True, slots=True)
class Region:
    """One region: where it is legally, how much traffic it can absorb, what it costs.

    Examples
    --------
    >>> Region("eu-west", "EU", headroom=0.35, cost=1.1).jurisdiction
    'EU'

    """

    name: str
    jurisdiction: str
    headroom: float
    cost: float


@dataclass(frozen=True, slots=True)
class RegionConfig:
    """Regions, the latency between them, and the data residency rules.

    Build one with :func:`load_region_config`, :func:`parse_region_config` or
    :meth:`from_dict`, which validate; the constructor itself checks nothing.

    Parameters
    ----------
    regions
        Region name -> :class:`Region`.
    latency_ms
        ``(from, to)`` -> round-trip milliseconds, for every ordered pair of distinct regions.
    residency
        Data class -> jurisdictions it may be served from (:data:`ANY_JURISDICTION` for any);
        :data:`DEFAULT_DATA_CLASS` covers classes without a rule of their own.
    source
        Where the configuration came from, for messages.

    Examples
    --------
    >>> config = RegionConfig.from_dict({
    ...     "regions": {"eu-west": {"jurisdiction": "EU", "headroom": 0.3, "cost": 1.1},
    ...                 "us-east": {"jurisdiction": "US", "headroom": 0.4, "cost": 1.0}},
    ...     "latency_ms": {"eu-west": {"us-east": 75}},
    ...     "residency": {"default": ["*"], "eu-personal": ["EU"]},
    ... })
    >>> config.names, config.latency("us-east", "eu-west")
    (('eu-west', 'us-east'), 75.0)
    >>> config.allows("eu-personal", "us-east"), config.allows("telemetry", "us-east")
    (False, True)

    """

    regions: Mapping[str, Region]
    latency_ms: Mapping[tuple[str, str], float]
    residency: Mapping[str, frozenset[str]]
    source: str = field(default="", compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        """Region names, sorted."""
        return tuple(sorted(self.regions))

    @property
    def jurisdictions(self) -> frozenset[str]:
        """Jurisdictions of the configured regions."""
        return frozenset(r.jurisdiction for r in self.regions.values())

    def latency(self, source: str, target: str) -> float:
        """Round-trip milliseconds from ``source`` to ``target`` (0 for the same region)."""
        return 0.0 if source == target else self.latency_ms[(source, target)]

    def allowed_jurisdictions(self, data_class: str) -> frozenset[str]:
        """Jurisdictions ``data_class`` may be served from; may contain :data:`ANY_JURISDICTION`.

        A class without a rule of its own follows :data:`DEFAULT_DATA_CLASS`; without that
        rule too, it may be served nowhere (residency fails closed).
        """
        rule = self.residency.get(data_class)
        if rule is None:
            rule = self.residency.get(DEFAULT_DATA_CLASS, frozenset())
        return rule

    def allows(self, data_class: str, region: str) -> bool:
        """Whether traffic of ``data_class`` may be served from ``region``."""
        allowed = self.allowed_jurisdictions(data_class)
        info = self.regions.get(region)
        if info is None:
            return False
        return ANY_JURISDICTION in allowed or info.jurisdiction in allowed

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "") -> RegionConfig:
        """Validate a decoded configuration document and build the :class:`RegionConfig`.

        Raises
        ------
        RegionConfigError
            Naming the first bad field, e.g. ``regions.eu-west.cost: must be > 0, got 0``.

        """
        return from_mapping(raw, _builder(source), source=source, error=RegionConfigError)


def _builder(source: str) -> Callable[[Value], RegionConfig]:
    return lambda doc: _build(doc, source)


def _build(doc: Value, source: str) -> RegionConfig:
    top = doc.table(_TOP_LEVEL)
    listed = top.required("regions", "is required: a table of regions")
    if not listed.table(of="regions"):
        raise listed.invalid("must name at least one region")
    regions: dict[str, Region] = {}
    for name, value in listed.table().items(_REGION_NAME, "a region name"):
        body = value.table(_REGION_FIELDS)
        regions[name] = Region(
            name,
            jurisdiction=body.required("jurisdiction").string(
                _JURISDICTION, "a jurisdiction name such as EU"
            ),
            headroom=float(body.required("headroom").number(0, 1)),
            cost=float(body.required("cost").number(0, low_open=True)),
        )
    latency = _latencies(top.get("latency_ms", {}), regions)
    residency = _residency(
        top.required("residency", "is required, with at least a default rule"), regions
    )
    return RegionConfig(regions, latency, residency, source)


def _latencies(value: Value, regions: Mapping[str, Region]) -> dict[tuple[str, str], float]:
    given: dict[tuple[str, str], float] = {}
    for source, row in value.table().items():
        if source not in regions:
            raise row.invalid(f"{source!r} is not a configured region")
        for target, ms in row.table().items():
            if target not in regions:
                raise ms.invalid(f"{target!r} is not a configured region")
            if target == source:
                raise ms.invalid("a region's latency to itself is 0 and is not listed")
            given[(source, target)] = float(ms.number(0))
    latency: dict[tuple[str, str], float] = {}
    names = sorted(regions)
    for a in names:
        for b in names:
            if a == b:
                continue
            found = given.get((a, b), given.get((b, a)))
            if found is None:
                # Point at a row that exists, if either does, so the line number helps.
                row = b if any(s == b for s, _ in given) and all(s != a for s, _ in given) else a
                raise ConfigError(
                    f"is missing: give latency_ms.{a}.{b} or latency_ms.{b}.{a}",
                    path=(*value.path, row, b if row == a else a),
                )
            latency[(a, b)] = found
    return latency


def _residency(value: Value, regions: Mapping[str, Region]) -> dict[str, frozenset[str]]:
    known = {r.jurisdiction for r in regions.values()}
    residency: dict[str, frozenset[str]] = {}
    for data_class, rule in value.table().items(_DATA_CLASS, "a data class"):
        allowed = rule.array('jurisdictions (or ["*"])', non_empty=True)
        for item in allowed:
            jurisdiction = item.string()
            if jurisdiction != ANY_JURISDICTION and jurisdiction not in known:
                names = ", ".join(sorted(known))
                raise item.invalid(
                    f'unknown jurisdiction {jurisdiction!r} (regions are in: {names}; "*" is any)'
                )
        residency[data_class] = frozenset(item.raw for item in allowed)
    if DEFAULT_DATA_CLASS not in residency:
        raise ConfigError(
            'is required: the rule of data classes without their own (["*"] for anywhere)',
            path=(*value.path, DEFAULT_DATA_CLASS),
        )
    return residency


def parse_region_config(text: str, *, source: str = "<string>") -> RegionConfig:
    """Parse and validate a TOML region configuration.

    Parameters
    ----------
    text
        The TOML document.
    source
        Its name in error messages, e.g. the file path.

    Raises
    ------
    RegionConfigError
        ``source:line: field: problem`` for the first error, syntax or meaning.

    Examples
    --------
    >>> parse_region_config('''
    ... [regions.eu-west]
    ... jurisdiction = "EU"
    ... headroom = 1.5
    ... cost = 1.0
    ... ''', source="regions.toml")
    Traceback (most recent call last):
    ...
    schemas.config.regions.RegionConfigError: regions.toml:4: regions.eu-west.headroom: \
must be in [0, 1], got 1.5

    """
    return parse(text, _builder(source), source=source, error=RegionConfigError)


def load_region_config(path: str | Path | None = None) -> RegionConfig:
    """Read and validate a TOML region configuration file.

    Parameters
    ----------
    path
        The file; ``None`` reads :data:`DEFAULT_REGION_CONFIG_PATH`.

    Raises
    ------
    RegionConfigError
        If the file is missing, unreadable or invalid (naming the line and field).

    Examples
    --------
    >>> config = load_region_config()
    >>> config.names
    ('ap-south', 'eu-west', 'us-east')
    >>> sorted(config.allowed_jurisdictions("eu-personal"))
    ['EU']

    """
    path = DEFAULT_REGION_CONFIG_PATH if path is None else Path(path)
    return load(path, _builder(str(path)), error=RegionConfigError, what="region configuration")
