"""The names of every topic the product reads or writes, in one place.

A prefix (``AUTOPILOT_TOPIC_PREFIX``) lets several deployments, or several
tests, share one cluster without seeing each other's messages.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TopicNames", "telemetry_key"]


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Topic names with the deployment's prefix applied.

    Examples
    --------
    >>> t = TopicNames("test42.")
    >>> t.metrics, t.dlq
    ('test42.telemetry.metrics', 'test42.autopilot.dlq')
    >>> len(t.all())
    10
    """

    prefix: str = ""

    @property
    def metrics(self) -> str:
        return f"{self.prefix}telemetry.metrics"

    @property
    def errors(self) -> str:
        return f"{self.prefix}telemetry.errors"

    @property
    def interactions(self) -> str:
        return f"{self.prefix}telemetry.interactions"

    @property
    def interactions_by_tenant(self) -> str:
        """Internal: each interaction as its tenant's request, keyed by tenant pseudonym."""
        return f"{self.prefix}interactions.by-tenant"

    @property
    def remediation_feedback(self) -> str:
        return f"{self.prefix}feedback.remediation"

    @property
    def scaling(self) -> str:
        return f"{self.prefix}decisions.scaling"

    @property
    def failover(self) -> str:
        return f"{self.prefix}decisions.failover"

    @property
    def remediation(self) -> str:
        return f"{self.prefix}decisions.remediation"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}autopilot.dlq"

    @property
    def audit(self) -> str:
        """What the actuator applied or refused, and why."""
        return f"{self.prefix}actions.audit"

    def telemetry(self) -> tuple[str, ...]:
        """Topics whose every message must be accounted for (consumed = processed + DLQ):
        the input topics, and the one the worker repartitions interactions to."""
        return (
            self.metrics,
            self.errors,
            self.interactions,
            self.remediation_feedback,
            self.interactions_by_tenant,
        )

    def decisions(self) -> tuple[str, ...]:
        return (self.scaling, self.failover, self.remediation)

    def all(self) -> tuple[str, ...]:
        return (*self.telemetry(), *self.decisions(), self.dlq, self.audit)


def telemetry_key(service: str, region: str) -> bytes:
    """The message key of a telemetry record: one series always lands on one partition.

    >>> telemetry_key("checkout", "eu-west")
    b'checkout/eu-west'
    """
    return f"{service}/{region}".encode()
