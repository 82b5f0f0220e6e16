"""The failover agent: region health from telemetry, decisions on ``decisions.failover``.

Feeding. The metrics agent gives every sample to :func:`observe_metric_sample` and every
decision it makes to :func:`observe_anomaly`; the interactions agent gives every
interaction to :func:`observe_interaction`, and the SLO burn and feedback surges its
interactions brain finds to :func:`observe_health_evidence`. They only buffer the observation in the
:class:`~models.brains.region.RegionBrain`, tagged with the partition it was read from, so
that the brain can apply observations in event-time order whatever pace each partition is
read at (see :mod:`models.brains.region`).

Evaluating. A timer every :data:`EVALUATE_EVERY_S` wall seconds tells the brain which
partitions are idle (read to their end and quiet for :data:`IDLE_AFTER_S`), lets it evaluate
every 5 s of event time it can, and publishes each transition (``failover``,
``failover_blocked``, ``failback``) with its evidence, in mode ``recommend``. The timer is
only the wall clock that drives event time: detection delays and decision timestamps are
in event time, so a backlog read at full speed gets the same decisions as the live stream.

State. After each transition is published, and otherwise every
``AUTOPILOT_CHECKPOINT_INTERVAL_S``, the brain's state (health bank, policy, traffic per
data class, event-time position) is written to the Faust table ``region-brain`` (changelog
``<app>-region-brain-changelog``, compacted) under the one key ``b"regions"``. A restarted
worker restores it before its first evaluation, so a region it had failed over stays failed
over and is not failed over again. Decisions are published before the state that records
them is written: a crash in between repeats a transition rather than losing it.

One evaluator. Region health compares regions with one another, so one brain must see all
the telemetry. A worker evaluates only while it is assigned every partition of
``telemetry.metrics`` and ``telemetry.interactions``: with one worker, always; with several,
none does, and the worker logs a warning rather than fail a region whose telemetry another
worker reads. It still buffers what it reads (the buffer is bounded) and restores the
table's state whenever it becomes the evaluator, e.g. when the other workers leave.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import faust
import orjson
from faust.types import TP

from agents.runtime.checkpoints import holds_all_partitions, partition_table
from agents.runtime.publish import publish
from models.brains.interactions import HealthEvidence
from models.brains.region import RegionBrain
from models.policy.failover import FailoverDecisionDraft
from schemas import Decision, Interaction, MetricSample
from schemas.config.regions import load_region_config
from streams.runtime.app import app, settings, topic_names
from streams.runtime.exporter import set_region_health

__all__ = [
    "MODE",
    "brain",
    "evaluate_regions",
    "observe_anomaly",
    "observe_health_evidence",
    "observe_interaction",
    "observe_metric_sample",
]

log = logging.getLogger(__name__)

EVALUATE_EVERY_S = 1.0
"""Wall seconds between two timer runs; each evaluates all the event time it can."""
IDLE_AFTER_S = 2.0
"""A partition read to its end that delivered nothing for this long no longer holds event
time back (a producer flushes more often than this)."""
PUBLISH_TIMEOUT_S = 30.0
"""A decision not handed to the producer by then is retried at the next timer run."""
MODE = "recommend"
"""Failover decisions ask a human: moving a region's traffic has a region-wide blast radius."""
STATE_KEY = b"0"
"""The region state is one value, kept on changelog partition 0 (the key names it)."""

brain = RegionBrain(load_region_config(settings.regions_path))
# Written from a timer: with use_partitioner the producer may not know the changelog's
# partitions yet, and every write failed until it did.
checkpoints = partition_table("region-brain", "Region health and failover state.")
# Partition -> offset of the latest message observed from it, and when (monotonic) it was read.
_positions: dict[TP, tuple[int, float]] = {}
# Transitions taken but not yet published; the state is not checkpointed while any are.
_outbox: list[FailoverDecisionDraft] = []
_restored = False
# "starting", "rebalancing", "partial assignment" or "evaluating", for the web view.
_status = "starting"
_last_run = -math.inf
_last_checkpoint = -math.inf
# A transition was taken since the last checkpoint: the next one is due at once.
_transitioned = False


def _source() -> str:
    """The partition of the message being handled, as the brain's source name."""
    event = faust.current_event()
    if event is None:
        return ""
    message = event.message
    _positions[message.tp] = (message.offset, time.monotonic())
    return _source_name(message.tp)


def _source_name(tp: TP) -> str:
    return f"{tp.topic}/{tp.partition}"


def observe_metric_sample(sample: MetricSample) -> None:
    """Give a metrics sample to region health; call it from the metrics agent's handler."""
    brain.observe_metrics(sample.ts, sample.region, sample.service, sample.metrics, _source())


def observe_anomaly(decision: Decision) -> None:
    """Give an ``anomaly`` decision of the metrics agent to region health; others are ignored.

    Call it while handling the sample that caused the decision.
    """
    if decision.kind != "anomaly":
        return
    brain.observe_anomaly(
        decision.ts,
        decision.subject["region"],
        decision.subject["service"],
        decision.params["metric"],
        decision.evidence["score"],
        _source(),
    )


def observe_interaction(interaction: Interaction) -> None:
    """Give a user interaction (success, data class) to region health and traffic."""
    brain.observe_interaction(
        interaction.ts, interaction.region, interaction.success, interaction.data_class, _source()
    )


def observe_health_evidence(evidence: HealthEvidence) -> None:
    """Give health evidence of the interactions brain (SLO burn, feedback) to region health.

    Call it while handling the interaction that produced it. Tallies (``interactions``
    evidence) would count every interaction twice: the brain must be built without them.
    """
    brain.observe_evidence(evidence, _source())


def _is_idle(tp: TP, now: float) -> bool:
    offset, read_at = _positions[tp]
    highwater = app.consumer.highwater(tp)
    return now - read_at >= IDLE_AFTER_S and (highwater is None or offset + 1 >= highwater)


def _idle_sources() -> set[str]:
    """Partitions read to their end that have been quiet for :data:`IDLE_AFTER_S`."""
    actives = app.assignor.assigned_actives()
    for tp in [tp for tp in _positions if tp not in actives]:
        del _positions[tp]
    brain.retain_sources(_source_name(tp) for tp in _positions)
    now = time.monotonic()
    return {_source_name(tp) for tp in _positions if _is_idle(tp, now)}


def _restore() -> None:
    saved = checkpoints.get(STATE_KEY)
    if saved is not None:
        brain.load_state(orjson.loads(saved))
        log.info(
            "region brain restored: evaluated to %s, failed over: %s",
            brain.last_evaluation_ts,
            ", ".join(brain.failed_regions) or "none",
        )


@app.timer(EVALUATE_EVERY_S)
async def evaluate_regions() -> None:
    """Evaluate region health up to the event-time horizon; publish and checkpoint."""
    global _last_run
    _last_run = time.monotonic()
    try:
        await _evaluate()
    except Exception:
        # A bug must not stop failover for good (an exception would end the timer): it is
        # logged, and the next run tries again.
        log.exception("region health evaluation failed")


async def _evaluate() -> None:
    global _restored, _status, _last_checkpoint, _transitioned
    holds = holds_all_partitions(topic_names.metrics, topic_names.interactions)
    if holds is None:
        _status = "rebalancing"
        return
    status = "evaluating" if holds else "partial assignment"
    if status != _status and holds:
        log.info("evaluating region health: this worker reads all the telemetry")
    elif status != _status:
        log.warning(
            "not evaluating region health: this worker reads only part of the telemetry "
            "(failover needs one worker to read every metrics and interactions partition)"
        )
    _status = status
    if not holds:
        _restored = False
        return
    if not _restored:
        _restore()
        _restored = True
    transitions = brain.advance(_idle_sources())
    _outbox.extend(transitions)
    _transitioned = _transitioned or bool(transitions)
    while _outbox:
        draft = _outbox[0]
        try:
            await asyncio.wait_for(
                publish(draft.to_decision(mode=MODE), draft.ts), PUBLISH_TIMEOUT_S
            )
        except Exception:
            # Kept for the next run; the state is not checkpointed until it is out.
            log.exception("could not publish %s of %s; will retry", draft.kind, draft.region)
            return
        _outbox.pop(0)
        log.info("%s %s -> %s (%s)", draft.kind, draft.region, draft.target, draft.reason)
    for region, report in brain.reports.items():
        set_region_health(region, report.score)
    clock = time.monotonic()
    if _transitioned or clock - _last_checkpoint >= settings.checkpoint_interval_s:
        checkpoints[STATE_KEY] = orjson.dumps(brain.to_state())
        _last_checkpoint = clock
        _transitioned = False


@app.page("/failover/")
async def failover_view(view, request):
    """What the region brain knows: health per region, failed regions, traffic, progress.

    ``sources`` says, per partition read, how far it delivered in event time and whether it
    is idle: the busy partition furthest behind is what holds evaluation back. ``status``
    says why a worker does not evaluate, and ``timer_age_s`` that its timer still runs.
    """
    latest = brain.sources
    now = time.monotonic()
    sources = {
        _source_name(tp): {
            "latest_ts": latest.get(_source_name(tp)),
            "offset": offset,
            "highwater": app.consumer.highwater(tp),
            "idle": _is_idle(tp, now),
        }
        for tp, (offset, _) in sorted(_positions.items())
    }
    return view.json(
        {
            "evaluating": _status == "evaluating",
            "status": _status,
            "timer_age_s": round(now - _last_run, 3) if math.isfinite(_last_run) else None,
            "watermark": brain.watermark,
            "evaluated_to": brain.last_evaluation_ts,
            "pending": brain.pending,
            "sources": sources,
            "failed": list(brain.failed_regions),
            "placements": {r: brain.policy.placements(r) for r in brain.failed_regions},
            "traffic": {r: sorted(classes) for r, classes in sorted(brain.traffic.items())},
            "regions": {r: report.to_dict() for r, report in sorted(brain.reports.items())},
        }
    )
