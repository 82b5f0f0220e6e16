"""The metrics agent: telemetry.metrics -> anomaly and scaling decisions.

Every valid sample is emitted on :data:`agents.runtime.fanout.metric_samples` before the
metrics brain learns it, and every decision the brain makes on
:data:`~agents.runtime.fanout.metric_decisions` once published: the cost, errors and
region-evidence subscribers learn from them; this agent knows none of them.

Learned state is checkpointed to a Faust table (changelog topic
``<app>-metrics-brain-changelog``, compacted) every
``AUTOPILOT_CHECKPOINT_INTERVAL_S``, one entry per ``service/region`` holding
that series' detectors, forecaster, capacity estimate and scaler window. The
table is keyed exactly as the telemetry topic, and each entry lives on the
changelog partition numbered like the telemetry partition it
came from (recorded when the sample is handled): the worker that gets a
telemetry partition after a rebalance or a restart recovers exactly the state
of its series. A table (rather than a topic
of our own) gives us Faust's recovery, standby replicas and compaction for free;
writing dirty series on a timer (rather than per event) bounds the changelog
traffic to one record per series per interval.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import faust
import orjson
from faust.streams import current_event
from faust.types import TP

from agents import interactions
from agents.runtime import fanout
from agents.runtime.checkpoints import handing_over
from agents.runtime.edge import Edge
from agents.runtime.plugins import plugins
from agents.runtime.publish import publish
from models.brains.metrics import MetricsBrain
from schemas import MetricSample
from schemas.topics import telemetry_key
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import (
    MODEL_BYTES,
    SERIES_TRACKED,
    record_anomaly_score,
    record_scaling,
)

__all__ = ["brain", "checkpoint", "metrics"]

log = logging.getLogger(__name__)

brain = MetricsBrain(
    plugins=plugins.detectors, forecasters=plugins.forecasters, policies=plugins.policies
)
# The telemetry partition each series was last read from: its checkpoint goes to the
# changelog partition with the same number.
_partition_of: dict[bytes, int] = {}


class _SeriesTable(faust.Table):
    """A table whose entry for a series lives on the series' telemetry partition number.

    Faust's default takes the partition of the event being processed, which a timer has
    not; ``use_partitioner`` would ask the producer, whose metadata may not know the
    changelog topic yet when the first checkpoint is written.
    """

    def partition_for_key(self, key: Any) -> int:
        return _partition_of[key]


checkpoints = app.tables.add(
    _SeriesTable(
        app,
        name="metrics-brain",
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        beacon=app.tables.beacon,
        help="Metrics brain state per service/region.",
    )
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
    await fanout.metric_samples.emit(sample)
    for decision in brain.observe(sample.ts, sample.service, sample.region, sample.metrics):
        await publish(decision, sample.ts)
        await fanout.metric_decisions.emit(decision)
        if decision.kind == "anomaly":
            metric, score = decision.params["metric"], decision.evidence["score"]
            record_anomaly_score(sample.service, sample.region, metric, score)
        elif decision.kind == "scaling":
            desired = decision.params["desired_replicas"]
            record_scaling(sample.service, sample.region, desired_replicas=desired)
    _export(sample)
    event = current_event()
    if event is not None:
        _partition_of[telemetry_key(*key)] = event.message.partition
    _dirty.add(key)


def _export(sample: MetricSample) -> None:
    """What the dashboards show of a series: demand against its forecast and replicas (its
    cost is the cost agent's)."""
    metrics = sample.metrics
    forecast = brain.last_forecast(sample.service, sample.region)
    record_scaling(
        sample.service,
        sample.region,
        demand_rps=metrics.get("rps"),
        forecast_rps=None if forecast is None else forecast.mean,
        replicas=metrics.get("replicas"),
    )


@app.agent(topics.metrics)
async def metrics(stream):
    await Edge("metrics", "telemetry.metrics").run(stream, _handle)


CHECKPOINT_TICK_S = min(1.0, settings.checkpoint_interval_s)
"""Wall seconds between two slices of a checkpoint round."""
# The series of the current checkpoint round still to write, and how many to write a tick.
_round: list[tuple[str, str]] = []
_per_tick = 0
_round_started = -math.inf


@app.timer(CHECKPOINT_TICK_S)
async def checkpoint() -> None:
    """Write the state of the series that learned since their last checkpoint.

    Every ``AUTOPILOT_CHECKPOINT_INTERVAL_S`` a round takes the series that learned, and
    writes them in equal slices, one a :data:`CHECKPOINT_TICK_S`, over the interval: a few
    hundred series' states (about 20 kB each) written at once queued the decisions behind
    them in the producer for seconds.
    """
    global _per_tick, _round_started
    now = time.monotonic()
    if not _round and now - _round_started >= settings.checkpoint_interval_s:
        _round.extend(_dirty)
        _dirty.clear()
        _round_started = now
        ticks = max(1, int(settings.checkpoint_interval_s / CHECKPOINT_TICK_S))
        _per_tick = math.ceil(len(_round) / ticks)
        _end_of_round()
    for _ in range(min(_per_tick, len(_round))):
        key = _round.pop()
        try:
            _write(key)
        except Exception:
            # An exception would end the timer, and with it the worker: keep learning in
            # memory, say so, and try again in the next round.
            _dirty.add(key)
            _dirty.update(_round)
            _round.clear()
            log.exception("checkpoint of the metrics brain failed; will retry")
            break


def _write(key: tuple[str, str]) -> bool:
    """Write the state of series ``key`` to its checkpoint; False if it has none to write
    (evicted, or its partition no longer read here)."""
    state = brain.state_of(key)
    table_key = telemetry_key(*key)
    if state is None or table_key not in _partition_of:
        return False
    checkpoints[table_key] = orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY)
    return True


@handing_over
def _hand_over(revoked: set[TP]) -> int:
    """Hand the series of the partitions revoked over to their next owner.

    Faust has committed the offsets of every sample learned: their next owner reads on from
    there, and restores what was learned from the changelog. So each of their series is
    written now (not at its next round, which would lose the learning in between to the
    next owner, whose decisions would then differ from one worker's) and forgotten here: if
    the partition comes back, its series are restored from the owner's later checkpoints.
    """
    gone = {tp.partition for tp in revoked if tp.topic == topic_names.metrics}
    keys = [k for k in brain if _partition_of.get(telemetry_key(*k)) in gone]
    learned = _dirty | set(_round)
    written = 0
    for key in keys:
        if key in learned:
            try:
                written += _write(key)
            except Exception:
                log.exception("checkpoint of %s at revocation failed", key)
        brain.forget(key)
        _dirty.discard(key)
        del _partition_of[telemetry_key(*key)]
    _round[:] = [k for k in _round if k in brain]
    if keys:
        log.info("handed over %d series (%d written) of partitions %s", len(keys), written,
                 sorted(gone))  # fmt: skip
    return written


def _end_of_round() -> None:
    """Once a round: priors, eviction of idle series, gauges."""
    _hand_priors()
    evicted = brain.evict_idle(brain.watermark)
    for table_key in set(_partition_of) - {telemetry_key(*k) for k in brain}:
        del _partition_of[table_key]
    SERIES_TRACKED.labels("metrics_brain").set(len(brain))
    if evicted or len(brain):
        MODEL_BYTES.labels("metrics_brain").set(brain.approx_bytes())


def _hand_priors() -> None:
    """Give each series' load forecaster the usage profile its interactions have taught.

    ``telemetry.interactions`` is keyed like ``telemetry.metrics`` and has as many
    partitions, so Faust's assignor gives interactions partition ``p`` to the worker that
    reads metrics partition ``p``: the interactions brain of a series' partition, on this
    worker, holds the series' hour-of-week profile once it has learned a whole week. Until
    then, or while that partition is elsewhere, the forecaster keeps the prior it had.
    """
    for key in brain:
        partition = _partition_of.get(telemetry_key(*key))
        source = interactions.brains.get(partition) if partition is not None else None
        prior = None if source is None else source.prior_for(*key)
        if prior is not None:
            brain.set_prior(*key, prior)


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
