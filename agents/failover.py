"""The failover agent: the one region evaluator, ``internal.region-evidence`` ->
``decisions.failover``.

Region health compares regions with one another, so one
:class:`~models.brains.region.RegionBrain` must hear from every partition of
``telemetry.metrics`` and ``telemetry.interactions``, whichever workers read them. Each
worker sends what its partitions tell region health (:mod:`agents.region_evidence`) to
the internal topic ``internal.region-evidence``, which has one partition: its owner is the
evaluator. The assignment picks it, and when its worker dies or leaves, the group gives the
partition (and the brain's changelog partition with it) to another worker, which resumes.

Evaluating. Each record names its source partition and carries its rows, or says that the
source is idle. The brain buffers the rows and, after each record, evaluates every 5 s of
event time up to its horizon, the lowest latest event time over the sources that are not
idle (for a source of envelopes, the earliest record of its latest message); until each
source has been heard from once, nothing is evaluated. Each transition
(``failover``, ``failover_blocked``, ``failback``) is published with its evidence, in mode
``recommend``, before the record that caused it counts as processed. Detection delays and
decision timestamps are in event time: the decisions do not depend on how many workers read
the telemetry, nor on the pace at which it is read.

State. The brain is checkpointed like every partition brain
(:class:`~agents.runtime.checkpoints.PartitionBrains`: table ``region-brain``, changelog
``<app>-region-brain-changelog``, key ``b"0"``): right after a transition is published, and
otherwise every ``AUTOPILOT_CHECKPOINT_INTERVAL_S``. It holds the health bank, the policy,
the traffic per data class and each source's event-time position; the observations buffered
but not yet evaluated are not in it, and a worker that takes over loses those (the
transitions they would have caused come a tick later, on the evidence that follows).
Decisions are published before the state that records them is written: a crash in between
repeats a transition (with the same ``decision_id``) rather than losing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from agents import region_evidence
from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import Edge
from agents.runtime.publish import publish
from agents.runtime.sources import source_names
from models.brains.region import RegionBrain
from models.policy.failover import FailoverDecisionDraft
from schemas import Rejection
from schemas.config.regions import load_region_config
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import HANDLING_SECONDS, set_region_health

__all__ = ["MODE", "Evidence", "decode_evidence", "failover", "retry_publish"]

log = logging.getLogger(__name__)

LABEL = "internal.region-evidence"
EVALUATOR = 0
"""The one partition of ``internal.region-evidence``, and of the brain's table."""
PUBLISH_TIMEOUT_S = 30.0
"""A decision not handed to the producer by then is retried after the next record."""
RETRY_EVERY_S = 1.0
"""Wall seconds between two attempts to publish transitions that failed to go out."""
MODE = "recommend"
"""Failover decisions ask a human: moving a region's traffic has a region-wide blast radius."""

config = load_region_config(settings.regions_path)
_sources = source_names(region_evidence.SOURCE_TOPICS, settings.partitions)


def _load(state: dict[str, Any] | None) -> RegionBrain:
    brain = RegionBrain(config)
    brain.expect(_sources)
    if state is not None:
        brain.load_state(state)
        log.info(
            "region brain restored: evaluated to %s, failed over: %s",
            brain.last_evaluation_ts,
            ", ".join(brain.failed_regions) or "none",
        )
    return brain


store: PartitionBrains[RegionBrain] = PartitionBrains(
    "region-brain",
    "Region health and failover state.",
    topic_names.region_evidence,
    _load,
    partitions=1,
    may_checkpoint=lambda: not _outbox,
)
# Transitions taken but not yet published; the state is not checkpointed while any are.
_outbox: list[FailoverDecisionDraft] = []
_deciding = asyncio.Lock()
_spent = HANDLING_SECONDS.seconds


@dataclass(frozen=True, slots=True)
class Evidence:
    """One record of ``internal.region-evidence``: a source's rows (with where in the source
    each was recorded, if said), or its idle mark."""

    source: str
    rows: list[list[Any]]
    idle: bool
    spans: list[list[int]] | None = None


def decode_evidence(raw: bytes) -> Evidence | Rejection:
    """The evidence in a record of ``internal.region-evidence``, or why there is none.

    Never raises; an internal record is only decoded (its telemetry was validated where it
    came in).

    >>> decode_evidence(b'{"source": "telemetry.metrics/0", "idle": true}')
    Evidence(source='telemetry.metrics/0', rows=[], idle=True, spans=None)
    >>> decode_evidence(b'{"rows": []}').reason, decode_evidence(b"[").reason
    ('missing_field', 'invalid_json')
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejection("invalid_json", None, "not a JSON document")
    if type(obj) is not dict:
        return Rejection("not_an_object", None, "the top-level value is not an object")
    source, rows, idle = obj.get("source"), obj.get("rows", []), obj.get("idle", False)
    spans = obj.get("spans")
    if type(source) is not str:
        return Rejection("missing_field", "source", "required field 'source' is missing")
    if type(rows) is not list or type(idle) is not bool:
        return Rejection("wrong_type", "rows", "'rows' must be a list and 'idle' a boolean")
    if spans is not None and type(spans) is not list:
        return Rejection("wrong_type", "spans", "'spans' must be a list")
    return Evidence(source, rows, idle, spans)


async def _handle(evidence: Evidence) -> None:
    partition = handling_partition()
    brain = store.learning(partition)
    if brain is None or (evidence.idle and evidence.source in brain.idle_sources):
        # (A mark renewed while its source stays idle changes nothing, and must not hold the
        # commit back as a change would.)
        return
    started = time.perf_counter()
    if evidence.idle:
        brain.mark_idle(evidence.source)
    else:
        brain.observe_rows(evidence.rows, evidence.source, evidence.spans)
    _spent["region_brain"] += time.perf_counter() - started
    store.touch(partition)
    await _decide(brain)


async def _decide(brain: RegionBrain) -> None:
    """Evaluate up to the horizon; publish the transitions."""
    async with _deciding:
        started = time.perf_counter()
        _outbox.extend(brain.advance())
        _spent["region_brain"] += time.perf_counter() - started
        while _outbox:
            draft = _outbox[0]
            try:
                decision = draft.to_decision(mode=MODE)
                await asyncio.wait_for(publish(decision, draft.ts), PUBLISH_TIMEOUT_S)
            except Exception:
                # Kept for the next record or retry; the state is not checkpointed until
                # it is out.
                log.exception("could not publish %s of %s; will retry", draft.kind, draft.region)
                return
            _outbox.pop(0)
            log.info("%s %s -> %s (%s)", draft.kind, draft.region, draft.target, draft.reason)
        for region, report in brain.reports.items():
            set_region_health(region, report.score)


@app.agent(topics.region_evidence)
async def failover(stream):
    await Edge(LABEL, LABEL, decode=decode_evidence).run(stream, _handle)


@app.timer(RETRY_EVERY_S)
async def retry_publish() -> None:
    """Publish the transitions a failed publish left behind (no record may come soon)."""
    brain = store.brains.get(EVALUATOR)
    if brain is None:
        # The evaluator moved to another worker, which decides from its checkpoint.
        _outbox.clear()
    elif _outbox:
        await _decide(brain)


@app.page("/failover/")
async def failover_view(view, request):
    """What this worker knows of region health.

    ``evaluating`` says whether it is the evaluator (it owns ``internal.region-evidence``);
    if so, the brain's view: health per region, failed regions, traffic, progress, and per
    source partition how far it delivered in event time and whether it is idle (the busy
    source furthest behind is what holds evaluation back). ``reading`` says, per telemetry
    partition this worker reads, what it sent the evaluator.
    """
    brain = store.brains.get(EVALUATOR)
    evaluating = EVALUATOR in store.owned() and not app.rebalancing
    if evaluating and brain is None and app.tables.recovery.completed.is_set():
        brain = store.get(EVALUATOR)
    body: dict[str, Any] = {"evaluating": evaluating, "reading": region_evidence.reading()}
    if brain is None or not evaluating:
        return view.json({**body, "evaluated_to": None, "failed": [], "sources": {}})
    idle = brain.idle_sources
    return view.json(
        {
            **body,
            "watermark": brain.watermark,
            "evaluated_to": brain.last_evaluation_ts,
            "pending": brain.pending,
            # Applied ahead of their tick (the buffer was full) or ignored as a replay of
            # what the restored state had learned: either may change a decision.
            "forced": brain.forced,
            "replayed": brain.replayed,
            "unpublished": len(_outbox),
            "sources": {
                name: {"latest_ts": ts, "idle": name in idle}
                for name, ts in sorted(brain.sources.items())
            },
            "failed": list(brain.failed_regions),
            "placements": {r: brain.policy.placements(r) for r in brain.failed_regions},
            "traffic": {r: sorted(classes) for r, classes in sorted(brain.traffic.items())},
            "regions": {r: report.to_dict() for r, report in sorted(brain.reports.items())},
        }
    )
