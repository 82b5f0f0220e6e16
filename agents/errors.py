"""The errors agent: telemetry.errors -> remediation decisions.

One :class:`~models.brains.errors.ErrorBrain` per partition of ``telemetry.errors``: the topic
is keyed ``service/region``, so a series' errors, its bursts, its deploys and the decisions
made for it all live in the brain of one partition. It also learns, as evidence, the
anomalies of the metrics agent (:data:`agents.runtime.fanout.metric_decisions`): metrics and
errors are keyed alike and have as many partitions, so the anomaly's partition number is
the one of its series' errors. Each brain is checkpointed every
``AUTOPILOT_CHECKPOINT_INTERVAL_S`` to the Faust table ``errors-brain`` (changelog
``<app>-errors-brain-changelog``, compacted) as one JSON value under the key ``b"<p>"``,
written to changelog partition ``p``. Faust assigns changelog partition ``p`` with the
topic partitions ``p`` (same partition count), so the worker that gets errors partition
``p``, after a restart or a rebalance, restores exactly the brain of ``p``: its templates
and their ids, burst baselines, deploy history, action statistics and pending decisions.

Outcomes. Before a decision is published, its route (decision id -> partition ``p``) goes
to ``internal.remediation-routing``, keyed by decision id, and is delivered: an outcome,
which comes after someone read the decision, finds the route before it on that topic
(:mod:`agents.feedback`, :mod:`agents.routes`) and reaches this partition's brain on
``internal.remediation-outcomes`` (:mod:`agents.outcomes`), whichever worker holds it.

Each brain learns only from its own partition's series, so action statistics pooled over
templates or error types, and the "same template bursting in other regions" evidence, span
the series of one partition, not the whole fleet.
"""

from __future__ import annotations

import orjson

from agents.runtime import fanout
from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import Edge
from agents.runtime.publish import publish
from models.brains.errors import ErrorBrain
from schemas import Decision, ErrorEvent
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import MODEL_BYTES, SERIES_TRACKED

__all__ = ["brains", "errors", "gauges", "store"]

store: PartitionBrains[ErrorBrain] = PartitionBrains(
    "errors-brain",
    "Errors brain state per telemetry.errors partition.",
    topic_names.errors,
    lambda state: ErrorBrain() if state is None else ErrorBrain.from_state(state),
)
brains = store.brains


async def _send_route(decision: Decision, partition: int) -> None:
    """Tell the outcome router where ``decision`` waits for its outcome; wait for delivery,
    so that the route is on the topic before anyone can read the decision."""
    route = orjson.dumps({"route": decision.decision_id, "partition": partition})
    await (await topics.remediation_routing.send(key=decision.decision_id.encode(), value=route))


async def _handle_error(event: ErrorEvent) -> None:
    partition = handling_partition()
    brain = store.learning(partition)
    if brain is None:
        return
    for decision in brain.observe(event):
        await _send_route(decision, partition)
        await publish(decision, event.ts)
    store.touch(partition)


@fanout.metric_decisions.subscribe
def _on_metric_decision(decision: Decision) -> None:
    """An ``anomaly`` of the metrics agent is evidence for the errors brain; other kinds
    are ignored."""
    if decision.kind != "anomaly":
        return
    partition = handling_partition()
    brain = store.learning(partition)
    if brain is None:
        return
    brain.observe_anomaly(
        decision.subject["service"],
        decision.subject["region"],
        decision.ts,
        decision.params["metric"],
        decision.evidence["score"],
    )
    store.touch(partition)


@app.agent(topics.errors)
async def errors(stream):
    await Edge("errors", "telemetry.errors").run(stream, _handle_error)


@app.timer(settings.checkpoint_interval_s)
async def gauges() -> None:
    """The brains' sizes (they are written at every commit: agents.runtime.checkpoints)."""
    SERIES_TRACKED.labels("error_brain").set(sum(len(b.bursts) for b in brains.values()))
    if store.dirty:
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
