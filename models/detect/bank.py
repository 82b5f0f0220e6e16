"""Per-key anomaly detectors with idle-key eviction and a memory estimate."""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Any

from models.detect.anomaly import AnomalyScore, DetectorConfig, SeriesDetector

__all__ = ["DetectorBank", "deep_sizeof"]


def deep_sizeof(obj: Any, exclude: tuple[Any, ...] = ()) -> int:
    """Approximate bytes held by ``obj`` and everything it references.

    Follows ``__dict__``, ``__slots__`` (and their compiled form, mypyc's ``__mypyc_attrs__``:
    :mod:`models.native`), lists, tuples, sets, dicts and arrays (numpy arrays report their
    buffer through ``sys.getsizeof``); each object is counted once. Objects in ``exclude``
    (e.g. a config shared by many detectors) and classes are not counted.

    Examples
    --------

    >>> from models.detect.bank import deep_sizeof
    >>> deep_sizeof([1.5, 2.5]) > deep_sizeof([])
    True

    """
    seen = {id(item) for item in exclude}
    total = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, (str, bytes, bytearray, int, float, bool, array)) or item is None:
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        if hasattr(item, "__dict__"):
            stack.append(vars(item))
        for cls in type(item).__mro__:
            names = getattr(cls, "__slots__", None) or getattr(cls, "__mypyc_attrs__", ())
            for name in (names,) if isinstance(names, str) else names:
                if hasattr(item, name) and name not in ("__dict__", "__weakref__"):
                    stack.append(getattr(item, name))
    return total


class DetectorBank:
    """One :class:`~models.detect.anomaly.SeriesDetector` per key, created on first use.

    Keys are any hashable, e.g. ``(service, region, metric)``. A key whose last value is older
    than ``ttl`` seconds of event time is dropped by :meth:`evict_idle`; when more than
    ``max_keys`` keys are live, the least recently updated one is dropped at once. Memory is
    therefore bounded by ``max_keys`` times the per-detector size (about 2.3 KiB with the default
    config, see :meth:`approx_bytes`) plus about 100 bytes of bookkeeping per key.

    Parameters
    ----------
    config
        Shared by every detector; :data:`~models.detect.anomaly.DEFAULT_DETECTOR_CONFIG` if omitted.
    ttl
        Idle time, in event-time seconds, after which a key is evicted by :meth:`evict_idle`.
    max_keys
        Cap on the number of live keys (least recently updated evicted first).

    Examples
    --------

    >>> from models.detect.bank import DetectorBank
    >>> bank = DetectorBank(ttl=3600.0, max_keys=1000)
    >>> for i in range(10):
    ...     _ = bank.update(("api", "eu-west-1", "cpu"), i * 60.0, 40.0 + i % 3)
    >>> _ = bank.update(("db", "eu-west-1", "cpu"), 7200.0, 10.0)
    >>> len(bank)
    2
    >>> bank.evict_idle(now=7200.0)  # the api series has been silent for more than an hour
    1
    >>> list(bank)
    [('db', 'eu-west-1', 'cpu')]

    """

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        ttl: float = 6 * 3600.0,
        max_keys: int = 100_000,
    ) -> None:
        if not ttl > 0 or max_keys < 1:
            raise ValueError("ttl must be > 0 and max_keys >= 1")
        self._config = config
        self.ttl = ttl
        self.max_keys = max_keys
        # Ordered from least to most recently updated, which is the LRU eviction order.
        self._detectors: OrderedDict[Hashable, SeriesDetector] = OrderedDict()
        self._watermark = float("-inf")

    def __len__(self) -> int:
        return len(self._detectors)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._detectors

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._detectors)

    @property
    def watermark(self) -> float:
        """Largest event time seen so far (``-inf`` before the first value)."""
        return self._watermark

    def get(self, key: Hashable) -> SeriesDetector | None:
        """The detector for ``key`` if it is live, without touching its recency."""
        return self._detectors.get(key)

    def update(self, key: Hashable, ts: float, x: float) -> AnomalyScore:
        """Score then learn ``x`` at event time ``ts`` for ``key``; ``ValueError`` if not finite."""
        detectors = self._detectors
        detector = detectors.get(key)
        if detector is None:
            detector = SeriesDetector(self._config)
            # A value the detector rejects must not leave an empty key behind.
            result = detector.update(ts, x)
            detectors[key] = detector
            if len(detectors) > self.max_keys:
                detectors.popitem(last=False)
        else:
            detectors.move_to_end(key)
            result = detector.update(ts, x)
        if ts > self._watermark:
            self._watermark = ts
        return result

    def evict_idle(self, now: float | None = None) -> int:
        """Drop keys idle for more than ``ttl`` at event time ``now`` (default: the watermark).

        Scans every key, since event times of different keys need not arrive in order.
        Returns the number of keys dropped.
        """
        cutoff = (self._watermark if now is None else now) - self.ttl
        idle = [key for key, det in self._detectors.items() if det.last_ts < cutoff]
        for key in idle:
            del self._detectors[key]
        return len(idle)

    def state_of(self, key: Hashable) -> dict[str, Any] | None:
        """JSON-friendly checkpoint of ``key``'s detector, or None if the key is not live."""
        detector = self._detectors.get(key)
        return None if detector is None else detector.to_state()

    def restore(self, key: Hashable, state: dict[str, Any]) -> None:
        """Install a detector rebuilt from :meth:`state_of` (e.g. read back from a table)."""
        self._detectors[key] = SeriesDetector.from_state(state, self._config)
        self._detectors.move_to_end(key)
        if len(self._detectors) > self.max_keys:
            self._detectors.popitem(last=False)

    def approx_bytes(self) -> int:
        """Approximate bytes held by the live detectors and the key index (keys excluded)."""
        config = next(iter(self._detectors.values())).config if self._detectors else None
        detectors = sum(deep_sizeof(det, exclude=(config,)) for det in self._detectors.values())
        return sys.getsizeof(self._detectors) + detectors
