"""The names of every topic the product reads or writes: the one place they are written.

Records (:mod:`schemas.records`), decisions (:mod:`schemas.decision`) and dead letters name
their topics with these constants; agents and commands get the deployment's prefixed names
from :class:`TopicNames`. A prefix (``AUTOPILOT_TOPIC_PREFIX``) lets several deployments, or
several tests, share one cluster without seeing each other's messages.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "APPROVALS",
    "AUDIT",
    "AUDIT_TRAIL",
    "BUDGET_EVIDENCE",
    "CONTROL",
    "DLQ",
    "ERRORS",
    "FAILOVER",
    "INTERACTIONS",
    "INTERACTIONS_BY_TENANT",
    "METRICS",
    "OTLP_LOGS",
    "OTLP_METRICS",
    "REGION_EVIDENCE",
    "REMEDIATION",
    "REMEDIATION_FEEDBACK",
    "REMEDIATION_OUTCOMES",
    "REMEDIATION_ROUTING",
    "SCALING",
    "TopicNames",
    "telemetry_key",
]

METRICS = "telemetry.metrics"
ERRORS = "telemetry.errors"
INTERACTIONS = "telemetry.interactions"
REMEDIATION_FEEDBACK = "feedback.remediation"
OTLP_METRICS = "otlp_metrics"
"""OTLP export requests of metrics, as the OpenTelemetry Collector's Kafka exporter names them."""
OTLP_LOGS = "otlp_logs"
"""OTLP export requests of logs, as the collector's Kafka exporter names them."""
INTERACTIONS_BY_TENANT = "interactions.by-tenant"
"""Internal: each interaction as its tenant's request, keyed by tenant pseudonym."""
REGION_EVIDENCE = "internal.region-evidence"
"""Internal, one partition: what each telemetry partition tells region health, in batches,
for the one evaluator of region health and failover."""
BUDGET_EVIDENCE = "internal.budget-evidence"
"""Internal, one partition: each metrics partition's month-end cost forecast per budget
scope, for the one judge of the budgets."""
REMEDIATION_ROUTING = "internal.remediation-routing"
"""Internal, keyed by decision id: where each remediation decision was made (the series
key), then the outcomes about it, in that order."""
REMEDIATION_OUTCOMES = "internal.remediation-outcomes"
"""Internal, keyed by series like ``telemetry.errors``: each outcome, to the partition whose
errors brain holds its decision."""
SCALING = "decisions.scaling"
FAILOVER = "decisions.failover"
REMEDIATION = "decisions.remediation"
DLQ = "autopilot.dlq"
AUDIT = "actions.audit"
"""What the actuator applied or refused, and why."""
APPROVALS = "decisions.approvals"
"""A human's approval or rejection of a ``recommend`` decision, keyed like that decision."""
AUDIT_TRAIL = "autopilot.audit"
"""The tamper-evident trail: every decision, actuation and erasure, hash-chained per partition."""
CONTROL = "autopilot.control"
"""Compacted: operators' requests to every worker (erasures), keyed ``<verb>/<subject>``."""


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Topic names with the deployment's prefix applied.

    Examples
    --------
    >>> t = TopicNames("test42.")
    >>> t.metrics, t.dlq
    ('test42.telemetry.metrics', 'test42.autopilot.dlq')
    >>> len(t.all())
    19
    >>> t.region_evidence
    'test42.internal.region-evidence'
    """

    prefix: str = ""

    @property
    def metrics(self) -> str:
        return self.prefix + METRICS

    @property
    def errors(self) -> str:
        return self.prefix + ERRORS

    @property
    def interactions(self) -> str:
        return self.prefix + INTERACTIONS

    @property
    def otlp_metrics(self) -> str:
        """OTLP metrics from the OpenTelemetry Collector, read into ``telemetry.metrics``."""
        return self.prefix + OTLP_METRICS

    @property
    def otlp_logs(self) -> str:
        """OTLP logs from the OpenTelemetry Collector, read into ``telemetry.errors``."""
        return self.prefix + OTLP_LOGS

    @property
    def interactions_by_tenant(self) -> str:
        """Internal: each interaction as its tenant's request, keyed by tenant pseudonym."""
        return self.prefix + INTERACTIONS_BY_TENANT

    @property
    def remediation_feedback(self) -> str:
        return self.prefix + REMEDIATION_FEEDBACK

    @property
    def region_evidence(self) -> str:
        """Internal, one partition: telemetry partitions' region-health evidence."""
        return self.prefix + REGION_EVIDENCE

    @property
    def budget_evidence(self) -> str:
        """Internal, one partition: metrics partitions' cost forecasts per budget scope."""
        return self.prefix + BUDGET_EVIDENCE

    @property
    def remediation_routing(self) -> str:
        """Internal, keyed by decision id: decision routes, then outcomes."""
        return self.prefix + REMEDIATION_ROUTING

    @property
    def remediation_outcomes(self) -> str:
        """Internal, keyed by series: outcomes on their way to the decision's errors brain."""
        return self.prefix + REMEDIATION_OUTCOMES

    @property
    def scaling(self) -> str:
        return self.prefix + SCALING

    @property
    def failover(self) -> str:
        return self.prefix + FAILOVER

    @property
    def remediation(self) -> str:
        return self.prefix + REMEDIATION

    @property
    def dlq(self) -> str:
        return self.prefix + DLQ

    @property
    def audit(self) -> str:
        """What the actuator applied or refused, and why."""
        return self.prefix + AUDIT

    @property
    def approvals(self) -> str:
        """Approvals and rejections of recommendations, keyed like the decision they judge."""
        return self.prefix + APPROVALS

    @property
    def audit_trail(self) -> str:
        """The tamper-evident trail (:mod:`models.compliance.trail`)."""
        return self.prefix + AUDIT_TRAIL

    @property
    def control(self) -> str:
        """Operators' requests to every worker, compacted (:mod:`agents.erasure`)."""
        return self.prefix + CONTROL

    def telemetry(self) -> tuple[str, ...]:
        """Topics whose every message must be accounted for (consumed = processed + DLQ):
        the input topics, and the one the worker repartitions interactions to."""
        return (
            self.metrics,
            self.errors,
            self.interactions,
            self.remediation_feedback,
            self.interactions_by_tenant,
            self.otlp_metrics,
            self.otlp_logs,
        )

    def inputs(self) -> tuple[str, ...]:
        """Topics that the platform writes and the workers read: what a region's cluster
        sends to the engine's (:mod:`streams.kafka.mirror`).

        >>> TopicNames("p.").inputs()[:2]
        ('p.telemetry.metrics', 'p.telemetry.errors')
        """
        return (
            self.metrics,
            self.errors,
            self.interactions,
            self.remediation_feedback,
            self.otlp_metrics,
            self.otlp_logs,
        )

    def internal(self) -> tuple[str, ...]:
        """Topics the workers write for one another: summaries and routes for the decisions
        that span partitions (region health, budgets, remediation outcomes)."""
        return (
            self.region_evidence,
            self.budget_evidence,
            self.remediation_routing,
            self.remediation_outcomes,
        )

    def decisions(self) -> tuple[str, ...]:
        return (self.scaling, self.failover, self.remediation)

    def all(self) -> tuple[str, ...]:
        return (
            *self.telemetry(),
            *self.internal(),
            *self.decisions(),
            self.dlq,
            self.audit,
            self.audit_trail,
            self.control,
            self.approvals,
        )


def telemetry_key(service: str, region: str) -> bytes:
    """The message key of a telemetry record: one series always lands on one partition.

    >>> telemetry_key("checkout", "eu-west")
    b'checkout/eu-west'
    """
    return f"{service}/{region}".encode()
