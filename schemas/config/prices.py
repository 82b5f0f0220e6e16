"""The price table of the cost engine: instance types, region multipliers, services.

The table is a TOML file (the bundled one is ``streams/config/prices.toml``)::

    [defaults]
    instance_type = "m6i.large"   # required: what services without their own table run on

    [regions]
    eu-west = 1.1                 # price multiplier of a region (1.0 if not listed), > 0

    [services.search]
    instance_type = "m6i.xlarge"
    stateless = true              # both true: a spot candidate
    interruption_tolerant = true

    [instance_types."m6i.large"]
    family = "general"            # compute (more vCPU per GiB), memory or general purpose
    vcpu = 2
    memory_gib = 8
    hourly_usd = 0.096            # on-demand list price
    spot_discount = 0.6           # in [0, 1); 0 if not given

Every instance type a service or the defaults name must be listed, and unknown keys are
errors. A bad file raises :class:`PriceTableError` naming the line and the field, e.g.
``prices.toml:31: instance_types."c6i.large".family: must be one of compute, memory,
general, got the string 'gpu'``. What the cost engine computes from the table is in
:mod:`models.policy.cost`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.config.toml import CONFIG_DIR, ConfigError, Value, load, parse

__all__ = [
    "DEFAULT_PRICES_PATH",
    "FAMILIES",
    "InstanceType",
    "PriceTable",
    "PriceTableError",
    "ServiceCostConfig",
    "load_price_table",
    "parse_price_table",
]

DEFAULT_PRICES_PATH = CONFIG_DIR / "prices.toml"
"""The bundled price table (illustrative AWS list prices)."""
FAMILIES = ("compute", "memory", "general")
"""Instance families: rightsizing moves CPU-bound services to compute, memory-bound to memory."""


class PriceTableError(ConfigError):
    """A price table is unreadable or invalid; the message names line and field."""


@dataclass(frozen=True, slots=True)
class InstanceType:
    """One instance type of the price table."""

    name: str
    family: str
    vcpu: float
    memory_gib: float
    hourly_usd: float
    spot_discount: float = 0.0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family must be one of {', '.join(FAMILIES)}")
        if self.vcpu <= 0 or self.memory_gib <= 0 or self.hourly_usd <= 0:
            raise ValueError(f"{self.name}: vcpu, memory_gib and hourly_usd must be > 0")
        if not 0.0 <= self.spot_discount < 1.0:
            raise ValueError(f"{self.name}: spot_discount must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "vcpu": self.vcpu,
            "memory_gib": self.memory_gib,
            "hourly_usd": self.hourly_usd,
        }


@dataclass(frozen=True, slots=True)
class ServiceCostConfig:
    """How one service runs: its instance type, and whether it can run on spot capacity."""

    instance_type: str
    stateless: bool = False
    interruption_tolerant: bool = False

    @property
    def spot_candidate(self) -> bool:
        return self.stateless and self.interruption_tolerant


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Instance types, region multipliers and the services' instance types.

    Examples
    --------
    >>> m = InstanceType("m.large", "general", 2, 8, 0.10)
    >>> table = PriceTable({"m.large": m}, default_instance_type="m.large", regions={"eu": 1.1})
    >>> table.instance_for("anything").name, round(table.replica_hourly("api", "eu"), 3)
    ('m.large', 0.11)
    """

    instance_types: Mapping[str, InstanceType]
    default_instance_type: str
    regions: Mapping[str, float] = field(default_factory=dict)
    services: Mapping[str, ServiceCostConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {self.default_instance_type} | {s.instance_type for s in self.services.values()}
        unknown = sorted(names - set(self.instance_types))
        if unknown:
            raise ValueError(f"unknown instance type {unknown[0]!r}")
        if any(not m > 0 for m in self.regions.values()):
            raise ValueError("region multipliers must be > 0")

    def service(self, service: str) -> ServiceCostConfig:
        """The service's configuration (the default instance type if not configured)."""
        return self.services.get(service) or ServiceCostConfig(self.default_instance_type)

    def instance_for(self, service: str) -> InstanceType:
        """The instance type ``service`` runs on."""
        return self.instance_types[self.service(service).instance_type]

    def region_multiplier(self, region: str) -> float:
        """Price multiplier of ``region`` (1.0 if not listed)."""
        return self.regions.get(region, 1.0)

    def replica_hourly(self, service: str, region: str) -> float:
        """Hourly price of one replica of ``service`` in ``region``."""
        return self.instance_for(service).hourly_usd * self.region_multiplier(region)


_TOP_LEVEL = ("defaults", "regions", "services", "instance_types")
_TYPE_FIELDS = ("family", "vcpu", "memory_gib", "hourly_usd", "spot_discount")
_SERVICE_FIELDS = ("instance_type", "stateless", "interruption_tolerant")


def _positive(value: Value) -> float:
    return float(value.number(0, low_open=True))


def _build(doc: Value) -> PriceTable:
    top = doc.table(_TOP_LEVEL)
    types: dict[str, InstanceType] = {}
    for name, value in top.get("instance_types", {}).table(of="instance types").items():
        spec = value.table(_TYPE_FIELDS)
        types[name] = InstanceType(
            name=name,
            family=spec.required("family").one_of(FAMILIES),
            vcpu=_positive(spec.required("vcpu")),
            memory_gib=_positive(spec.required("memory_gib")),
            hourly_usd=_positive(spec.required("hourly_usd")),
            spot_discount=float(spec.get("spot_discount", 0.0).number(0, 1, high_open=True)),
        )

    def instance_type(value: Value) -> str:
        name = value.string()
        if name not in types:
            listed = ", ".join(types) or "none"
            raise value.invalid(f"unknown instance type {name!r} (instance_types has: {listed})")
        return name

    services: dict[str, ServiceCostConfig] = {}
    for name, value in top.get("services", {}).table(of="services").items():
        spec = value.table(_SERVICE_FIELDS)
        services[name] = ServiceCostConfig(
            instance_type=instance_type(spec.required("instance_type")),
            stateless=spec.get("stateless", False).boolean(),
            interruption_tolerant=spec.get("interruption_tolerant", False).boolean(),
        )
    defaults = top.required("defaults", "is required: the default instance_type").table(
        ("instance_type",)
    )
    regions = top.get("regions", {}).table(of="region = price multiplier").items()
    return PriceTable(
        instance_types=types,
        default_instance_type=instance_type(defaults.required("instance_type")),
        regions={name: _positive(multiplier) for name, multiplier in regions},
        services=services,
    )


def parse_price_table(text: str, *, source: str = "<string>") -> PriceTable:
    """Parse and validate a TOML price table.

    Raises
    ------
    PriceTableError
        ``source:line: field: problem`` for the first error, syntax or meaning.

    Examples
    --------
    >>> table = parse_price_table('''
    ... [defaults]
    ... instance_type = "m.large"
    ... [regions]
    ... eu-west = 1.1
    ... [instance_types."m.large"]
    ... family = "general"
    ... vcpu = 2
    ... memory_gib = 8
    ... hourly_usd = 0.1
    ... ''')
    >>> round(table.replica_hourly("api", "eu-west"), 3)
    0.11
    >>> parse_price_table('[defaults]\\ninstance_type = "m.huge"', source="prices.toml")
    Traceback (most recent call last):
    ...
    schemas.config.prices.PriceTableError: prices.toml:2: defaults.instance_type: unknown \
instance type 'm.huge' (instance_types has: none)
    """
    return parse(text, _build, source=source, error=PriceTableError)


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """Read and validate a TOML price table file; ``None`` reads :data:`DEFAULT_PRICES_PATH`.

    Raises
    ------
    PriceTableError
        If the file is missing, unreadable or invalid (naming the line and field).

    Examples
    --------
    >>> load_price_table().instance_for("search").name
    'm6i.xlarge'
    """
    path = DEFAULT_PRICES_PATH if path is None else Path(path)
    return load(path, _build, error=PriceTableError, what="price table")
