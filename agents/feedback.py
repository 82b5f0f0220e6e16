"""The feedback agent: ``feedback.remediation`` -> ``internal.remediation-routing``.

Outcomes come keyed by decision id, partitioned by whatever partitioner their producer
uses. Each valid outcome goes on, byte for byte, to ``internal.remediation-routing`` keyed
by its decision id with the worker's own partitioner: the partition where the errors agent
sent the decision's route before publishing the decision (:mod:`agents.errors`), so the
route always comes first there. :mod:`agents.routes` takes it from there. An outcome counts
as processed here once it is handed to the producer; whether its decision is known is
decided, and an unknown one dead-lettered, at the router.
"""

from __future__ import annotations

import dataclasses
import time

import faust

from agents.runtime.edge import Edge
from schemas import Limits, Rejection, RemediationOutcome, parse
from streams.runtime.app import app, topics

__all__ = ["decode_forwarded", "feedback"]

# A forwarded outcome was validated here; read late (up to ten years), its timestamp is not
# refused again.
_TEN_YEARS_S = 10 * 365 * 86_400.0
_FORWARDED = dataclasses.replace(
    Limits.from_env(), max_past_s=_TEN_YEARS_S, max_future_s=_TEN_YEARS_S
)


def decode_forwarded(raw: bytes) -> RemediationOutcome | Rejection:
    """An outcome this agent forwarded, read back on an internal topic."""
    return parse("remediation_feedback", raw, now=time.time(), limits=_FORWARDED)


async def _handle(outcome: RemediationOutcome) -> None:
    event = faust.current_event()
    assert event is not None, "called outside the agent's event"
    await topics.remediation_routing.send(
        key=outcome.decision_id.encode(), value=event.message.value
    )


@app.agent(topics.remediation_feedback)
async def feedback(stream):
    await Edge("remediation_feedback", "feedback.remediation").run(stream, _handle)
