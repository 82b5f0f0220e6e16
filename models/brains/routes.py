"""Where remediation decisions were made, so that their outcomes find the brain that waits
for them.

An outcome names its decision by id only, while the brain that made the decision (and waits
for its outcome) is the one of the decision's partition. A :class:`RouteBook` remembers,
for each decision still awaiting its outcome, the partition of that brain; an outcome takes
its route once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

__all__ = ["RouteBook"]

_STATE_VERSION = 1


class RouteBook:
    """Decision id -> partition of the brain holding the decision, oldest dropped first.

    Parameters
    ----------
    max_routes
        Routes kept at most; beyond it the oldest is forgotten, and its outcome, if it ever
        comes, is refused as unknown (as its decision would be, by then).

    Notes
    -----
    Memory: ``max_routes`` entries of about 150 bytes (20,000: 3 MB): at least the pending
    decisions the errors brains of the partitions routed here keep.

    Examples
    --------
    >>> book = RouteBook(max_routes=2)
    >>> book.add("a" * 32, 3); book.add("b" * 32, 1); book.add("c" * 32, 0)
    >>> book.take("a" * 32), book.take("b" * 32), book.take("b" * 32), len(book)
    (None, 1, None, 1)
    """

    def __init__(self, max_routes: int = 20_000) -> None:
        if max_routes < 1:
            raise ValueError("max_routes must be >= 1")
        self.max_routes = max_routes
        self._routes: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._routes)

    def add(self, decision_id: str, partition: int) -> None:
        """Remember that ``decision_id`` waits for its outcome on ``partition``."""
        self._routes[decision_id] = partition
        self._routes.move_to_end(decision_id)
        while len(self._routes) > self.max_routes:
            self._routes.popitem(last=False)

    def take(self, decision_id: str) -> int | None:
        """The partition of ``decision_id``, forgotten once taken; ``None`` if unknown."""
        return self._routes.pop(decision_id, None)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state: the routes, oldest first."""
        return {"v": _STATE_VERSION, "routes": [[d, p] for d, p in self._routes.items()]}

    @classmethod
    def from_state(cls, state: dict[str, Any], max_routes: int = 20_000) -> RouteBook:
        """Rebuild a book from :meth:`to_state`.

        >>> book = RouteBook(); book.add("a" * 32, 2)
        >>> RouteBook.from_state(book.to_state()).take("a" * 32)
        2
        """
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported route book state version {state.get('v')!r}")
        book = cls(max_routes)
        routes: Sequence[Sequence[Any]] = state["routes"]
        for decision_id, partition in routes:
            book.add(decision_id, partition)
        return book
