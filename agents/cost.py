"""The cost agent: the metrics agent's samples -> ``rightsize`` and ``budget`` decisions.

Feeding. The metrics agent hands every valid sample to :func:`observe_metric_sample` while
handling it. One :class:`~models.brains.cost.CostBrain` per ``telemetry.metrics`` partition
learns the cost (replicas x the price table, ``AUTOPILOT_PRICES``) and the sustained
utilisation of the series read from that partition, and the ``rightsize`` decisions it makes
(instance family or size, spot capacity) are published at once: a series is read from one
partition, so each is decided once.

Budgets. A budget's scope (the fleet, a service, a region; ``AUTOPILOT_BUDGETS``) spans
partitions, so budgets are judged by one evaluator, as region health is: every
:data:`BUDGET_EVERY_S` wall seconds, the worker that reads every metrics partition sums the
month-end forecasts of all the partition brains (:class:`~models.brains.cost.BudgetWatch`)
at the newest event time it has read, and publishes a ``budget`` decision for each scope
whose forecast reaches its budget, once per scope and month. A worker that reads only part
of the metrics judges no budget, and says so once.

State. The partition brains are checkpointed every ``AUTOPILOT_CHECKPOINT_INTERVAL_S`` to
the Faust table ``cost-brain`` (changelog ``<app>-cost-brain-changelog``, key ``b"<p>"`` on
partition ``p``); the budgets fired this month to ``cost-budgets`` under ``b"0"``, after the
decisions are published (a crash in between repeats a budget decision rather than losing it;
its ``decision_id`` is the same).
"""

from __future__ import annotations

import logging
import math

import orjson

from agents.runtime.checkpoints import (
    PartitionBrains,
    handling_partition,
    holds_all_partitions,
    partition_table,
)
from agents.runtime.publish import publish
from models.brains.cost import BudgetWatch, CostBrain
from schemas import MetricSample
from schemas.config.budgets import load_budgets
from schemas.config.prices import load_price_table
from streams.runtime.app import app, settings, topic_names
from streams.runtime.exporter import SERIES_TRACKED, record_cost

__all__ = ["BUDGET_EVERY_S", "budgets", "check_budgets", "checkpoint", "observe_metric_sample"]

log = logging.getLogger(__name__)

BUDGET_EVERY_S = 10.0
"""Wall seconds between two budget evaluations; each judges at the newest event time read."""
STATE_KEY = b"0"

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
budget_table = partition_table("cost-budgets", "Budgets fired this month.")
# Whether this worker is the budget evaluator (None before the first evaluation); on
# becoming it, the fired budgets are restored from the table.
_evaluating: bool | None = None
# Event time of the last budget evaluation, for the web view.
_evaluated_to = -math.inf


async def observe_metric_sample(sample: MetricSample) -> None:
    """Learn the cost of one sample and publish its rightsize decisions.

    Call it from the metrics agent while handling the sample.
    """
    partition = handling_partition()
    brain = store.get(partition)
    for decision in brain.observe(sample):
        await publish(decision, sample.ts)
    store.touch(partition)
    # The cost a series reports, else the price table's.
    cost = sample.metrics.get("cost_per_hour", brain.cost_per_hour(sample.service, sample.region))
    if cost is not None:
        record_cost(sample.service, sample.region, cost)


@app.timer(BUDGET_EVERY_S)
async def check_budgets() -> None:
    """Judge every budget over all the metrics partitions, on the worker that reads them all."""
    global _evaluating, _evaluated_to
    if not budgets.budgets.scopes():
        return
    holds = holds_all_partitions(topic_names.metrics)
    if holds is None:
        return
    if holds != _evaluating:
        if holds:
            log.info("judging budgets: this worker reads all the metrics")
        else:
            log.warning(
                "not judging budgets: this worker reads only part of the metrics "
                "(a budget sums series of every partition)"
            )
    if not holds:
        _evaluating = False
        return
    try:
        if not _evaluating:
            saved = budget_table.get(STATE_KEY)
            if saved is not None:
                budgets.load_state(orjson.loads(saved))
            _evaluating = True
        brains = [store.get(p) for p in range(settings.partitions)]
        now = max((b.watermark for b in brains), default=-math.inf)
        if not math.isfinite(now):
            return
        decisions = budgets.check(now, brains)
        for decision in decisions:
            await publish(decision, now)
            log.info("budget: %s", decision.reason)
        if decisions:
            budget_table[STATE_KEY] = orjson.dumps(budgets.to_state())
        _evaluated_to = now
    except Exception:
        # An exception would end the timer, and budgets would go unwatched for good.
        log.exception("budget evaluation failed; will retry")


@app.timer(settings.checkpoint_interval_s)
async def checkpoint() -> None:
    """Evict idle series and write every partition brain that learned since the last time."""
    store.checkpoint()
    SERIES_TRACKED.labels("cost_brain").set(sum(len(b) for b in store.brains.values()))


@app.page("/cost/")
async def cost_view(view, request):
    """The budgets as this worker judges them: each scope's month-end forecast, and whether
    it fired this month; ``judging_budgets`` is false on a worker that reads only part of
    the metrics (its forecasts then cover only its own series)."""
    brains = list(store.brains.values())
    now = max((b.watermark for b in brains), default=-math.inf)
    return view.json(
        {
            "judging_budgets": bool(_evaluating),
            "evaluated_to": _evaluated_to if math.isfinite(_evaluated_to) else None,
            "series": sum(len(b) for b in brains),
            "budgets": budgets.report(now, brains) if math.isfinite(now) else [],
        }
    )
