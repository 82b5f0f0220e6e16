"""Field metadata: the single source of truth shared by the validator and the JSON Schemas.

Every record field is declared with ``dataclasses.field(metadata=spec(...))``, which
stores a :class:`FieldSpec` in the field's metadata. :func:`schemas.parse` validates
according to these specs and ``python -m schemas.generate`` derives the JSON Schema files
from the same specs, so the two cannot disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import NamedTuple

__all__ = [
    "BASE64",
    "BOOLEAN",
    "CODE_PATTERN",
    "DECISION_ID_PATTERN",
    "ENUM",
    "EPOCH",
    "IDENT",
    "INTEGER",
    "KNOWN_METRICS",
    "LABEL_PATTERN",
    "METRICS",
    "METRIC_NAME_PATTERN",
    "NAME",
    "NUMBER",
    "OBJECT",
    "SUBJECT",
    "SUBJECT_KEYS",
    "TEXT",
    "TIMESTAMP",
    "FieldSpec",
    "MetricRange",
    "field_specs",
    "spec",
]

TIMESTAMP = "timestamp"
"""Input time: epoch seconds or an RFC 3339 string on the wire, float epoch seconds in code."""
EPOCH = "epoch"
"""Output time: float epoch seconds."""
NAME = "name"
"""Region or service name, bounded and matching ``Limits.name_pattern``."""
IDENT = "ident"
"""Non-empty identifier string bounded by ``Limits.max_string_len``, optionally patterned."""
TEXT = "text"
"""Free text bounded by ``Limits.max_text_len``; never logged."""
NUMBER = "number"
"""Finite number, optionally bounded by ``minimum`` and ``maximum``."""
INTEGER = "integer"
"""Integer, optionally bounded by ``minimum``."""
BOOLEAN = "boolean"
"""JSON ``true`` or ``false`` (numbers are refused)."""
ENUM = "enum"
"""One of ``choices``."""
METRICS = "metrics"
"""Map metric name -> finite number, bounded by ``Limits.max_metrics``."""
OBJECT = "object"
"""Free-form JSON object (decision params and evidence)."""
BASE64 = "base64"
"""Bytes as a base64 string (dead-letter payloads)."""
SUBJECT = "subject"
"""What a decision is about: an object with any of :data:`SUBJECT_KEYS`."""

METRIC_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""Names accepted for metrics beyond :data:`KNOWN_METRICS`."""
CODE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""Shape of machine-readable codes such as dead-letter reasons."""
DECISION_ID_PATTERN = r"^[0-9a-f]{32}$"
"""Shape of ids made by :func:`schemas.decision_id_for`."""
LABEL_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Fixed shape of small classification labels such as ``data_class`` (``eu-personal``)."""
SUBJECT_KEYS = ("service", "region", "tenant")
"""Keys a decision subject may have."""


class MetricRange(NamedTuple):
    """Accepted range of a known metric; ``maximum`` is ``None`` when unbounded."""

    minimum: float
    maximum: float | None
    description: str


KNOWN_METRICS: dict[str, MetricRange] = {
    "cpu_util": MetricRange(0.0, 1.0, "CPU utilisation as a fraction of the allocation."),
    "mem_util": MetricRange(0.0, 1.0, "Memory utilisation as a fraction of the allocation."),
    "disk_util": MetricRange(0.0, 1.0, "Disk space used as a fraction of the volume."),
    "conn_pool_util": MetricRange(0.0, 1.0, "Connections in use as a fraction of the pool."),
    "error_budget_used": MetricRange(
        0.0, None, "Share of the SLO's error budget used in its window; 1 is exhausted."
    ),
    "error_rate": MetricRange(0.0, 1.0, "Fraction of requests that failed."),
    "rps": MetricRange(0.0, None, "Requests per second."),
    "latency_p50_ms": MetricRange(0.0, None, "Median latency in milliseconds."),
    "latency_p99_ms": MetricRange(0.0, None, "99th percentile latency in milliseconds."),
    "replicas": MetricRange(0.0, None, "Running replicas."),
    "queue_depth": MetricRange(0.0, None, "Messages or jobs waiting."),
    "cost_per_hour": MetricRange(0.0, None, "Running cost per hour."),
}
"""Metrics with a meaning and a range; any other well-formed name takes any finite value."""


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one record field is validated and described.

    Parameters
    ----------
    kind
        One of the kind constants of this module (:data:`NAME`, :data:`NUMBER`, ...).
    description
        One sentence, copied into the JSON Schema.
    minimum, maximum
        Inclusive bounds for :data:`NUMBER` and :data:`INTEGER` fields.
    choices
        Allowed values of an :data:`ENUM` field.
    pattern
        Fixed regular expression an :data:`IDENT` field must match in full.
    nullable
        Whether ``null`` is a valid value (it then means "absent").
    name
        The field name, filled in by :func:`field_specs`.
    required
        Whether the field must be present, filled in by :func:`field_specs` (a field is
        required when the dataclass gives it no default).

    """

    kind: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    nullable: bool = False
    name: str = ""
    required: bool = True
    pattern_re: re.Pattern[str] | None = dataclasses.field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Compiled once at import so validation never compiles a regex per event.
        if self.pattern is not None:
            object.__setattr__(self, "pattern_re", re.compile(self.pattern))


def spec(
    kind: str,
    description: str,
    *,
    nullable: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
    pattern: str | None = None,
) -> dict[str, FieldSpec]:
    """Return dataclass field metadata declaring a field's spec.

    A field whose dataclass default is ``None`` is optional: it may be absent or ``null`` on
    the wire. A ``nullable`` field without a default must be present but may be ``null``.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True, slots=True)
    ... class Probe:
    ...     rate: float = dataclasses.field(metadata=spec(NUMBER, "A rate.", minimum=0.0))
    ...     note: str | None = dataclasses.field(default=None, metadata=spec(TEXT, "A note."))
    >>> [(s.name, s.kind, s.required, s.nullable) for s in field_specs(Probe)]
    [('rate', 'number', True, False), ('note', 'text', False, True)]

    """
    return {
        "spec": FieldSpec(
            kind,
            description,
            minimum=minimum,
            maximum=maximum,
            choices=choices,
            pattern=pattern,
            nullable=nullable,
        )
    }


@functools.cache
def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """Return the specs of a record class's fields, in declaration order, completed.

    ``name``, ``required`` and ``nullable`` are filled in from the dataclass field.
    """
    return tuple(
        dataclasses.replace(
            f.metadata["spec"],
            name=f.name,
            required=f.default is dataclasses.MISSING,
            nullable=f.metadata["spec"].nullable or f.default is None,
        )
        for f in dataclasses.fields(cls)
    )
