"""The cost agent: metrics samples -> ``rightsize`` decisions, and each partition's part of
the budgets -> ``internal.budget-evidence``.

Feeding. It subscribes to :data:`agents.runtime.fanout.metric_samples`. One
:class:`~models.brains.cost.CostBrain` per ``telemetry.metrics`` partition learns the cost
(replicas x the price table, ``AUTOPILOT_PRICES``) and the sustained utilisation of the
series read from that partition, and the ``rightsize`` decisions it makes (instance family
or size, spot capacity) are published at once: a series is read from one partition, so each
is decided once.

Budgets. A budget's scope (the fleet, a service, a region; ``AUTOPILOT_BUDGETS``) spans
partitions. Every :data:`BUDGET_EVERY_S` wall seconds, each worker sends, for each metrics
partition it reads whose brain learned since and whose reading is near its end
(:data:`CAUGHT_UP_LAG`), a summary of that brain at its own event time
(:meth:`~models.brains.cost.BudgetWatch.summarize`: per scope, the month-end forecast, the
series counted, the five largest) to ``internal.budget-evidence``; its one partition's owner
judges the budgets (:mod:`agents.budgets`). A partition that holds no records sends an empty
part once it has held none for :data:`EMPTY_AFTER_S`.

State. The partition brains are checkpointed every ``AUTOPILOT_CHECKPOINT_INTERVAL_S`` to
the Faust table ``cost-brain`` (changelog ``<app>-cost-brain-changelog``, key ``b"<p>"`` on
partition ``p``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable
from typing import Any

import orjson
from faust.types import TP

from agents.compat.offsets import next_offset
from agents.runtime import fanout
from agents.runtime.checkpoints import OncePerMessage, PartitionBrains, handling_partition
from agents.runtime.publish import publish
from models.brains.cost import BudgetWatch, CostBrain
from schemas import Decision, MetricSample
from schemas.config.budgets import load_budgets
from schemas.config.prices import load_price_table
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import HANDLING_SECONDS, SERIES_TRACKED, record_cost

__all__ = [
    "BUDGET_EVERY_S",
    "EMPTY_AFTER_S",
    "budgets",
    "gauges",
    "send_budget_summaries",
    "send_parts",
    "store",
]

log = logging.getLogger(__name__)

BUDGET_EVERY_S = 10.0
"""Wall seconds between two summaries of a partition's part of the budgets."""

prices = load_price_table(settings.prices_path)
budgets = BudgetWatch(
    None if settings.budgets_path is None else load_budgets(settings.budgets_path)
)
store: PartitionBrains[CostBrain] = PartitionBrains(
    "cost-brain",
    "Cost brain state per telemetry.metrics partition.",
    topic_names.metrics,
    lambda state: CostBrain(prices) if state is None else CostBrain.from_state(state, prices),
)
CAUGHT_UP_LAG = 50
"""A partition's part of the budgets is sent only while its reading is this close to its
end: a part taken while catching up on a backlog would count only the series read so far."""

EMPTY_AFTER_S = 30.0
"""Wall seconds a partition must hold no records before its empty part is sent. A fleet's
first records reach the partitions one after another: an empty part sent in between would
let the judge sum the first partition's series alone and fire on them."""

# Partition -> event time of its last summary sent (None: an empty one).
_summarized: dict[int, float | None] = {}
# Partition -> the highest offset of a sample read from it since it was assigned.
_read: dict[int, int] = {}
# Partition -> monotonic time since which it has been seen holding no records.
_empty_since: dict[int, float] = {}


def _brain_of(event: Any, _: None) -> CostBrain | None:
    """The brain to learn the message of ``event`` (None: its checkpoint holds it already),
    its partition's reading noted."""
    partition = handling_partition()
    # The highest read, as next_offset wants it.
    _read[partition] = max(event.message.offset, _read.get(partition, -1))
    brain = store.learning(partition)
    if brain is not None:
        store.touch(partition)
    return brain


# The records of an envelope are one event: its partition's bookkeeping is done once.
_learning: OncePerMessage[CostBrain | None] = OncePerMessage(_brain_of)
_spent = HANDLING_SECONDS.seconds


@fanout.metric_samples.subscribe
def _on_sample(sample: MetricSample) -> Awaitable[None] | None:
    """Learn the cost of one sample; publish its rightsize decisions, if it makes any (a plain
    function: the fan-out awaits only those)."""
    brain = _learning()
    if brain is None:
        return None
    started = time.perf_counter()
    decisions = brain.observe(sample)
    _spent["cost_brain"] += time.perf_counter() - started
    # The cost a series reports, else the price table's.
    cost = sample.metrics.get("cost_per_hour", brain.cost_per_hour(sample.service, sample.region))
    if cost is not None:
        record_cost(sample.service, sample.region, cost)
    return _publish(decisions, sample.ts) if decisions else None


async def _publish(decisions: list[Decision], event_ts: float) -> None:
    for decision in decisions:
        await publish(decision, event_ts)


async def _on_partitions_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
    # Read again by their next owner from the committed offset; were one to come back here,
    # what was read of it before would be out of date.
    _learning.forget()
    for tp in revoked:
        if tp.topic == topic_names.metrics:
            _read.pop(tp.partition, None)
            _summarized.pop(tp.partition, None)
            _empty_since.pop(tp.partition, None)


app.on_partitions_revoked.connect(_on_partitions_revoked)


def _empty(partition: int) -> bool:
    since = _empty_since.get(partition)
    return since is not None and time.monotonic() - since >= EMPTY_AFTER_S


@app.timer(BUDGET_EVERY_S)
async def send_budget_summaries() -> None:
    """Send each read partition's part of the budgets, when it changed (an empty part for an
    empty partition: the judge waits to hear from every partition)."""
    if not budgets.budgets.scopes() or app.rebalancing:
        return
    if not app.tables.recovery.completed.is_set():
        return
    try:
        await send_parts()
    except Exception:
        # An exception would end the timer, and budgets would go unwatched for good.
        log.exception("sending budget summaries failed; will retry")


async def send_parts() -> None:
    """Send the part of each partition read here that changed and is read to its end."""
    owned = store.owned()
    if not owned:
        return
    # The end offsets from the broker: the consumer's own highwater is 0 until fetched.
    ends = await app.consumer.highwaters(*(TP(topic_names.metrics, p) for p in owned))
    for partition in owned:
        brain = store.get(partition)
        now = brain.watermark if math.isfinite(brain.watermark) else None
        if partition in _summarized and _summarized[partition] == now:
            continue
        highwater = ends.get(TP(topic_names.metrics, partition))
        if highwater == 0:
            _empty_since.setdefault(partition, time.monotonic())
        else:
            _empty_since.pop(partition, None)
        read = next_offset(TP(topic_names.metrics, partition), _read.get(partition, -1))
        unread = None if highwater is None else highwater - read
        if unread is None or unread > CAUGHT_UP_LAG or (now is None and not _empty(partition)):
            # Still reading it: its part comes once its samples are read (an empty part
            # only from a partition that has held none for a while).
            continue
        summary = budgets.summarize(now, brain if now is not None else None)
        await topics.budget_evidence.send(
            key=str(partition).encode(),
            value=orjson.dumps({"source": str(partition), "summary": summary}),
        )
        _summarized[partition] = now


@app.timer(settings.checkpoint_interval_s)
async def gauges() -> None:
    """The brains' sizes (they are written at every commit: agents.runtime.checkpoints)."""
    SERIES_TRACKED.labels("cost_brain").set(sum(len(b) for b in store.brains.values()))
