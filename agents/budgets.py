"""The budgets agent: the one judge of the budgets, ``internal.budget-evidence`` ->
``budget`` decisions on ``decisions.scaling``.

Each worker sends, per metrics partition it reads, that partition's part of every budget's
scope (:mod:`agents.cost`) to ``internal.budget-evidence``, whose one partition's owner is
the judge. Its :class:`~models.brains.cost.BudgetWatch` keeps the latest summary of each
partition (a partition without series sends an empty one) and, after each record, once
every partition has been heard from, sums them at the latest event time any reached,
publishing a ``budget`` decision for each scope whose month-end forecast reaches its budget,
once per scope and month. Its ``decision_id`` depends on the scope, the budget and the
month only: the same with one worker or several.

State. The watch (the budgets fired this month and each partition's latest summary) is
checkpointed like every partition brain (table ``cost-budgets``, key ``b"0"``): right after
a budget decision is published (a crash in between repeats the decision, with the same id,
rather than losing it), and otherwise every ``AUTOPILOT_CHECKPOINT_INTERVAL_S``. When its
worker dies, the partition's next owner restores it and judges on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import orjson

from agents.cost import budgets as configured
from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import Edge
from agents.runtime.publish import publish
from models.brains.cost import BudgetWatch
from schemas import Rejection
from streams.runtime.app import app, settings, topic_names, topics

__all__ = ["BudgetSummary", "budgets", "decode_summary"]

log = logging.getLogger(__name__)

LABEL = "internal.budget-evidence"
JUDGE = 0
"""The one partition of ``internal.budget-evidence``, and of the watch's table."""


def _load(state: dict[str, Any] | None) -> BudgetWatch:
    watch = BudgetWatch(configured.budgets)
    watch.expect(str(p) for p in range(settings.partitions))
    if state is not None:
        watch.load_state(state)
    return watch


store: PartitionBrains[BudgetWatch] = PartitionBrains(
    "cost-budgets",
    "Budgets fired this month and each metrics partition's part of them.",
    topic_names.budget_evidence,
    _load,
    partitions=1,
)


@dataclass(frozen=True, slots=True)
class BudgetSummary:
    """One record of ``internal.budget-evidence``: a metrics partition's part of the budgets."""

    source: str
    summary: dict[str, Any]


def decode_summary(raw: bytes) -> BudgetSummary | Rejection:
    """The summary in a record of ``internal.budget-evidence``, or why there is none.

    >>> decode_summary(b'{"source": "2", "summary": {"ts": 1.0}}').source
    '2'
    >>> decode_summary(b'{"source": "2"}').reason
    'missing_field'
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejection("invalid_json", None, "not a JSON document")
    if type(obj) is not dict:
        return Rejection("not_an_object", None, "the top-level value is not an object")
    source, summary = obj.get("source"), obj.get("summary")
    if type(source) is not str or type(summary) is not dict:
        return Rejection("missing_field", "summary", "a summary needs a source and its parts")
    return BudgetSummary(source, summary)


async def _handle(record: BudgetSummary) -> None:
    partition = handling_partition()
    watch = store.learning(partition)
    if watch is None:
        return
    watch.observe(record.source, record.summary)
    store.touch(partition)
    decisions = watch.judge()
    for decision in decisions:
        await publish(decision, decision.ts)
        log.info("budget: %s", decision.reason)


@app.agent(topics.budget_evidence)
async def budgets(stream):
    await Edge(LABEL, LABEL, decode=decode_summary).run(stream, _handle)


@app.page("/cost/")
async def cost_view(view, request):
    """The budgets as the judge sees them: each scope's month-end forecast over every
    partition's latest summary, and whether it fired this month; ``judging_budgets`` is
    false on a worker that is not the judge (the rest is then empty)."""
    judging = JUDGE in store.owned() and not app.rebalancing
    watch = store.brains.get(JUDGE)
    if judging and watch is None and app.tables.recovery.completed.is_set():
        watch = store.get(JUDGE)
    if not judging or watch is None:
        return view.json({"judging_budgets": False, "evaluated_to": None, "budgets": []})
    now = watch.now
    return view.json(
        {
            "judging_budgets": True,
            "evaluated_to": now if math.isfinite(now) else None,
            "budgets": watch.report(),
        }
    )
