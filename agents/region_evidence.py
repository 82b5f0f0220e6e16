"""Region-health evidence of the telemetry partitions this worker reads, sent to the one
region evaluator (:mod:`agents.failover`) on ``internal.region-evidence``.

Feeding. It subscribes (:mod:`agents.runtime.fanout`) to the metrics samples and the
anomaly decisions of the metrics agent, and to the interactions and the health evidence
(SLO burns, feedback surges) of the interactions agent. Each goes into the
:class:`~models.brains.region_evidence.EvidenceRecorder` of the partition it was read from.

Sending. Every :data:`FLUSH_EVERY_S` wall seconds, and whenever a partition has
:data:`BATCH_ROWS` rows waiting, the rows of each partition go out as one record
``{"source": "<topic>/<partition>", "rows": [...]}``. A partition read to its end and quiet
for :data:`IDLE_AFTER_S` gets ``{"source": ..., "idle": true}``, renewed every
:data:`IDLE_AFTER_S` while it stays so: its silence no longer holds the evaluator's event
time back. A mark holds at the evaluator until its source delivers again; when a source
delivers after a spell in which every source was idle, every other mark must be renewed
twice (see :mod:`models.brains.event_time`), which takes about twice :data:`IDLE_AFTER_S`.
Read to its end means to the broker's end offset, asked when a mark is due, with no message
of the partition still being handled. The topic has one partition, so the evaluator reads
every source's records in the order they were sent, and a source's rows in the order they
were read. Records are keyed by source.

Crashes. The rows are sent before every commit of the offsets they were read at
(:func:`~agents.runtime.checkpoints.before_checkpoint`) and on revocation, so a worker that
dies loses none: it reads their records again, and sends their rows again. Each record says
at which offsets its rows were recorded (``spans``), and the evaluator ignores rows it
received before (:meth:`~models.brains.region.RegionBrain.observe_rows`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any

import orjson
from faust.types import TP

from agents import tenants
from agents.compat.offsets import next_offset
from agents.runtime import fanout
from agents.runtime.checkpoints import OncePerMessage, before_checkpoint, gate
from agents.runtime.sources import source_name
from models.brains.interactions import HealthEvidence
from models.brains.region_evidence import EvidenceRecorder
from schemas import Decision, Interaction, MetricSample
from streams.runtime.app import app, topic_names, topics
from streams.runtime.exporter import HANDLING_SECONDS

__all__ = [
    "BATCH_ROWS",
    "FLUSH_EVERY_S",
    "IDLE_AFTER_S",
    "SOURCE_TOPICS",
    "flush",
    "reading",
]

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 0.5
"""Wall seconds between two sends of the rows waiting."""
BATCH_ROWS = 2000
"""Rows of one partition sent at once when that many wait (about 120 kB)."""
IDLE_AFTER_S = 2.0
"""A partition read to its end that delivered nothing for this long no longer holds event
time back (a producer flushes more often than this); its mark is renewed as often."""

SOURCE_TOPICS = (topic_names.metrics, topic_names.interactions)
"""The topics whose partitions feed the region evaluator."""
# Partition -> its recorder, the highest offset read from it and when the latest message
# was read (monotonic); partitions assigned but not read yet have offset -1.
_recorders: dict[TP, EvidenceRecorder] = {}
_positions: dict[TP, tuple[int, float]] = {}
# Partition -> when (monotonic) its idle mark was sent last, if no rows were sent since.
_idle_marked: dict[TP, float] = {}
_sending = asyncio.Lock()
_spent = HANDLING_SECONDS.seconds


def _recorder_of(event: Any, _: None) -> EvidenceRecorder:
    """The recorder of the partition of ``event``'s message, its reading noted."""
    if event is None:
        raise RuntimeError("region evidence recorded outside an agent's event")
    message = event.message
    tp = message.tp
    # The highest offset read, as next_offset wants it.
    offset, _ = _positions.get(tp, (-1, 0.0))
    _positions[tp] = (max(offset, message.offset), time.monotonic())
    recorder = _recorders.get(tp)
    if recorder is None:
        recorder = _recorders[tp] = EvidenceRecorder()
    recorder.position = message.offset
    return recorder


# The records of an envelope are one event: its partition's bookkeeping is done once.
_recorder: OncePerMessage[EvidenceRecorder] = OncePerMessage(_recorder_of)


def _recorded(recorder: EvidenceRecorder) -> Awaitable[None] | None:
    """The flush of every partition's rows once ``recorder`` holds a full batch, else
    nothing: the subscribers are plain functions, and the fan-out awaits only that."""
    return flush() if recorder.size >= BATCH_ROWS else None


@fanout.metric_samples.subscribe
def _on_sample(sample: MetricSample) -> Awaitable[None] | None:
    started = time.perf_counter()
    recorder = _recorder()
    recorder.observe_metrics(sample.ts, sample.region, sample.service, sample.metrics)
    _spent["region_evidence"] += time.perf_counter() - started
    return _recorded(recorder)


@fanout.metric_decisions.subscribe
def _on_decision(decision: Decision) -> Awaitable[None] | None:
    if decision.kind != "anomaly":
        return None
    recorder = _recorder()
    subject, params = decision.subject, decision.params
    recorder.observe_anomaly(
        decision.ts,
        subject["region"],
        subject["service"],
        params["metric"],
        decision.evidence["score"],
    )
    return _recorded(recorder)


@fanout.interactions.subscribe
def _on_interaction(interaction: Interaction) -> Awaitable[None] | None:
    recorder = _recorder()
    i = interaction
    recorder.observe_interaction(i.ts, i.region, i.success, i.data_class)
    return _recorded(recorder)


@fanout.health_evidence.subscribe
def _on_evidence(evidence: HealthEvidence) -> Awaitable[None] | None:
    recorder = _recorder()
    recorder.observe_evidence(evidence)
    return _recorded(recorder)


async def _send(tp: TP, body: dict[str, Any]) -> None:
    name = source_name(tp)
    await topics.region_evidence.send(
        key=name.encode(), value=orjson.dumps({"source": name, **body})
    )


async def flush(*, idle_marks: bool = True) -> None:
    """Send every partition's waiting rows, then the idle marks due; in that order. The
    tenant brains hear the interactions partitions' progress and idle marks with them
    (:func:`agents.tenants.send_progress`)."""
    async with _sending:
        for tp, recorder in list(_recorders.items()):
            if recorder.size:
                _idle_marked.pop(tp, None)
                spans = recorder.spans
                await _send(tp, {"rows": recorder.drain(), "spans": spans})
        marked = await _send_idle_marks() if idle_marks else []
        await tenants.send_progress(
            idle=[tp for tp in marked if tp.topic == topic_names.interactions]
        )


async def _send_idle_marks() -> list[TP]:
    """Mark idle the partitions due; return them."""
    now = time.monotonic()
    # A message taken by its agent is unacknowledged until its handling ends: the rows and
    # the tenant requests of its last records may still be on their way (a publish waiting
    # on a busy broker), and a mark sent before them would let the evaluator and the tenant
    # brains pass their event time.
    handling = {message.tp for message in app.consumer.being_handled()}
    due = [tp for tp in _assigned_sources() if tp not in handling and _mark_due(tp, now)]
    if not due:
        return []
    # The highwater the consumer holds is as of its last fetch, and unknown before the
    # first: a worker just started, or too busy to fetch for a while, would call a
    # partition with unread records idle, and the evaluator would move event time past
    # their evidence (a region looks silent). The broker's end offsets say.
    ends = await app.consumer.highwaters(*due)
    marked = [tp for tp in due if _next_offset(tp) >= ends.get(tp, 0)]
    for tp in marked:
        _idle_marked[tp] = now
        await _send(tp, {"idle": True})
    return marked


def _assigned_sources() -> list[TP]:
    """The metrics and interactions partitions this worker reads, in a stable order."""
    actives = app.assignor.assigned_actives()
    return sorted(tp for tp in actives if tp.topic in SOURCE_TOPICS)


def _mark_due(tp: TP, now: float) -> bool:
    """Whether ``tp`` delivered nothing for :data:`IDLE_AFTER_S` (or since it was assigned)
    and its idle mark, if any, is as old."""
    _, read_at = _positions.setdefault(tp, (-1, now))
    return now - max(read_at, _idle_marked.get(tp, -math.inf)) >= IDLE_AFTER_S


def _next_offset(tp: TP) -> int:
    """The offset of the next message of ``tp`` this worker will read."""
    offset, _ = _positions[tp]
    return next_offset(tp, offset)


@app.timer(FLUSH_EVERY_S)
async def send_evidence() -> None:
    """Send what the partitions read told region health since the last time."""
    if app.rebalancing:
        return
    try:
        async with gate.handling():
            await flush()
    except Exception:
        # An exception would end the timer: the rows stay lost, the next run sends anew.
        log.exception("sending region evidence failed")


@before_checkpoint
async def _send_before_checkpoint() -> None:
    # The rows of the records whose offsets are about to be committed are in no checkpoint.
    await flush(idle_marks=False)


async def _on_partitions_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
    # Their offsets are committed now: what they told us goes out before another worker
    # reads on from there. No idle marks: they would ask the broker for end offsets inside
    # the rebalance, and a stop then cancels that request, which killed the consumer's
    # thread and left the worker waiting for its SIGKILL; the partitions' next owner marks
    # them idle.
    try:
        await flush(idle_marks=False)
    except Exception:
        log.exception("sending region evidence at revocation failed")
    _recorder.forget()
    for tp in revoked:
        _recorders.pop(tp, None)
        _positions.pop(tp, None)
        _idle_marked.pop(tp, None)


app.on_partitions_revoked.connect(_on_partitions_revoked)


def reading() -> dict[str, dict[str, Any]]:
    """Per partition this worker reads: its latest event time, offset, highwater, idleness."""
    now = time.monotonic()
    out = {}
    for tp in _assigned_sources():
        offset, _ = _positions.get(tp, (-1, now))
        recorder = _recorders.get(tp)
        latest = None if recorder is None else recorder.latest_ts
        out[source_name(tp)] = {
            "latest_ts": latest if latest is not None and math.isfinite(latest) else None,
            "offset": offset,
            "highwater": app.consumer.highwater(tp),
            "idle": tp in _idle_marked,
        }
    return out
