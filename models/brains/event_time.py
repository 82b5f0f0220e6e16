"""How far in event time each input source has delivered, and the horizon all have passed.

A brain fed from several Kafka partitions, read by several workers at their own paces,
decides the same whatever the pace only if it applies what it hears in event-time order.
It buffers what arrives and applies it once the *release horizon* passes it: the lowest
latest event time over the sources (partitions) that may still deliver something older. A
:class:`SourceClock` keeps that horizon; the brain keeps its buffer.

A source the caller marks idle (read to its end and quiet for a while) cannot deliver
anything older than what it delivered last, and does not hold the horizon back. A mark holds
until the source delivers again, except after a quiet spell: when a source delivers while
every source is marked idle, every mark is void, and each idle source holds the horizon back
until it is marked anew. The spell is over, and the others' records may be on their way too;
were their marks kept, the first source read after it (or after a restart, whose restored
state has every source idle) would carry the horizon past the others' records.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

__all__ = ["SourceClock"]


class SourceClock:
    """Each source's latest event time, its idle mark, and the horizon they give.

    Notes
    -----
    Memory: one float and one name per source (the partitions of the input topics).

    Examples
    --------
    Two sources; the horizon is the one behind, until it is marked idle:

    >>> clock = SourceClock()
    >>> clock.expect(["a", "b"])
    >>> clock.seen("a", 100.0)
    >>> clock.horizon()  # b has not delivered yet
    -inf
    >>> clock.seen("b", 90.0)
    >>> clock.horizon()
    90.0
    >>> clock.mark_idle("b")
    >>> clock.horizon()
    100.0

    Two sources go quiet; when one resumes, the other holds the horizon back until it is
    marked anew:

    >>> clock.mark_idle("a")
    >>> clock.seen("a", 160.0)
    >>> clock.horizon()
    100.0
    >>> clock.mark_idle("b")
    >>> clock.horizon()
    160.0
    """

    __slots__ = ("_expected", "_horizon", "_idle", "_sources")

    def __init__(self) -> None:
        self._sources: dict[str, float] = {}
        self._idle: set[str] = set()
        self._expected: set[str] = set()
        self._horizon = -math.inf

    def expect(self, sources: Iterable[str]) -> None:
        """Hold the horizon until each of ``sources`` has delivered or is marked idle.

        Without it, a source that has not delivered yet does not hold the horizon back, and
        the first source heard from would be judged alone: a caller that knows the
        partitions it will hear from says so.
        """
        self._expected.update(sources)

    def seen(self, source: str, ts: float) -> None:
        """``source`` delivered something of event time ``ts``."""
        if source in self._idle:
            if self.quiet:
                self._idle.clear()
            else:
                self._idle.discard(source)
        if ts > self._sources.get(source, -math.inf):
            self._sources[source] = ts

    def mark_idle(self, source: str) -> None:
        """``source`` cannot deliver anything older than what it delivered last: it no longer
        holds the horizon back, until it delivers again, or any source does while every
        source is marked idle."""
        if source in self._sources or source in self._expected:
            self._idle.add(source)

    def retain(self, sources: Iterable[str]) -> None:
        """Forget every source but ``sources`` (e.g. partitions no longer assigned)."""
        keep = set(sources)
        for name in [s for s in self._sources if s not in keep]:
            del self._sources[name]
            self._idle.discard(name)

    def horizon(self, idle: Collection[str] = ()) -> float:
        """Event time up to which every source has delivered (``-inf`` before any data).

        The lowest latest event time of the sources not in ``idle`` nor marked idle
        (:meth:`mark_idle`); with every source idle, the highest. It never goes back.
        """
        if any(s not in self._sources and s not in self._idle for s in self._expected):
            return self._horizon
        if self._sources:
            busy = [
                ts
                for name, ts in self._sources.items()
                if name not in idle and name not in self._idle
            ]
            self._horizon = max(self._horizon, min(busy) if busy else max(self._sources.values()))
        return self._horizon

    @property
    def sources(self) -> dict[str, float]:
        """Source -> latest event time it delivered."""
        return dict(self._sources)

    @property
    def quiet(self) -> bool:
        """Whether every source heard from is marked idle (also before any is heard from)."""
        return self._idle.issuperset(self._sources)

    @property
    def idle(self) -> set[str]:
        """Sources whose idle mark holds."""
        return set(self._idle)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly: the horizon (``None`` before any), the sources and the idle marks."""
        return {
            "horizon": self._horizon if math.isfinite(self._horizon) else None,
            "sources": dict(self._sources),
            "idle": sorted(self._idle),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take :meth:`to_state` output: the horizon and each source's position never go back
        (what this clock heard since is kept); the idle marks are the state's."""
        horizon = state.get("horizon")
        self._horizon = max(self._horizon, -math.inf if horizon is None else horizon)
        for source, ts in state.get("sources", {}).items():
            self._sources[source] = max(ts, self._sources.get(source, -math.inf))
        self._idle = set(state.get("idle", ()))
