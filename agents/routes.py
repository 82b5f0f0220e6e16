"""The routes agent: ``internal.remediation-routing`` -> ``internal.remediation-outcomes``.

The topic holds, keyed by decision id, two kinds of record: a route ``{"route":
"<decision id>", "partition": p}`` that the errors agent sends before publishing a
remediation decision made by the brain of ``telemetry.errors`` partition ``p``, and the
outcomes :mod:`agents.feedback` forwards, byte for byte. A decision's route and its
outcomes share a key, hence a partition, and the route comes first. The
:class:`~models.brains.routes.RouteBook` of the partition remembers each route; an outcome
takes its decision's route and goes on to partition ``p`` of
``internal.remediation-outcomes``, which Faust assigns with partition ``p`` of
``telemetry.errors``: to the worker holding the decision (:mod:`agents.outcomes`). An
outcome without a route (a decision never made, answered already, or forgotten) is
dead-lettered here as ``unknown_decision``, with its exact bytes.

The books are checkpointed like every partition brain (table ``remediation-routes``).
"""

from __future__ import annotations

import dataclasses

import faust
import orjson

from agents.feedback import decode_forwarded
from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import UNKNOWN_DECISION, Edge
from models.brains.routes import RouteBook
from schemas import Rejection, RemediationOutcome
from streams.runtime.app import app, topic_names, topics

__all__ = ["Route", "decode_routing", "routes", "store"]

LABEL = "internal.remediation-routing"


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Where a decision waits for its outcome: partition ``partition`` of the errors."""

    decision_id: str
    partition: int


def decode_routing(raw: bytes) -> Route | RemediationOutcome | Rejection:
    """The route or the outcome in a record of ``internal.remediation-routing``.

    >>> decode_routing(b'{"route": "' + b"a" * 32 + b'", "partition": 2}').partition
    2
    >>> decode_routing(b'{"decision_id": "' + b"a" * 32 + b'", "ts": 1.7e9, "success": true}')
    ... # doctest: +NORMALIZE_WHITESPACE
    RemediationOutcome(decision_id='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', ts=1700000000.0,
                       success=True, notes=None)
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejection("invalid_json", None, "not a JSON document")
    if type(obj) is dict and "route" in obj:
        route, partition = obj["route"], obj.get("partition")
        if type(route) is not str or type(partition) is not int:
            return Rejection("wrong_type", "partition", "a route needs an id and a partition")
        return Route(route, partition)
    return decode_forwarded(raw)


store: PartitionBrains[RouteBook] = PartitionBrains(
    "remediation-routes",
    "Routes of the remediation decisions awaiting their outcome.",
    topic_names.remediation_routing,
    lambda state: RouteBook() if state is None else RouteBook.from_state(state),
)


async def _handle(record: Route | RemediationOutcome) -> Rejection | None:
    partition = handling_partition()
    book = store.learning(partition)
    if book is None:
        return None
    store.touch(partition)
    if isinstance(record, Route):
        book.add(record.decision_id, record.partition)
        return None
    target = book.take(record.decision_id)
    if target is None:
        return Rejection(
            UNKNOWN_DECISION, "decision_id", "no decision with this id awaits an outcome"
        )
    await topics.remediation_outcomes.send(
        key=record.decision_id.encode(), value=_raw(), partition=target
    )
    return None


def _raw() -> bytes:
    event = faust.current_event()
    assert event is not None, "called outside the agent's event"
    return event.message.value


@app.agent(topics.remediation_routing)
async def routes(stream):
    await Edge(LABEL, LABEL, decode=decode_routing).run(stream, _handle)
