"""The errors agent (telemetry.errors -> remediation decisions) and the feedback agent.

One :class:`~models.brains.errors.ErrorBrain` per partition of ``telemetry.errors``: the topic
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

from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import UNKNOWN_DECISION, Edge
from agents.runtime.publish import publish
from models.brains.errors import ErrorBrain
from schemas import Decision, ErrorEvent, Rejection, RemediationOutcome
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import MODEL_BYTES, SERIES_TRACKED, record_remediation_outcome

__all__ = [
    "brains",
    "checkpoint",
    "errors",
    "observe_anomaly",
    "remediation_feedback",
]

store: PartitionBrains[ErrorBrain] = PartitionBrains(
    "errors-brain",
    "Errors brain state per telemetry.errors partition.",
    topic_names.errors,
    lambda state: ErrorBrain() if state is None else ErrorBrain.from_state(state),
)
brains = store.brains


async def _handle_error(event: ErrorEvent) -> None:
    partition = handling_partition()
    for decision in store.get(partition).observe(event):
        await publish(decision, event.ts)
    store.touch(partition)


def observe_anomaly(decision: Decision) -> None:
    """Give an ``anomaly`` decision of the metrics agent to the errors brain as evidence.

    Call it from the metrics agent while it handles the sample that caused the decision:
    metrics and errors are keyed alike and have as many partitions, so the sample's
    partition number is the one of its series' errors. Other kinds are ignored.
    """
    if decision.kind != "anomaly":
        return
    partition = handling_partition()
    store.get(partition).observe_anomaly(
        decision.subject["service"],
        decision.subject["region"],
        decision.ts,
        decision.params["metric"],
        decision.evidence["score"],
    )
    store.touch(partition)


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
        if store.get(partition).learn_outcome(outcome):
            store.touch(partition)
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


@app.timer(settings.checkpoint_interval_s)
async def checkpoint() -> None:
    """Evict idle keys and write every brain that learned since the last checkpoint."""
    changed = store.checkpoint()
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
