"""OTLP data points into metric values: gauges as they are, counters and histograms as rates
and quantiles over the interval since the series' previous point.

One :class:`OtlpMetricsBrain` per partition of the OTLP metrics topic. The collector's Kafka
exporter, with ``partition_metrics_by_resource_attributes``, writes every point of a
resource to one partition, so a series' previous point is always in the same brain, whichever
worker reads it.
"""

from __future__ import annotations

import math
from typing import Any

from schemas.otlp import MetricPoint

__all__ = ["OtlpMetricsBrain", "quantile"]

# Scale of a duration histogram's unit to milliseconds; a unit not listed is taken as ms.
_TO_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "ns": 1e-6}


class OtlpMetricsBrain:
    """The last point of each cumulative series, to turn the next into a rate.

    Memory: one entry per cumulative OTLP series (sum, histogram or summary stream) heard in
    the last ``ttl_s`` of event time, at most ``max_series``: about 150 bytes, plus 8 bytes
    a histogram bucket (a default SDK histogram has 16), so under 15 MiB at the bound, and a
    checkpoint (the same in JSON) fits a 16 MiB changelog message. When full, the series
    heard longest ago is dropped; its next point starts it again.

    A counter that went down (a restart) counts from zero: the increase is its new value, as
    Prometheus' ``rate`` does. The first point of a series gives no rate, only its baseline.

    Examples
    --------
    >>> from schemas.otlp import MetricPoint
    >>> def counter(ts, value):
    ...     series = ("api", "eu-west", "http.requests", ())
    ...     return MetricPoint("api", "eu-west", "rps", "cumulative", ts, 1.0, value, (), (), "",
    ...                        series)
    >>> brain = OtlpMetricsBrain()
    >>> brain.observe(counter(10.0, 100.0)), brain.observe(counter(20.0, 600.0))
    ({}, {'rps': 50.0})
    >>> brain.observe(counter(30.0, 40.0))  # the service restarted: 40 since
    {'rps': 4.0}
    >>> restored = OtlpMetricsBrain.from_state(brain.to_state())
    >>> restored.observe(counter(40.0, 240.0))
    {'rps': 20.0}

    """

    def __init__(self, max_series: int = 50_000, ttl_s: float = 3600.0) -> None:
        self.max_series = max_series
        self.ttl_s = ttl_s
        self.watermark = -math.inf
        # series -> [ts, start_ts, value, counts]; dict order is the order last heard.
        self._last: dict[tuple[Any, ...], list[Any]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def observe(self, point: MetricPoint) -> dict[str, float]:
        """The metric values ``point`` gives (none for a cumulative series' first point)."""
        self.watermark = max(self.watermark, point.ts)
        shape = point.shape
        if shape == "gauge":
            return {point.name: point.value}
        if shape == "delta":
            span = point.ts - point.start_ts
            return {point.name: point.value / span} if point.start_ts > 0 and span > 0 else {}
        if shape == "delta_histogram":
            return _histogram(point, point.counts, point.value, point.ts - point.start_ts)
        previous = self._remember(point)
        if previous is None or point.ts <= previous[0]:
            return {}
        span = point.ts - previous[0]
        restarted = point.value < previous[2] or point.start_ts != previous[1]
        if shape == "cumulative":
            increase = point.value if restarted else point.value - previous[2]
            return {point.name: increase / span}
        count = point.value if restarted else point.value - previous[2]
        if shape == "summary":
            return _summary(point, count / span)
        same_buckets = not restarted and len(previous[3]) == len(point.counts)
        counts = (
            [now - before for now, before in zip(point.counts, previous[3], strict=True)]
            if same_buckets
            else list(point.counts)
        )
        return _histogram(point, counts, count, span)

    def _remember(self, point: MetricPoint) -> list[Any] | None:
        previous = self._last.pop(point.series, None)
        counts = list(point.counts) if point.shape == "histogram" else []
        self._last[point.series] = [point.ts, point.start_ts, point.value, counts]
        if len(self._last) > self.max_series:
            del self._last[next(iter(self._last))]
        return previous

    def evict_idle(self, now: float) -> int:
        """Forget the series not heard for ``ttl_s`` before ``now``; return how many."""
        idle = [s for s, last in self._last.items() if now - last[0] > self.ttl_s]
        for series in idle:
            del self._last[series]
        return len(idle)

    def to_state(self) -> dict[str, Any]:
        # orjson writes the series' tuples as arrays; from_state makes them tuples again.
        return {"last": [[series, last] for series, last in self._last.items()]}

    @classmethod
    def from_state(cls, state: dict[str, Any], **config: Any) -> OtlpMetricsBrain:
        brain = cls(**config)
        for series, last in state["last"]:
            brain._last[_tupled(series)] = last
            brain.watermark = max(brain.watermark, last[0])
        return brain


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def _stems(point: MetricPoint) -> tuple[str, str, str, float]:
    """The names of the median, the 99th percentile and the rate a histogram gives, and the
    scale of its values."""
    if point.name == "latency":
        unit = "s" if not point.unit and point.series[2].endswith("_seconds") else point.unit
        return "latency_p50_ms", "latency_p99_ms", "rps", _TO_MS.get(unit, 1.0)
    return f"{point.name}_p50", f"{point.name}_p99", f"{point.name}_rate", 1.0


def _histogram(
    point: MetricPoint, counts: list[float] | tuple[float, ...], count: float, span: float
) -> dict[str, float]:
    total = sum(counts)
    if span <= 0 or total <= 0:
        return {}
    p50, p99, rate, scale = _stems(point)
    return {
        p50: quantile(0.5, point.bounds, counts) * scale,
        p99: quantile(0.99, point.bounds, counts) * scale,
        rate: count / span,
    }


def _summary(point: MetricPoint, rate: float) -> dict[str, float]:
    p50, p99, rate_name, scale = _stems(point)
    found = {rate_name: rate}
    for q, name in ((0.5, p50), (0.99, p99)):
        if q in point.bounds:
            found[name] = point.counts[point.bounds.index(q)] * scale
    return found


def quantile(q: float, bounds: tuple[float, ...], counts: list[float] | tuple[float, ...]) -> float:
    """The ``q`` quantile of an explicit-bucket histogram, interpolated within its bucket.

    Bucket ``i`` holds values in ``(bounds[i-1], bounds[i]]``; the first starts at 0 (or
    its bound, if negative), and a quantile in the last, unbounded, bucket is its lower
    bound, as Prometheus' ``histogram_quantile`` does.

    Examples
    --------
    >>> quantile(0.5, (0.1, 0.2, 0.5), [0, 10, 10, 0])
    0.2
    >>> quantile(0.99, (0.1, 0.2, 0.5), [0, 10, 10, 1])
    0.5
    """
    rank = q * sum(counts)
    seen = 0.0
    for i, count in enumerate(counts):
        if seen + count >= rank and count > 0:
            if i == len(bounds):
                return bounds[-1] if bounds else 0.0
            upper = bounds[i]
            lower = bounds[i - 1] if i > 0 else min(0.0, upper)
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return bounds[-1] if bounds else 0.0
