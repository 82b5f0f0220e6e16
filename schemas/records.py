"""Telemetry and feedback records: what producers write to the input topics.

Records are built by :func:`schemas.parse`, which validates every field against the specs
declared here; constructing one directly (simulator, tests) performs no validation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from schemas import topics
from schemas.fields import (
    BOOLEAN,
    DECISION_ID_PATTERN,
    ENUM,
    IDENT,
    LABEL_PATTERN,
    METRICS,
    NAME,
    NUMBER,
    TEXT,
    TIMESTAMP,
    field_specs,
    spec,
)

__all__ = [
    "SEVERITIES",
    "ErrorEvent",
    "Interaction",
    "MetricSample",
    "Record",
    "RemediationOutcome",
    "record_to_dict",
]

SEVERITIES = ("debug", "info", "warning", "error", "critical")
"""Allowed :attr:`ErrorEvent.severity` values, least to most severe."""


def record_to_dict(record: Any) -> dict[str, Any]:
    """Return a dataclass record as a JSON-encodable dict, copying nested dicts.

    Nested dicts are copied so that callers mutating the result cannot change the frozen
    record. Optional fields that are unset appear as ``None``.
    """
    out: dict[str, Any] = {}
    for field_spec in field_specs(type(record)):
        value = getattr(record, field_spec.name)
        out[field_spec.name] = dict(value) if type(value) is dict else value
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class MetricSample:
    """One scrape of a service's metrics in a region (topic ``telemetry.metrics``).

    Examples
    --------
    >>> s = MetricSample(1700000000.0, "eu-west-1", "checkout", {"cpu_util": 0.5})
    >>> s.to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'ts': 1700000000.0, 'region': 'eu-west-1', 'service': 'checkout',
     'metrics': {'cpu_util': 0.5}, 'instance': None}

    """

    TOPIC: ClassVar[str] = topics.METRICS

    ts: float = dataclasses.field(metadata=spec(TIMESTAMP, "When the sample was taken."))
    region: str = dataclasses.field(metadata=spec(NAME, "Region the service runs in."))
    service: str = dataclasses.field(metadata=spec(NAME, "Service the sample describes."))
    metrics: dict[str, float] = dataclasses.field(
        metadata=spec(
            METRICS, "Metric name -> finite number; known metrics have a meaning and a range."
        )
    )
    instance: str | None = dataclasses.field(
        default=None, metadata=spec(IDENT, "Instance (pod, VM) the sample comes from.")
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the sample as a JSON-encodable dict."""
        return record_to_dict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An error logged by a service (topic ``telemetry.errors``).

    ``message`` and ``stack`` are free text and may hold personal data: never log them.

    Examples
    --------
    >>> e = ErrorEvent(1700000000.0, "eu-west-1", "checkout", "error", "Timeout", "upstream")
    >>> e.to_dict()["severity"]
    'error'

    """

    TOPIC: ClassVar[str] = topics.ERRORS

    ts: float = dataclasses.field(metadata=spec(TIMESTAMP, "When the error happened."))
    region: str = dataclasses.field(metadata=spec(NAME, "Region the service runs in."))
    service: str = dataclasses.field(metadata=spec(NAME, "Service that raised the error."))
    severity: str = dataclasses.field(
        metadata=spec(ENUM, "How bad the error is.", choices=SEVERITIES)
    )
    error_type: str = dataclasses.field(
        metadata=spec(IDENT, "Class or code of the error, e.g. TimeoutError.")
    )
    message: str = dataclasses.field(metadata=spec(TEXT, "Error message."))
    stack: str | None = dataclasses.field(default=None, metadata=spec(TEXT, "Stack trace."))
    trace_id: str | None = dataclasses.field(
        default=None, metadata=spec(IDENT, "Distributed trace id.")
    )
    deploy_version: str | None = dataclasses.field(
        default=None, metadata=spec(IDENT, "Version deployed when it happened.")
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-encodable dict."""
        return record_to_dict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Interaction:
    """One user interaction with a service (topic ``telemetry.interactions``).

    ``user_id`` is pseudonymous and ``feedback_text`` is free text: never log either.

    Examples
    --------
    >>> i = Interaction(1700000000.0, "eu-west-1", "acme", "checkout", "u-1f3a", "pay", 42.0, True)
    >>> i.data_class is None
    True

    """

    TOPIC: ClassVar[str] = topics.INTERACTIONS

    ts: float = dataclasses.field(metadata=spec(TIMESTAMP, "When the interaction happened."))
    region: str = dataclasses.field(metadata=spec(NAME, "Region that served the interaction."))
    tenant: str = dataclasses.field(
        metadata=spec(IDENT, "Tenant (customer account) the user belongs to.")
    )
    service: str = dataclasses.field(metadata=spec(NAME, "Service that served the interaction."))
    user_id: str = dataclasses.field(metadata=spec(IDENT, "Pseudonymous user id."))
    action: str = dataclasses.field(metadata=spec(IDENT, "What the user did, e.g. checkout."))
    latency_ms: float = dataclasses.field(
        metadata=spec(NUMBER, "Latency seen by the user in milliseconds.", minimum=0.0)
    )
    success: bool = dataclasses.field(metadata=spec(BOOLEAN, "Whether the interaction succeeded."))
    feedback_text: str | None = dataclasses.field(
        default=None, metadata=spec(TEXT, "Free-text feedback from the user.")
    )
    data_class: str | None = dataclasses.field(
        default=None,
        metadata=spec(
            IDENT,
            "Data classification governing residency, e.g. eu-personal.",
            pattern=LABEL_PATTERN,
        ),
    )

    def to_dict(self) -> dict[str, Any]:
        """Return the interaction as a JSON-encodable dict."""
        return record_to_dict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class RemediationOutcome:
    """Whether a remediation decision worked (topic ``feedback.remediation``).

    Examples
    --------
    >>> o = RemediationOutcome("0" * 32, 1700000000.0, True)
    >>> o.to_dict()  # doctest: +NORMALIZE_WHITESPACE
    {'decision_id': '00000000000000000000000000000000', 'ts': 1700000000.0,
     'success': True, 'notes': None}

    """

    TOPIC: ClassVar[str] = topics.REMEDIATION_FEEDBACK

    decision_id: str = dataclasses.field(
        metadata=spec(
            IDENT, "Id of the decision this outcome is about.", pattern=DECISION_ID_PATTERN
        )
    )
    ts: float = dataclasses.field(metadata=spec(TIMESTAMP, "When the outcome was observed."))
    success: bool = dataclasses.field(
        metadata=spec(BOOLEAN, "Whether the remediation fixed the problem.")
    )
    notes: str | None = dataclasses.field(default=None, metadata=spec(TEXT, "Operator notes."))

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as a JSON-encodable dict."""
        return record_to_dict(self)


Record = MetricSample | ErrorEvent | Interaction | RemediationOutcome
"""Any record :func:`schemas.parse` can build."""


KIND_RECORDS: dict[str, type] = {
    "metrics": MetricSample,
    "errors": ErrorEvent,
    "interactions": Interaction,
    "remediation_feedback": RemediationOutcome,
}
"""Record class built by :func:`schemas.parse` for each input kind."""

KINDS: tuple[str, ...] = tuple(KIND_RECORDS)
"""Input kinds accepted by :func:`schemas.parse`."""

TOPICS: dict[str, str] = {kind: cls.TOPIC for kind, cls in KIND_RECORDS.items()}
"""Input topic of each kind, e.g. ``TOPICS["metrics"] == "telemetry.metrics"``."""
