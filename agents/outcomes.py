"""The outcomes agent: ``internal.remediation-outcomes`` -> what the errors brains learn.

:mod:`agents.routes` sends each outcome to the partition numbered like the
``telemetry.errors`` partition whose :class:`~models.brains.errors.ErrorBrain` made the
decision; Faust assigns both partitions to one worker, so the brain is here, in
:data:`agents.errors.store`. It learns the outcome (the remediation policy's statistics),
or, when it no longer waits for it (expired, or answered meanwhile), the outcome is
dead-lettered as ``unknown_decision`` with its exact bytes.
"""

from __future__ import annotations

from agents.errors import store
from agents.feedback import decode_forwarded
from agents.runtime.checkpoints import handling_partition
from agents.runtime.edge import UNKNOWN_DECISION, Edge
from schemas import Rejection, RemediationOutcome
from streams.runtime.app import app, topics
from streams.runtime.exporter import record_remediation_outcome

__all__ = ["outcomes"]

LABEL = "internal.remediation-outcomes"


async def _handle(outcome: RemediationOutcome) -> Rejection | None:
    partition = handling_partition()
    brain = store.learning(partition)
    if brain is None:
        return None
    if not brain.learn_outcome(outcome):
        return Rejection(
            UNKNOWN_DECISION, "decision_id", "the decision's brain no longer awaits an outcome"
        )
    store.touch(partition)
    record_remediation_outcome(outcome.success)
    return None


@app.agent(topics.remediation_outcomes)
async def outcomes(stream):
    await Edge(LABEL, LABEL, decode=decode_forwarded).run(stream, _handle)
