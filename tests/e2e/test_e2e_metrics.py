"""The metrics agent on the real broker: scaling ahead of a surge, quiet on a clean run,
learning that survives a kill -9, and decisions trailing their telemetry made visible."""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.conftest import wait_until
from tests.support.worker_views import FAST_CHECKPOINTS, brain_view, decisions

pytestmark = pytest.mark.kafka


def test_surge_gets_scale_up_before_its_peak(
    start_worker, kafka_bootstrap, topic_names, tmp_path
) -> None:
    worker = start_worker(FAST_CHECKPOINTS)
    summary, truth = worker.simulate(tmp_path, "--scenario", "load_surge")
    worker.wait_handled("telemetry.metrics", summary["sent"]["metrics"])
    surge = next(i for i in truth["incidents"] if i["type"] == "load_surge")
    scaling = [
        d
        for d in decisions(kafka_bootstrap, topic_names.scaling)
        if d.subject == {"service": surge["service"], "region": surge["region"]}
    ]
    early = [
        d
        for d in scaling
        if d.action == "scale_out" and surge["onset_ts"] <= d.ts < surge["peak_ts"]
    ]
    assert early, f"no scale-out between onset and peak; got {[(d.ts, d.action) for d in scaling]}"
    first = early[0]
    assert first.params["desired_replicas"] > first.params["current_replicas"]
    assert first.evidence["forecast"]["upper"] >= first.evidence["forecast"]["lower"]
    assert first.reason and first.mode == "auto"


def test_clean_run_gives_no_anomaly_after_warm_up(
    start_worker, kafka_bootstrap, topic_names, tmp_path
) -> None:
    # The hour from 10:00 UTC, the latest that is over: no region is near its midnight,
    # when weekday and weekend demand blend, and the run is the same whenever CI runs.
    start = time.time() // 86_400 * 86_400 + 10 * 3600
    if start + 3600 > time.time():
        start -= 86_400
    worker = start_worker({"AUTOPILOT_MAX_PAST_S": str(2 * 86_400)})
    summary, truth = worker.simulate(
        tmp_path, "--scenario", "healthy", "--duration", "3600", "--start", str(start)
    )
    assert truth["incidents"] == [] and summary["event_start_ts"] == start
    worker.wait_handled("telemetry.metrics", summary["sent"]["metrics"])
    warm_up_s = 144 * 5.0
    late = [
        d
        for d in decisions(kafka_bootstrap, topic_names.remediation)
        if d.kind == "anomaly" and d.ts > summary["event_start_ts"] + warm_up_s
    ]
    assert late == [], [d.reason for d in late]


def test_kill_9_then_restart_resumes_learning(start_worker, tmp_path) -> None:
    worker = start_worker(FAST_CHECKPOINTS, name="first")
    summary, _ = worker.simulate(tmp_path, "--scenario", "healthy", "--duration", "1800")
    worker.wait_handled("telemetry.metrics", summary["sent"]["metrics"])
    before = brain_view(worker, "checkout", "us-east")
    assert before["known"] and before["samples"] > 100
    # Three checkpoint intervals, so the last learned state is in the changelog.
    time.sleep(3)
    worker.stop(signal.SIGKILL)

    restarted = start_worker(FAST_CHECKPOINTS, name="second")
    after = brain_view(restarted, "checkout", "us-east")
    assert after["known"], "the restarted worker has no state for the series: a cold start"
    assert after["samples"] >= before["samples"] * 0.9
    mean_before = before["forecast_300s"]["mean"]
    assert after["forecast_300s"]["mean"] == pytest.approx(mean_before, rel=0.05)


def test_decisions_trailing_their_telemetry_show_in_the_lag_gauge_and_the_log(
    start_worker, kafka_bootstrap, topic_names
) -> None:
    worker = start_worker()
    # Samples produced 30 s ago (their Kafka timestamp) reach the worker only now, as after
    # an outage of the pipeline in front of it.
    produced_ms = int((time.time() - 30.0) * 1000)

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(20):
                sample = {
                    "ts": time.time(), "service": f"svc-{i}", "region": "us-east",
                    "metrics": {"cpu": 0.4, "rps": 100.0},
                }  # fmt: skip
                await producer.send_and_wait(
                    topic_names.metrics,
                    orjson.dumps(sample),
                    key=f"svc-{i}/us-east".encode(),
                    timestamp_ms=produced_ms,
                )
        finally:
            await producer.stop()

    asyncio.run(send())
    wait_until(
        lambda: worker.metric("autopilot_decision_lag_seconds", topic="telemetry.metrics") >= 25,
        60,
        "the lag gauge never showed the samples' 30 s",
    )
    wait_until(
        lambda: "decisions on telemetry.metrics trail their telemetry by" in worker.log(),
        10,
        "the worker did not say that it is behind",
    )
    # Nothing more comes: the lag falls back to 0, and the worker says so.
    wait_until(
        lambda: worker.metric("autopilot_decision_lag_seconds", topic="telemetry.metrics") == 0,
        10,
        "the lag gauge did not fall back to 0",
    )
    assert "decisions on telemetry.metrics caught up" in worker.log()
    assert worker.metric("autopilot_events_processed_total", topic="telemetry.metrics") == 20
