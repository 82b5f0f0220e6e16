"""How far in event time each input source has delivered, and the horizon all have passed.

A brain fed from several Kafka partitions, read by several workers at their own paces,
decides the same whatever the pace only if it applies what it hears in event-time order.
It buffers what arrives and applies it once the *release horizon* passes it: the lowest
latest event time over the sources (partitions) that may still deliver something older. A
:class:`SourceClock` keeps that horizon; the brain keeps its buffer.

A source that delivers its records in envelopes (one Kafka message of many records, see
:mod:`schemas.validate`) may send a message whose records are older than the newest of the
one before: a collector that flushes every series' samples of a window in turn sends one
series' window, then the next series' same window. What the source still may deliver is
then bounded by the earliest record of its latest message, not by its newest record: the
caller says so (:meth:`SourceClock.seen`'s ``low``), and a busy source holds the horizon at
that *low*. A source of single records has low = latest.

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

    A source of envelopes holds the horizon at the earliest record of its latest message,
    until it is idle:

    >>> clock.seen("a", 660.0, low=170.0)
    >>> clock.seen("b", 700.0)
    >>> clock.horizon(), clock.sources["a"]
    (170.0, 660.0)
    >>> clock.mark_idle("a")
    >>> clock.horizon()
    700.0
    """

    __slots__ = ("_expected", "_horizon", "_idle", "_lows", "_sources")

    def __init__(self) -> None:
        self._sources: dict[str, float] = {}
        # Source -> the highest low it was given (below its latest for envelopes).
        self._lows: dict[str, float] = {}
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

    def seen(self, source: str, ts: float, low: float | None = None) -> None:
        """``source`` delivered something of event time ``ts``; it may still deliver
        anything from ``low`` on (``ts`` if not given: nothing older than its latest)."""
        if source in self._idle:
            if self.quiet:
                self._idle.clear()
            else:
                self._idle.discard(source)
        if ts > self._sources.get(source, -math.inf):
            self._sources[source] = ts
        low = ts if low is None or low > ts else low
        if low > self._lows.get(source, -math.inf):
            self._lows[source] = low

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
            self._lows.pop(name, None)
            self._idle.discard(name)

    def horizon(self, idle: Collection[str] = ()) -> float:
        """Event time up to which every source has delivered (``-inf`` before any data).

        The lowest low (:meth:`seen`) of the sources not in ``idle`` nor marked idle
        (:meth:`mark_idle`); with every source idle, the highest latest event time. It never
        goes back.
        """
        if any(s not in self._sources and s not in self._idle for s in self._expected):
            return self._horizon
        if self._sources:
            busy = [
                self._lows.get(name, ts)
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
        """JSON-friendly: the horizon (``None`` before any), the sources, their lows where
        below their latest, and the idle marks."""
        return {
            "horizon": self._horizon if math.isfinite(self._horizon) else None,
            "sources": dict(self._sources),
            "lows": {name: low for name, low in self._lows.items() if low < self._sources[name]},
            "idle": sorted(self._idle),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take :meth:`to_state` output: the horizon and each source's position never go back
        (what this clock heard since is kept); the idle marks are the state's."""
        horizon = state.get("horizon")
        self._horizon = max(self._horizon, -math.inf if horizon is None else horizon)
        lows = state.get("lows", {})
        for source, ts in state.get("sources", {}).items():
            self._sources[source] = max(ts, self._sources.get(source, -math.inf))
            low = lows.get(source, ts)
            self._lows[source] = max(low, self._lows.get(source, -math.inf))
        self._idle = set(state.get("idle", ()))
