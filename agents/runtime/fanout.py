"""The one fan-out inside a worker: what a brain learns or decides reaches other brains by
subscription, not by its agent calling theirs.

An agent that reads a topic emits each valid record, and each decision its brain makes, on
a :class:`Channel`; the agents that learn from them subscribe. The agent emitting knows no
subscriber, so a new consumer of metrics touches its own file only. Subscribers run in the
emitter's event (so :func:`~agents.runtime.checkpoints.handling_partition` names the
partition the record came from), one after the other, in the order they subscribed.

What must cross workers (a decision spanning partitions) goes on from a subscriber to an
internal topic: see :mod:`agents.region_evidence` and :mod:`agents.cost`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from models.brains.interactions import HealthEvidence
from schemas import Decision, Interaction, MetricSample

__all__ = [
    "Channel",
    "health_evidence",
    "interactions",
    "metric_decisions",
    "metric_samples",
]

T = TypeVar("T")


class Channel(Generic[T]):
    """Items of one kind, handed to every subscriber in turn.

    Examples
    --------
    >>> import asyncio
    >>> numbers: Channel[int] = Channel("numbers")
    >>> seen = []
    >>> numbers.subscribe(seen.append)
    <built-in method append of list object at ...>
    >>> async def twice(n): seen.append(2 * n)
    >>> _ = numbers.subscribe(twice)
    >>> asyncio.run(numbers.emit(21))
    >>> seen
    [21, 42]
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[[T], Awaitable[None] | None]] = []

    def subscribe(
        self, handler: Callable[[T], Awaitable[None] | None]
    ) -> Callable[[T], Awaitable[None] | None]:
        """Call ``handler`` with every item emitted from now on; usable as a decorator."""
        self._subscribers.append(handler)
        return handler

    async def emit(self, item: T) -> None:
        """Hand ``item`` to every subscriber, awaiting what a subscriber returns, if anything.

        A subscriber returns ``None`` or an awaitable: one that seldom waits (for a send)
        can be a plain function returning a coroutine only then, and costs its emitter no
        coroutine for every item.
        """
        for handler in self._subscribers:
            result = handler(item)
            if result is not None:
                await result


metric_samples: Channel[MetricSample] = Channel("metric samples")
"""Every valid sample of ``telemetry.metrics``, emitted before the metrics brain learns it."""
metric_decisions: Channel[Decision] = Channel("metric decisions")
"""Every decision of the metrics brain (``anomaly``, ``scaling``), once published."""
interactions: Channel[Interaction] = Channel("interactions")
"""Every valid interaction of ``telemetry.interactions``."""
health_evidence: Channel[HealthEvidence] = Channel("health evidence")
"""Region-health evidence of the interactions brain (SLO burns, feedback surges)."""
