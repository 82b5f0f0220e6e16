"""The cost agent on the real broker: a budget is judged over every partition's series, once
a month, across a kill -9; the cost of a series without ``cost_per_hour`` comes from prices."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from streams.lab.simulator import DEFAULT_REGIONS, DEFAULT_SERVICES
from tests.conftest import wait_until
from tests.support.worker_views import FAST_CHECKPOINTS, cost_view, decisions

pytestmark = pytest.mark.kafka

# The simulated fleet costs about 9 USD an hour: the total budget is spent within the first
# hour of the month, while checkout's is never reached.
BUDGETS = """
[budget]
total_usd = 1.0

[budget.services]
checkout = 1000000.0
"""


def test_budget_is_judged_over_all_series_once_a_month(
    start_worker, kafka_bootstrap, topic_names, tmp_path: Path
) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(BUDGETS)
    env = {**FAST_CHECKPOINTS, "AUTOPILOT_BUDGETS": str(budgets)}
    worker = start_worker(env, name="first")
    summary, _ = worker.simulate(tmp_path, "--scenario", "healthy", "--duration", "600")
    worker.wait_handled("telemetry.metrics", summary["sent"]["metrics"])

    def budget_decisions() -> list:
        return [d for d in decisions(kafka_bootstrap, topic_names.scaling) if d.kind == "budget"]

    # An empty partition's part comes once it has held no records for 30 s.
    wait_until(lambda: budget_decisions() != [], 120, "no budget decision")
    [decision] = budget_decisions()
    assert decision.subject == {} and decision.action == "budget_alert"
    assert decision.mode == "recommend" and decision.params["budget_usd"] == 1.0
    # One evaluator summed the series of all four partitions.
    assert decision.evidence["series"] == len(DEFAULT_SERVICES) * len(DEFAULT_REGIONS)
    assert decision.evidence["forecast_usd"] > 1.0 and decision.evidence["crossing_date"]
    assert "over its 1.00 USD budget" in decision.reason

    # The budget fired this month survives a crash: more telemetry after a restart does not
    # announce it again.
    worker.stop(signal.SIGKILL)
    restarted = start_worker(env, name="second")
    later, _ = restarted.simulate(
        tmp_path, "--scenario", "healthy", "--duration", "300", "--seed", "1", name="later"
    )
    restarted.wait_handled("telemetry.metrics", later["sent"]["metrics"])
    wait_until(
        lambda: (cost_view(restarted)["evaluated_to"] or 0) >= later["event_end_ts"] - 10.0,
        60,
        "the restarted worker did not judge the budgets over the new telemetry",
    )
    assert len(budget_decisions()) == 1
    report = {b["scope"]: b for b in cost_view(restarted)["budgets"]}
    assert report["total"]["fired"] and report["total"]["forecast_usd"] > 1.0
    assert not report["service=checkout"]["fired"]
    assert report["service=checkout"]["series"] == len(DEFAULT_REGIONS)
