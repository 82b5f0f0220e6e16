"""The saturation scenarios' ground truth and `autopilot bench prevention`, tiny."""

from __future__ import annotations

import os
import subprocess

import orjson
import pytest

from streams.lab.bench.prevention import HEALTHY, INCIDENTS, trace
from tests.conftest import AUTOPILOT


@pytest.mark.parametrize("scenario", sorted(INCIDENTS))
def test_incidents_breach_after_their_onset_and_healthy_runs_never(scenario: str) -> None:
    metric = INCIDENTS[scenario][0]
    for seed in range(5):
        run = trace(scenario, seed, days=2.0)
        assert run.metric == metric
        assert run.onset_ts is not None
        if run.breach_ts is not None:
            assert run.onset_ts < run.breach_ts
            assert all(x < 1.0 or metric == "error_budget_used" or t >= run.breach_ts
                       for t, x in run.samples)  # fmt: skip


@pytest.mark.parametrize("scenario", sorted(HEALTHY))
def test_healthy_runs_come_close_to_their_limit_without_crossing(scenario: str) -> None:
    for seed in range(5):
        run = trace(scenario, seed, days=2.0)
        assert run.onset_ts is None and run.breach_ts is None
        assert max(x for _, x in run.samples) > 0.7


def test_bench_prevention_reports_recall_lead_and_false_warnings() -> None:
    result = subprocess.run(
        [str(AUTOPILOT), "bench", "prevention", "--runs", "2", "--days", "2", "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    *summary, last = result.stdout.strip().splitlines()
    figures = orjson.loads(last)
    assert set(figures["scenarios"]) == set(INCIDENTS) | set(HEALTHY)
    assert 0 < figures["breaches"] <= 2 * len(INCIDENTS)
    assert figures["recall_10min"] == pytest.approx(figures["warned_10min"] / figures["breaches"])
    assert figures["series_days"] > 2 * 2 * len(HEALTHY)
    per_100 = 100 * figures["false_warnings"] / figures["series_days"]
    assert figures["false_per_100_series_days"] == pytest.approx(per_100)
    # The leaks are caught well ahead: warned, with at least ten minutes to spare.
    assert figures["scenarios"]["memory_leak"]["warned_10min"] == 2
    assert figures["scenarios"]["memory_leak"]["min_lead_min"] >= 10
    assert any("recall of breaches" in line for line in summary)
