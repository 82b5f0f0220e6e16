"""The errors brain on the real broker: one remediation decision per injected burst, with
the redacted template and the root-cause hint; its simulated outcome teaches the next
decision, even across a kill -9; an outcome for an unknown decision is dead-lettered."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import DeadLetter, Decision
from tests.conftest import AUTOPILOT, wait_until

pytestmark = pytest.mark.kafka

CHECKPOINT_EVERY_SECOND = {"AUTOPILOT_CHECKPOINT_INTERVAL_S": "1"}
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+(\.[\w-]+)+")
IP = re.compile(rb"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
# Short, because a simulation ends at the current time: the second run's event time
# starts before the first run's ended, and the overlap should stay small.
SECOND_BURST = {
    "name": "error_burst_again",
    "description": "checkout in eu-west rolls out v2.1.0 and exhausts its database pool again.",
    "duration_s": 150,
    "tick_s": 5,
    "incidents": [
        {"type": "error_burst", "service": "checkout", "region": "eu-west",
         "fault_type": "db_connection_pool_exhausted", "start_s": 100, "duration_s": 40,
         "rate_per_s": 30, "deploy_version": "v2.1.0"}
    ],
}  # fmt: skip


async def _read(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        values: list[bytes] = []
        while batch := await consumer.getmany(timeout_ms=2000):
            values += [m.value for ms in batch.values() for m in ms]
        return values
    finally:
        await consumer.stop()


def read(bootstrap: str, topic: str) -> list[bytes]:
    return asyncio.run(_read(bootstrap, topic))


def rolled_back_version(decision: Decision) -> str | None:
    """The version the decision's rollback cause names, if it has one.

    Not necessarily the first cause: a metric anomaly of the same place reaches the errors
    brain through another topic, and may outrank the deploy when it arrives first.
    """
    causes = decision.evidence["causes"]
    rollbacks = [c["evidence"]["version"] for c in causes if c["kind"] == "rollback_candidate"]
    return rollbacks[0] if rollbacks else None


def remediations(bootstrap: str, topic: str) -> list[tuple[Decision, bytes]]:
    decisions = [(Decision.from_bytes(v), v) for v in read(bootstrap, topic)]
    return [(d, v) for d, v in decisions if d.kind == "remediation"]


async def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def test_a_burst_gets_one_decision_and_its_outcome_teaches_the_next_after_a_crash(
    start_worker, kafka_bootstrap, topic_names, tmp_path
) -> None:
    worker = start_worker(CHECKPOINT_EVERY_SECOND)
    summary, truth = worker.simulate(tmp_path, "--scenario", "error_burst", name="first")
    worker.wait_handled("telemetry.errors", summary["sent"]["errors"])
    burst = truth["incidents"][0]

    found = remediations(kafka_bootstrap, topic_names.remediation)
    assert len(found) == 1, [d.reason for d, _ in found]
    first, raw = found[0]
    assert first.subject == {"service": burst["service"], "region": burst["region"]}
    assert burst["onset_ts"] <= first.ts < burst["end_ts"]
    assert "<" in first.evidence["template"], "the template should show its masked parts"
    assert not EMAIL.search(raw) and not IP.search(raw), "personal data in a decision"
    assert rolled_back_version(first) == "v2.0.0"
    assert first.evidence["estimates"][first.action]["n_obs"] == 0

    outcomes = subprocess.run(
        [str(AUTOPILOT), "outcomes", "--ground-truth", str(tmp_path / "first-truth.json"),
         "--limit", "1", "--timeout", "60"],
        env=worker.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert outcomes.returncode == 0, outcomes.stderr[-2000:]
    assert "answered 1 remediation decisions" in outcomes.stdout
    (feedback,) = [orjson.loads(v) for v in read(kafka_bootstrap, topic_names.remediation_feedback)]
    assert feedback["decision_id"] == first.decision_id

    def handled() -> tuple[float, float]:
        # The outcome's last stop: the errors brain that made the decision.
        label = "internal.remediation-outcomes"
        return (
            worker.metric("autopilot_events_processed_total", topic=label),
            worker.metric("autopilot_dlq_total"),
        )

    wait_until(lambda: sum(handled()) >= 1, 60, "the worker did not handle the outcome")
    assert handled() == (1, 0), "the outcome was dead-lettered, not learned"
    assert worker.metric("autopilot_remediation_outcomes_total") == 1
    # What was learned must survive a crash: a few checkpoint intervals, then kill -9.
    time.sleep(3)
    worker.stop(signal.SIGKILL)
    worker = start_worker(CHECKPOINT_EVERY_SECOND, name="restarted")

    second_scenario = tmp_path / "error_burst_again.json"
    second_scenario.write_bytes(orjson.dumps(SECOND_BURST))
    summary2, truth2 = worker.simulate(tmp_path, "--scenario", str(second_scenario), name="second")
    worker.wait_handled("telemetry.errors", summary2["sent"]["errors"])
    burst2 = truth2["incidents"][0]
    later = [d for d, _ in remediations(kafka_bootstrap, topic_names.remediation) if d != first]
    assert len(later) == 1, [(d.ts - burst2["onset_ts"], d.reason) for d in later]
    second = later[0]
    assert burst2["onset_ts"] <= second.ts < burst2["end_ts"]
    assert rolled_back_version(second) == "v2.1.0"
    learned = second.evidence["estimates"][first.action]
    assert learned["n_obs"] == 1
    expected = (1 + feedback["success"]) / 3  # Beta(1, 1) prior and one outcome
    assert learned["p_success"] == pytest.approx(expected, abs=1e-4)
    assert worker.proc.poll() is None and "Traceback" not in worker.log()


def test_an_outcome_for_an_unknown_decision_is_dead_lettered(
    start_worker, kafka_bootstrap, topic_names
) -> None:
    worker = start_worker()
    outcome = orjson.dumps({"decision_id": "f" * 32, "ts": time.time(), "success": True})
    asyncio.run(_produce(kafka_bootstrap, topic_names.remediation_feedback, b"f" * 32, outcome))
    # Accepted at the edge and routed; the router knows no such decision.
    router = "internal.remediation-routing"
    wait_until(
        lambda: worker.metric("autopilot_dlq_total", topic=router, reason="unknown_decision") == 1,
        30,
        "the unknown outcome was not dead-lettered",
    )
    letters = [DeadLetter.from_bytes(v) for v in read(kafka_bootstrap, topic_names.dlq)]
    assert [(d.reason, d.field, d.payload()) for d in letters] == [
        ("unknown_decision", "decision_id", outcome)
    ]
    assert letters[0].source_topic == topic_names.remediation_routing
    assert worker.metric("autopilot_events_processed_total", topic="feedback.remediation") == 1
    assert worker.metric("autopilot_events_processed_total", topic=router) == 0
    assert worker.metric("autopilot_dlq_total") == 1
