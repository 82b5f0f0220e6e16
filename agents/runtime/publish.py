"""Publishing decisions: the right topic, keyed by subject, counted and timed."""

from __future__ import annotations

import time
from collections.abc import Callable

import faust

from schemas import Decision
from schemas import topics as names
from streams.runtime.app import topics
from streams.runtime.exporter import DECISION_LATENCY, DECISIONS

__all__ = ["publish"]

_BY_TOPIC: dict[str, faust.TopicT] = {
    names.SCALING: topics.scaling,
    names.FAILOVER: topics.failover,
    names.REMEDIATION: topics.remediation,
}


# The decision topics declared by this process.
_declared: set[str] = set()


def subject_key(decision: Decision) -> bytes:
    """``service/region`` (or whatever subject parts the decision has), as the message key."""
    return "/".join(decision.subject.values()).encode()


def _on_delivered(decision: Decision, event_ts: float, clock: Callable[[], float]):
    def delivered(_future: object) -> None:
        DECISIONS.labels(decision.kind, decision.action, decision.mode).inc()
        DECISION_LATENCY.labels(decision.kind).observe(max(0.0, clock() - event_ts))

    return delivered


async def publish(
    decision: Decision, event_ts: float, clock: Callable[[], float] = time.time
) -> None:
    """Send ``decision`` to its topic; count it and time it when the broker acknowledges it.

    ``event_ts`` is the timestamp of the event that caused the decision, so the
    latency histogram measures event time to decision published.
    """
    topic = _BY_TOPIC[decision.topic]
    if decision.topic not in _declared:
        # Once a process: each declaration makes the producer fetch the metadata of every
        # topic. Done for each decision, those fetches took the worker's event loop
        # several milliseconds apiece and made the tail of decision latency (#23).
        await topic.maybe_declare()
        _declared.add(decision.topic)
    await topic.send(
        key=subject_key(decision),
        value=decision.to_bytes(),
        callback=_on_delivered(decision, event_ts, clock),
    )
