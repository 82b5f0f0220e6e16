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

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

DEFAULT_REGION_CONFIG_PATH = (
    Path(__file__).resolve().parents[2] / "streams" / "config" / "regions.toml"
)
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

_KeyPath = tuple[str | int, ...]


class RegionConfigError(ValueError):
    """A region configuration is unreadable or invalid; the message names line and field."""


class _Invalid(Exception):
    """A semantic error at a key path, before the path is turned into a line number."""

    def __init__(self, path: _KeyPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _field_name(path: _KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += f".{text}" if out else text
    return out


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
        try:
            return _build(raw, source)
        except _Invalid as exc:
            prefix = f"{source}: " if source else ""
            raise RegionConfigError(f"{prefix}{_field_name(exc.path)}: {exc.message}") from None


def _table(value: Any, path: _KeyPath) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(path, f"must be a table, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _number(value: Any, path: _KeyPath) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(path, f"must be a number, got {_type_name(value)}")
    if not math.isfinite(value):
        raise _Invalid(path, f"must be finite, got {value!r}")
    return float(value)


def _check_keys(table: Mapping[str, Any], path: _KeyPath, allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise _Invalid(
                (*path, key), f"is not a known field here (allowed: {', '.join(allowed)})"
            )


def _build(raw: Mapping[str, Any], source: str) -> RegionConfig:
    _check_keys(_table(raw, ()), (), _TOP_LEVEL)
    if "regions" not in raw:
        raise _Invalid(("regions",), "is required: a table of regions")
    raw_regions = _table(raw["regions"], ("regions",))
    if not raw_regions:
        raise _Invalid(("regions",), "must name at least one region")
    regions: dict[str, Region] = {}
    for name, body in raw_regions.items():
        path: _KeyPath = ("regions", name)
        if not _REGION_NAME.match(name):
            raise _Invalid(path, f"{name!r} is not a region name ({_REGION_NAME.pattern})")
        body = _table(body, path)
        _check_keys(body, path, _REGION_FIELDS)
        for key in _REGION_FIELDS:
            if key not in body:
                raise _Invalid((*path, key), "is required")
        jurisdiction = body["jurisdiction"]
        if not isinstance(jurisdiction, str) or not _JURISDICTION.match(jurisdiction):
            raise _Invalid(
                (*path, "jurisdiction"),
                f"must be a jurisdiction name such as EU ({_JURISDICTION.pattern}), "
                f"got {_type_name(jurisdiction)}",
            )
        headroom = _number(body["headroom"], (*path, "headroom"))
        if not 0.0 <= headroom <= 1.0:
            raise _Invalid((*path, "headroom"), f"must be in [0, 1], got {headroom:g}")
        cost = _number(body["cost"], (*path, "cost"))
        if cost <= 0.0:
            raise _Invalid((*path, "cost"), f"must be > 0, got {cost:g}")
        regions[name] = Region(name, jurisdiction, headroom, cost)

    latency = _latencies(raw.get("latency_ms", {}), regions)
    residency = _residency(raw, regions)
    return RegionConfig(regions, latency, residency, source)


def _latencies(raw: Any, regions: Mapping[str, Region]) -> dict[tuple[str, str], float]:
    given: dict[tuple[str, str], float] = {}
    for source, row in _table(raw, ("latency_ms",)).items():
        if source not in regions:
            raise _Invalid(("latency_ms", source), f"{source!r} is not a configured region")
        for target, value in _table(row, ("latency_ms", source)).items():
            path: _KeyPath = ("latency_ms", source, target)
            if target not in regions:
                raise _Invalid(path, f"{target!r} is not a configured region")
            if target == source:
                raise _Invalid(path, "a region's latency to itself is 0 and is not listed")
            ms = _number(value, path)
            if ms < 0:
                raise _Invalid(path, f"must be >= 0, got {ms:g}")
            given[(source, target)] = ms
    latency: dict[tuple[str, str], float] = {}
    names = sorted(regions)
    for a in names:
        for b in names:
            if a == b:
                continue
            ms = given.get((a, b), given.get((b, a)))
            if ms is None:
                # Point at a row that exists, if either does, so the line number helps.
                row = b if any(s == b for s, _ in given) and all(s != a for s, _ in given) else a
                raise _Invalid(
                    ("latency_ms", row, b if row == a else a),
                    f"is missing: give latency_ms.{a}.{b} or latency_ms.{b}.{a}",
                )
            latency[(a, b)] = ms
    return latency


def _residency(raw: Mapping[str, Any], regions: Mapping[str, Region]) -> dict[str, frozenset[str]]:
    if "residency" not in raw:
        raise _Invalid(("residency",), "is required, with at least a default rule")
    rules = _table(raw["residency"], ("residency",))
    known = {r.jurisdiction for r in regions.values()}
    residency: dict[str, frozenset[str]] = {}
    for data_class, allowed in rules.items():
        path: _KeyPath = ("residency", data_class)
        if not _DATA_CLASS.match(data_class):
            raise _Invalid(path, f"{data_class!r} is not a data class ({_DATA_CLASS.pattern})")
        if not isinstance(allowed, list) or not allowed:
            raise _Invalid(path, 'must be a non-empty array of jurisdictions (or ["*"])')
        for i, jurisdiction in enumerate(allowed):
            if not isinstance(jurisdiction, str):
                raise _Invalid((*path, i), f"must be a string, got {_type_name(jurisdiction)}")
            if jurisdiction != ANY_JURISDICTION and jurisdiction not in known:
                names = ", ".join(sorted(known))
                raise _Invalid(
                    (*path, i),
                    f'unknown jurisdiction {jurisdiction!r} (regions are in: {names}; "*" is any)',
                )
        residency[data_class] = frozenset(allowed)
    if DEFAULT_DATA_CLASS not in residency:
        raise _Invalid(
            ("residency", DEFAULT_DATA_CLASS),
            'is required: the rule of data classes without their own (["*"] for anywhere)',
        )
    return residency


# ------------------------------------------------------------------- lines of a TOML source
_KEY_TOKEN = r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+'
_DOTTED_KEY = re.compile(rf"^\s*((?:{_KEY_TOKEN})(?:\s*\.\s*(?:{_KEY_TOKEN}))*)\s*=")
_HEADER = re.compile(rf"^\s*\[\[?\s*((?:{_KEY_TOKEN})(?:\s*\.\s*(?:{_KEY_TOKEN}))*)\s*\]\]?")
_INLINE_KEY = re.compile(rf"[{{,]\s*((?:{_KEY_TOKEN})(?:\s*\.\s*(?:{_KEY_TOKEN}))*)\s*=")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(t.strip("\"'") for t in re.findall(_KEY_TOKEN, text))


def _key_lines(text: str) -> tuple[dict[tuple[str, ...], int], list[tuple[str, ...]]]:
    """Map each key path to the line defining it; also each line's enclosing table.

    A best-effort scan (tomllib reports no positions for valid documents): table headers,
    ``key = value`` lines (dotted keys included) and the keys of one-line inline tables.
    """
    lines: dict[tuple[str, ...], int] = {}
    tables: list[tuple[str, ...]] = []
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header.group(1))
            # A header defines its parent tables too: [latency_ms.us-east] is latency_ms.
            for n in range(1, len(table) + 1):
                lines.setdefault(table[:n], number)
        else:
            key = _DOTTED_KEY.match(line)
            if key:
                path = (*table, *_split_key(key.group(1)))
                lines.setdefault(path, number)
                rest = line[key.end() :]
                for inline in _INLINE_KEY.finditer(rest):
                    lines.setdefault((*path, *_split_key(inline.group(1))), number)
        tables.append(table)
    return lines, tables


def _line_of(text: str, path: _KeyPath) -> int | None:
    lines, _ = _key_lines(text)
    keys = tuple(p for p in path if isinstance(p, str))
    for n in range(len(keys), 0, -1):
        if keys[:n] in lines:
            return lines[keys[:n]]
    return None


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


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
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        if found is None:
            raise RegionConfigError(f"{source}: invalid TOML: {message}") from None
        number = int(found.group(1))
        problem = f"invalid TOML: {_TOML_POSITION.sub('', message)} (column {found.group(2)})"
        source_lines = text.splitlines()
        line = source_lines[number - 1] if number <= len(source_lines) else ""
        _, tables = _key_lines(text)
        table = tables[number - 1] if number <= len(tables) else ()
        key = _DOTTED_KEY.match(line)
        path = (*table, *_split_key(key.group(1))) if key else table
        where = f"{_field_name(path)}: " if path else ""
        raise RegionConfigError(f"{source}:{number}: {where}{problem}") from None
    try:
        return _build(raw, source)
    except _Invalid as exc:
        number = _line_of(text, exc.path)
        at = f"{source}:{number}" if number is not None else source
        raise RegionConfigError(f"{at}: {_field_name(exc.path)}: {exc.message}") from None


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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegionConfigError(f"{path}: no such region configuration file") from None
    except UnicodeDecodeError:
        raise RegionConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RegionConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_region_config(text, source=str(path))
