"""The metrics agent: telemetry.metrics -> anomaly and scaling decisions.

Learned state is checkpointed to a Faust table (changelog topic
``<app>-metrics-brain-changelog``, compacted) every
``AUTOPILOT_CHECKPOINT_INTERVAL_S``, one entry per ``service/region`` holding
that series' detectors, forecaster, capacity estimate and scaler window. The
table is keyed exactly as the telemetry topic, so with ``use_partitioner`` each
entry lives on the changelog partition numbered like the telemetry partition it
came from: the worker that gets a telemetry partition after a rebalance or a
restart recovers exactly the state of its series. A table (rather than a topic
of our own) gives us Faust's recovery, standby replicas and compaction for free;
writing dirty series on a timer (rather than per event) bounds the changelog
traffic to one record per series per interval.
"""

from __future__ import annotations

import orjson

from agents import errors
from agents.edge import Edge
from agents.publish import publish
from models.metrics_brain import MetricsBrain
from schemas import MetricSample
from streams.app import app, settings, topics
from streams.exporter import (
    MODEL_BYTES,
    SERIES_TRACKED,
    record_anomaly_score,
    record_cost,
    record_scaling,
)
from streams.topics import telemetry_key

__all__ = ["brain", "checkpoint", "metrics"]

brain = MetricsBrain()
checkpoints = app.Table(
    "metrics-brain",
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    use_partitioner=True,
)
_dirty: set[tuple[str, str]] = set()


def _restore_or_create(key: tuple[str, str]) -> None:
    """Load a series' checkpoint the first time this worker sees the series."""
    saved = checkpoints.get(telemetry_key(*key))
    if saved is not None:
        brain.restore(key, orjson.loads(saved))


async def _handle(sample: MetricSample) -> None:
    key = (sample.service, sample.region)
    if key not in brain:
        _restore_or_create(key)
    for decision in brain.observe(sample.ts, sample.service, sample.region, sample.metrics):
        await publish(decision, sample.ts)
        errors.observe_anomaly(decision)
        if decision.kind == "anomaly":
            metric, score = decision.params["metric"], decision.evidence["score"]
            record_anomaly_score(sample.service, sample.region, metric, score)
        elif decision.kind == "scaling":
            desired = decision.params["desired_replicas"]
            record_scaling(sample.service, sample.region, desired_replicas=desired)
    _export(sample)
    _dirty.add(key)


def _export(sample: MetricSample) -> None:
    """What the dashboards show of a series: demand against its forecast, replicas, cost."""
    metrics = sample.metrics
    forecast = brain.last_forecast(sample.service, sample.region)
    record_scaling(
        sample.service,
        sample.region,
        demand_rps=metrics.get("rps"),
        forecast_rps=None if forecast is None else forecast.mean,
        replicas=metrics.get("replicas"),
    )
    if "cost_per_hour" in metrics:
        record_cost(sample.service, sample.region, metrics["cost_per_hour"])


@app.agent(topics.metrics)
async def metrics(stream):
    await Edge("metrics", "telemetry.metrics").run(stream, _handle)


@app.timer(settings.checkpoint_interval_s)
async def checkpoint() -> None:
    """Write the state of every series that learned since the last checkpoint."""
    while _dirty:
        key = _dirty.pop()
        state = brain.state_of(key)
        if state is not None:
            checkpoints[telemetry_key(*key)] = orjson.dumps(
                state, option=orjson.OPT_SERIALIZE_NUMPY
            )
    evicted = brain.evict_idle(brain.watermark)
    SERIES_TRACKED.labels("metrics_brain").set(len(brain))
    if evicted or len(brain):
        MODEL_BYTES.labels("metrics_brain").set(brain.approx_bytes())


@app.page("/brain/{service}/{region}/")
async def series_view(view, request, service: str, region: str):
    """What this worker has learned about one series: a 5-minute forecast and its maturity."""
    key = (service, region)
    if key not in brain:
        _restore_or_create(key)
    forecast = brain.forecast(service, region, 300.0)
    if forecast is None:
        return view.json({"service": service, "region": region, "known": False}, status=404)
    return view.json(
        {
            "service": service,
            "region": region,
            "known": True,
            "samples": brain.samples(key),
            "forecast_300s": {
                "mean": forecast.mean,
                "lower": forecast.lower,
                "upper": forecast.upper,
            },
        }
    )
