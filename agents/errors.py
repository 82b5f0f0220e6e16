"""The errors agent (telemetry.errors -> remediation decisions) and the feedback agent.

One :class:`~models.error_brain.ErrorBrain` per partition of ``telemetry.errors``: the topic
is keyed ``service/region``, so a series' errors, its bursts, its deploys and the decisions
made for it all live in the brain of one partition. Each brain is checkpointed every
``AUTOPILOT_CHECKPOINT_INTERVAL_S`` to the Faust table ``errors-brain`` (changelog
``<app>-errors-brain-changelog``, compacted) as one JSON value under the key ``b"<p>"``,
written to changelog partition ``p``. Faust assigns changelog partition ``p`` with the
topic partitions ``p`` (same partition count), so the worker that gets errors partition
``p``, after a restart or a rebalance, restores exactly the brain of ``p``: its templates
and their ids, burst baselines, deploy history, action statistics and pending decisions.

Consequences, with one worker: it holds every partition's brain, and outcomes always find
their decision. Each brain learns only from its own partition's series, so action
statistics pooled over templates or error types, and the "same template bursting in other
regions" evidence, span the series of one partition, not the whole fleet. With several
workers, each holds the brains of its partitions; ``feedback.remediation`` is keyed by
``decision_id``, so an outcome may reach a worker that does not hold the decision's brain:
it is then dead-lettered as ``unknown_decision`` (with its exact bytes, so it can be
replayed), not learned.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from faust.streams import current_event

from agents.checkpoints import CHECKPOINT_MAX_BYTES, partition_table
from agents.edge import UNKNOWN_DECISION, Edge
from agents.publish import publish
from models.error_brain import ErrorBrain
from schemas import Decision, ErrorEvent, Rejection, RemediationOutcome
from streams.app import app, settings, topic_names, topics
from streams.exporter import MODEL_BYTES, SERIES_TRACKED, record_remediation_outcome

__all__ = [
    "brains",
    "checkpoint",
    "errors",
    "observe_anomaly",
    "remediation_feedback",
]

log = logging.getLogger(__name__)

checkpoints = partition_table("errors-brain", "Errors brain state per telemetry.errors partition.")
brains: dict[int, ErrorBrain] = {}
_dirty: set[int] = set()


def _key(partition: int) -> bytes:
    return str(partition).encode()


def _brain(partition: int) -> ErrorBrain:
    """The brain of an errors partition: in memory, else from its checkpoint, else new."""
    brain = brains.get(partition)
    if brain is None:
        saved = checkpoints.get(_key(partition))
        brain = ErrorBrain() if saved is None else ErrorBrain.from_state(orjson.loads(saved))
        brains[partition] = brain
    return brain


def _partition() -> int:
    """Partition of the message the agent is handling."""
    event = current_event()
    if event is None:
        raise RuntimeError("not called from an agent handling a message")
    return event.message.partition


async def _handle_error(event: ErrorEvent) -> None:
    partition = _partition()
    for decision in _brain(partition).observe(event):
        await publish(decision, event.ts)
    _dirty.add(partition)


def observe_anomaly(decision: Decision) -> None:
    """Give an ``anomaly`` decision of the metrics agent to the errors brain as evidence.

    Call it from the metrics agent while it handles the sample that caused the decision:
    metrics and errors are keyed alike and have as many partitions, so the sample's
    partition number is the one of its series' errors. Other kinds are ignored.
    """
    if decision.kind != "anomaly":
        return
    partition = _partition()
    _brain(partition).observe_anomaly(
        decision.subject["service"],
        decision.subject["region"],
        decision.ts,
        decision.params["metric"],
        decision.evidence["score"],
    )
    _dirty.add(partition)


def _owned_partitions() -> list[int]:
    """Errors partitions this worker is assigned as active, lowest first."""
    return sorted(
        tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic_names.errors
    )


async def _handle_outcome(outcome: RemediationOutcome) -> Rejection | None:
    # The outcome is keyed by decision id, not by service/region: any brain this worker
    # owns may have made the decision. A partition it owns but has not seen an error of
    # since it started may hold the decision in its checkpoint.
    for partition in _owned_partitions():
        if _brain(partition).learn_outcome(outcome):
            _dirty.add(partition)
            record_remediation_outcome(outcome.success)
            return None
    return Rejection(
        UNKNOWN_DECISION, "decision_id", "no decision with this id is pending on this worker"
    )


@app.agent(topics.errors)
async def errors(stream):
    await Edge("errors", "telemetry.errors").run(stream, _handle_error)


@app.agent(topics.remediation_feedback)
async def remediation_feedback(stream):
    await Edge("remediation_feedback", "feedback.remediation").run(stream, _handle_outcome)


@app.on_partitions_assigned.connect
async def _forget_lost_partitions(sender: Any, assigned: set[Any], **_: Any) -> None:
    """Drop the brains of errors partitions this worker no longer owns.

    Their new owner restores them from the changelog; a stale copy here would answer
    outcomes, and be checkpointed, in its place. Learning since the last checkpoint of a
    partition that moves is lost, as when a worker dies.
    """
    owned = {tp.partition for tp in assigned if tp.topic == topic_names.errors}
    for partition in set(brains) - owned:
        del brains[partition]
        _dirty.discard(partition)


@app.timer(settings.checkpoint_interval_s)
async def checkpoint() -> None:
    """Write the state of every brain that learned since the last checkpoint."""
    changed = bool(_dirty)
    while _dirty:
        partition = _dirty.pop()
        brain = brains.get(partition)
        if brain is None:
            continue
        state = orjson.dumps(brain.to_state())
        if len(state) > CHECKPOINT_MAX_BYTES:
            # Sending it would fail in the producer and stop the worker; keep learning in
            # memory and say so.
            log.error(
                "errors brain of partition %d is %d bytes, more than the %d a checkpoint "
                "holds: not checkpointed",
                partition, len(state), CHECKPOINT_MAX_BYTES,
            )  # fmt: skip
            continue
        checkpoints[_key(partition)] = state
    SERIES_TRACKED.labels("error_brain").set(sum(len(b.bursts) for b in brains.values()))
    if changed:
        # Walking every object costs about 20 ms per MiB of state: only when it changed.
        MODEL_BYTES.labels("error_brain").set(sum(b.approx_bytes() for b in brains.values()))


@app.page("/errors/templates/")
async def templates_view(view, request):
    """The error templates this worker's brains know, most frequent first (redacted text)."""
    return view.json(
        {
            str(partition): [
                {"template_id": t.template_id, "count": t.count, "template": t.template}
                for t in brain.miner.templates()[:50]
            ]
            for partition, brain in sorted(brains.items())
        }
    )
