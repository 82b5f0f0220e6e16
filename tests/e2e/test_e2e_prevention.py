"""Risk decisions on the real broker: a simulated memory leak is warned about once, before it
breaches, and a healthy run of the same length gets no warning."""

from __future__ import annotations

import pytest

from tests.support.worker_views import decisions

pytestmark = pytest.mark.kafka


def test_simulated_leak_gets_one_risk_decision_before_the_breach(
    start_worker, kafka_bootstrap, topic_names, tmp_path
) -> None:
    worker = start_worker()
    # No tenants, so no interactions: eight hours of them would only slow the run down.
    summary, truth = worker.simulate(tmp_path, "--scenario", "memory_leak", "--tenants", "0")
    worker.wait_handled("telemetry.metrics", summary["sent"]["metrics"], timeout=600)
    (leak,) = truth["incidents"]
    assert leak["type"] == "saturation" and leak["metric"] == "mem_util"
    risks = [d for d in decisions(kafka_bootstrap, topic_names.remediation) if d.kind == "risk"]
    assert len(risks) == 1, [d.reason for d in risks]
    (risk,) = risks
    assert risk.subject == {"service": leak["service"], "region": leak["region"]}
    assert risk.action == "restart_before_oom" and risk.mode == "recommend"
    assert risk.params == {"metric": "mem_util", "limit": 0.95}
    # Warned after the leak began and at least ten minutes before the breach.
    assert leak["onset_ts"] < risk.ts <= leak["breach_ts"] - 600
    evidence = risk.evidence
    assert evidence["probability"] > evidence["threshold"] == 0.7
    assert evidence["trend_per_s"] > 0 and evidence["limit"] == 0.95
    assert evidence["horizon_s"] >= evidence["time_to_breach_s"] > 0
    assert risk.confidence == pytest.approx(evidence["probability"], abs=1e-4)
    assert "mem_util of" in risk.reason and "restart before oom" in risk.reason


def test_healthy_run_of_the_same_length_gets_no_risk_decision(
    start_worker, kafka_bootstrap, topic_names, tmp_path
) -> None:
    worker = start_worker()
    summary, truth = worker.simulate(
        tmp_path, "--scenario", "healthy", "--duration", "28800", "--tick", "60", "--tenants", "0"
    )
    assert truth["incidents"] == []
    worker.wait_handled("telemetry.metrics", summary["sent"]["metrics"], timeout=600)
    remediation = decisions(kafka_bootstrap, topic_names.remediation)
    assert [d.reason for d in remediation if d.kind == "risk"] == []
