"""The OTLP metrics agent: the OpenTelemetry Collector's ``otlp_metrics`` -> ``telemetry.metrics``.

Each message is one OTLP export request (:func:`schemas.otlp.read_metrics`, in
``AUTOPILOT_OTLP_ENCODING``). Every data point is checked alone and accounted for: a bad one
is dead-lettered with its index in the request, the others are turned into metric values by
this partition's :class:`~models.brains.otlp.OtlpMetricsBrain` (counters and histograms
into rates and quantiles). What the points of one request say about a service in a region at
one time becomes one :class:`~schemas.MetricSample`; the samples of a series go in one
envelope, keyed ``service/region``, to ``telemetry.metrics``: from there on, a series from
the collector is learned, decided on and checkpointed as one from any other producer, on
the partition of its key. The brain's
last points are checkpointed to the table ``otlp-metrics-brain`` like the errors brain.
"""

from __future__ import annotations

import orjson

from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.otlp import otlp_edge, send_enveloped
from models.brains.otlp import OtlpMetricsBrain
from schemas import Rejection
from schemas.otlp import MetricPoint, read_metrics
from schemas.topics import telemetry_key
from schemas.validate import check_metrics
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import SERIES_TRACKED

__all__ = ["gauges", "otlp_metrics", "store"]

store: PartitionBrains[OtlpMetricsBrain] = PartitionBrains(
    "otlp-metrics-brain",
    "Last point of each cumulative OTLP series, per otlp_metrics partition.",
    topic_names.otlp_metrics,
    lambda state: OtlpMetricsBrain() if state is None else OtlpMetricsBrain.from_state(state),
)
edge = otlp_edge("metrics", "otlp_metrics", read_metrics)
# (service, region, ts) -> the metrics the request being read gives at that time.
_samples: dict[tuple[str, str, float], dict[str, float]] = {}


async def _handle_point(point: MetricPoint | None) -> Rejection | None:
    if point is None:  # no recorded value: a stale series' mark
        return None
    partition = handling_partition()
    brain = store.learning(partition)
    if brain is None:
        return None
    values = brain.observe(point)
    store.touch(partition)
    if not values:
        return None
    checked = check_metrics(values, edge.limits)
    if type(checked) is Rejection:
        return checked
    _samples.setdefault((point.service, point.region, point.ts), {}).update(values)
    return None


async def _send_samples() -> None:
    """Send what the request said of each series at each time, one sample a time, in one
    envelope a series. (A batching collector puts several collections of one series in one
    request.)"""
    series: dict[bytes, list[bytes]] = {}
    for (service, region, ts), metrics in sorted(_samples.items()):
        sample = {"ts": ts, "region": region, "service": service, "metrics": metrics}
        series.setdefault(telemetry_key(service, region), []).append(orjson.dumps(sample))
    _samples.clear()
    await send_enveloped(topics.metrics, series, edge)


@app.agent(topics.otlp_metrics)
async def otlp_metrics(stream):
    await edge.run(stream, _handle_point, _send_samples)


@app.timer(settings.checkpoint_interval_s)
async def gauges() -> None:
    """The brains' sizes (they are written at every commit: agents.runtime.checkpoints)."""
    SERIES_TRACKED.labels("otlp_metrics_brain").set(sum(map(len, store.brains.values())))
