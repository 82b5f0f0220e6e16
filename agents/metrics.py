"""The metrics agent: telemetry.metrics -> anomaly and scaling decisions.

Every valid sample is emitted on :data:`agents.runtime.fanout.metric_samples` before the
metrics brain learns it, and every decision the brain makes on
:data:`~agents.runtime.fanout.metric_decisions` once published: the cost, errors and
region-evidence subscribers learn from them; this agent knows none of them.

Learned state is checkpointed to a Faust table (changelog topic
``<app>-metrics-brain-changelog``, compacted) at every offset commit
(:mod:`agents.runtime.checkpoints`, every ``AUTOPILOT_CHECKPOINT_INTERVAL_S``), one entry
per ``service/region`` holding that series' detectors, forecaster, capacity estimate and
scaler window, with the position of its partitions: a sample below it is in the
checkpoint already, and is not learned again. The
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
from faust.types import TP

from agents import interactions
from agents.runtime import fanout
from agents.runtime.checkpoints import (
    OncePerMessage,
    changed,
    checkpoint_entry,
    checkpointing,
    handing_over,
    read_entry,
    replayed,
    written,
)
from agents.runtime.edge import Edge
from agents.runtime.plugins import plugins
from agents.runtime.publish import publish
from models.brains.metrics import MetricsBrain
from schemas import MetricSample
from schemas.topics import telemetry_key
from streams.runtime.app import COMMIT_INTERVAL_S, app, settings, topic_names, topics
from streams.runtime.exporter import (
    HANDLING_SECONDS,
    MODEL_BYTES,
    SERIES_TRACKED,
    record_anomaly_score,
    record_scaling,
)

__all__ = ["brain", "checkpoint", "metrics", "upkeep"]

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
_spent = HANDLING_SECONDS.seconds
# Series (table key) -> the positions its checkpoint was restored with.
_restored_at: dict[bytes, dict[str, int]] = {}


def _restore_or_create(key: tuple[str, str]) -> None:
    """Load a series' checkpoint the first time this worker sees the series."""
    table_key = telemetry_key(*key)
    saved = checkpoints.get(table_key)
    if saved is None:
        return
    positions, state = read_entry(saved)
    if positions is not None:
        _restored_at[table_key] = positions
    brain.restore(key, state)


async def _handle(sample: MetricSample) -> None:
    key = (sample.service, sample.region)
    if key not in brain:
        _restore_or_create(key)
    await fanout.metric_samples.emit(sample)
    if not _learns(key):
        return
    started = time.perf_counter()
    made = brain.observe(sample.ts, sample.service, sample.region, sample.metrics)
    _spent["metrics_brain"] += time.perf_counter() - started
    for decision in made:
        await publish(decision, sample.ts)
        await fanout.metric_decisions.emit(decision)
        if decision.kind == "anomaly":
            metric, score = decision.params["metric"], decision.evidence["score"]
            record_anomaly_score(sample.service, sample.region, metric, score)
        elif decision.kind == "scaling":
            desired = decision.params["desired_replicas"]
            record_scaling(sample.service, sample.region, desired_replicas=desired)
    _to_export[key] = sample


def _note_learning(event: Any, key: tuple[str, str]) -> bool:
    """Note that series ``key`` learns the message of ``event``; False if its checkpoint
    holds that message already (its brain must not learn it twice)."""
    table_key = telemetry_key(*key)
    floor = _restored_at.get(table_key)
    if floor and replayed(floor):
        return False
    if event is not None:
        _partition_of[table_key] = event.message.partition
    _dirty.add(key)
    changed((checkpoints.name, key))
    return True


# Once a message and series: an envelope's records are mostly of one series.
_learns: OncePerMessage[bool] = OncePerMessage(_note_learning)


# Series -> its latest sample learned in the message being handled. The gauges are set once
# a message from it: an envelope's last sample is what they would show after setting them
# for each, at a hundredth of the cost (2 % of a worker's time when set for each sample).
_to_export: dict[tuple[str, str], MetricSample] = {}


async def _export() -> None:
    """What the dashboards show of the series of the message handled: demand against its
    forecast and replicas (their cost is the cost agent's)."""
    for (service, region), sample in _to_export.items():
        metrics = sample.metrics
        forecast = brain.last_forecast(service, region)
        record_scaling(
            service,
            region,
            demand_rps=metrics.get("rps"),
            forecast_rps=None if forecast is None else forecast.mean,
            replicas=metrics.get("replicas"),
        )
    _to_export.clear()


@app.agent(topics.metrics)
async def metrics(stream):
    await Edge("metrics", "telemetry.metrics").run(stream, _handle, _export)


# The series of the current checkpoint round still to write, and how many to write a commit.
_round: list[tuple[str, str]] = []
_per_commit = 0
_round_started = -math.inf


@checkpointing
def checkpoint() -> None:
    """Write a slice of the series that learned (at every commit).

    Every ``AUTOPILOT_CHECKPOINT_INTERVAL_S`` a round takes the series that learned, and
    writes them in equal slices, one a commit (every :data:`COMMIT_INTERVAL_S`), over the
    interval: a few hundred series' states (about 20 kB each) written at once queued the
    decisions behind them in the producer for seconds. A series not written yet holds its
    partition's commit at the first sample it learned since its last checkpoint.
    """
    global _per_commit, _round_started
    now = time.monotonic()
    if not _round and now - _round_started >= settings.checkpoint_interval_s:
        _round.extend(_dirty)
        _dirty.clear()
        _round_started = now
        commits = max(1, int(settings.checkpoint_interval_s / COMMIT_INTERVAL_S))
        _per_commit = math.ceil(len(_round) / commits)
    for _ in range(min(_per_commit, len(_round))):
        key = _round.pop()
        try:
            _write(key)
        except Exception:
            # Keep learning in memory, say so, and try again in the next round.
            _dirty.add(key)
            _dirty.update(_round)
            _round.clear()
            log.exception("checkpoint of the metrics brain failed; will retry")
            break


def _write(key: tuple[str, str]) -> bool:
    """Write the state of series ``key`` to its checkpoint, with the positions of its
    partition; False if it has none to write (evicted, or its partition no longer read
    here)."""
    state = brain.state_of(key)
    table_key = telemetry_key(*key)
    partition = _partition_of.get(table_key)
    if state is None or partition is None:
        written((checkpoints.name, key))
        return False
    entry = checkpoint_entry(partition, _restored_at.get(table_key), state)
    checkpoints[table_key] = orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY)
    written((checkpoints.name, key))
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
    count = 0
    for key in keys:
        if key in learned:
            try:
                count += _write(key)
            except Exception:
                log.exception("checkpoint of %s at revocation failed", key)
        brain.forget(key)
        _dirty.discard(key)
        written((checkpoints.name, key))
        del _partition_of[telemetry_key(*key)]
        _restored_at.pop(telemetry_key(*key), None)
    _round[:] = [k for k in _round if k in brain]
    if keys:
        log.info("handed over %d series (%d written) of partitions %s", len(keys), count,
                 sorted(gone))  # fmt: skip
    return count


@app.timer(settings.checkpoint_interval_s)
async def upkeep() -> None:
    """Every checkpoint interval: priors, eviction of idle series, gauges."""
    _hand_priors()
    evicted = brain.evict_idle(brain.watermark)
    kept = set(brain)
    for key in [k for k in _dirty | set(_round) if k not in kept]:
        # Evicted: nothing of it is left to write.
        _dirty.discard(key)
        written((checkpoints.name, key))
    _round[:] = [k for k in _round if k in kept]
    for table_key in set(_partition_of) - {telemetry_key(*k) for k in kept}:
        del _partition_of[table_key]
        _restored_at.pop(table_key, None)
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
