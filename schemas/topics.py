"""Topic names and which record each input topic carries."""

from __future__ import annotations

from schemas.dead_letter import DeadLetter
from schemas.decision import KIND_TOPICS
from schemas.records import ErrorEvent, Interaction, MetricSample, RemediationOutcome

__all__ = ["DECISION_TOPICS", "DLQ_TOPIC", "KINDS", "KIND_RECORDS", "TOPICS"]

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

DECISION_TOPICS: dict[str, str] = dict(KIND_TOPICS)
"""Output topic of each decision kind, e.g. ``decisions.scaling``."""

DLQ_TOPIC: str = DeadLetter.TOPIC
"""Topic of :class:`schemas.DeadLetter` records."""
