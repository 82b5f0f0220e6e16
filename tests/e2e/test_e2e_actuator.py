"""The actuator in a worker on the real broker, against a moto server: a load surge scales
the Auto Scaling group, and a decision is applied once, even across a restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import boto3
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import Decision, decision_id_for
from schemas.topics import TopicNames
from tests.conftest import AUTOPILOT, wait_until
from tests.support.aws import MotoServer, asg_desired, make_asg

SURGE = {"service": "search", "region": "us-east"}
GROUP = "search-use1"


@pytest.fixture
def surge_group(aws: MotoServer) -> MotoServer:
    """The moto account with the Auto Scaling group the surge's decisions go to."""
    # Empty: no scaling decision asks for fewer than one replica, so any change shows.
    make_asg(GROUP, 0)
    return aws


def actuator_env(aws: MotoServer, tmp_path: Path) -> dict[str, str]:
    """A worker environment with the actuator applying a mapping of search/us-east to the ASG."""
    mapping = tmp_path / "actuation.toml"
    mapping.write_text(
        f"""
aws_regions = {{ us-east = "us-east-1" }}

[services.search]
target = "asg"
resources = {{ us-east = "{GROUP}" }}

[allow]
actions = ["scaling:scale_out", "scaling:scale_in"]
resources = ["autoscaling:us-east-1:{GROUP}"]

[rate_limit]
max_actions = 1000
window_s = 60
"""
    )
    return {
        **aws.env(),
        "AUTOPILOT_ACTUATOR": "on",
        "AUTOPILOT_ACTUATOR_DRY_RUN": "false",
        "AUTOPILOT_ACTUATOR_CONFIG": str(mapping),
    }


async def _read(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[tuple[bytes | None, bytes]] = []
        while batch := await consumer.getmany(timeout_ms=2000):
            found += [(m.key, m.value) for ms in batch.values() for m in ms]
        return found
    finally:
        await consumer.stop()


def audits(bootstrap: str, names: TopicNames) -> list[dict]:
    """Every audit record so far, each checked to be keyed by its decision id."""
    records = []
    for key, value in asyncio.run(_read(bootstrap, names.audit)):
        record = orjson.loads(value)
        assert key == (record["decision_id"] or "").encode() or record["decision_id"] is None
        records.append(record)
    return records


async def _send(bootstrap: str, topic: str, key: bytes, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def scaling_decision(desired: int, mode: str = "auto") -> Decision:
    params = {"desired_replicas": desired, "current_replicas": 2}
    ts = time.time()
    return Decision(
        decision_id=decision_id_for("scaling", SURGE, "scale_out", params, [ts, mode]),
        kind="scaling",
        ts=ts,
        subject=SURGE,
        action="scale_out",
        params=params,
        mode=mode,
        confidence=0.9,
        reason="Demand is forecast to outrun capacity.",
        evidence={},
        model_version="test",
    )


@pytest.mark.kafka
def test_a_load_surge_scales_the_auto_scaling_group(
    start_worker,
    kafka_bootstrap: str,
    topic_names: TopicNames,
    tmp_path: Path,
    surge_group: MotoServer,
) -> None:
    worker = start_worker(actuator_env(surge_group, tmp_path))
    summary = worker.simulate(tmp_path, "--scenario", "load_surge")[0]
    wait_until(
        lambda: (
            worker.metric("autopilot_events_consumed_total", topic="telemetry.metrics")
            >= summary["sent"]["metrics"]
        ),
        60,
        "the worker did not consume the simulation",
    )
    published = [
        Decision.from_bytes(value)
        for _, value in asyncio.run(_read(kafka_bootstrap, topic_names.scaling))
    ]
    surge = [d for d in published if d.subject == SURGE]
    assert any(d.action == "scale_out" for d in surge), "the surge gave no scale-out"
    wanted = {d.decision_id for d in surge}
    found: dict[str, dict] = {}

    def all_audited() -> bool:
        found.update(
            (r["decision_id"], r)
            for r in audits(kafka_bootstrap, topic_names)
            if r["decision_id"] in wanted
        )
        return set(found) == wanted

    wait_until(
        all_audited, 30, f"not every surge decision was audited; log: {worker.log()[-2000:]}"
    )
    assert {r["outcome"] for r in found.values()} == {"applied"}, list(found.values())
    assert all(r["aws_request_id"] and r["resource"] == f"autoscaling:us-east-1:{GROUP}"
               for r in found.values())  # fmt: skip
    # Decisions of one subject share a partition, so the last one read is the last applied.
    assert asg_desired(GROUP) == surge[-1].params["desired_replicas"]


@pytest.mark.kafka
def test_a_decision_is_applied_once_even_across_a_restart(
    start_worker,
    kafka_bootstrap: str,
    topic_names: TopicNames,
    tmp_path: Path,
    surge_group: MotoServer,
) -> None:
    env = actuator_env(surge_group, tmp_path)
    decision = scaling_decision(6)
    recommended = scaling_decision(9, mode="recommend")
    key = b"search/us-east"

    def records(decision_id: str | None) -> list[dict]:
        return [r for r in audits(kafka_bootstrap, topic_names) if r["decision_id"] == decision_id]

    def outcomes(decision_id: str | None) -> list[str]:
        return [r["outcome"] for r in records(decision_id)]

    first = start_worker(env, name="first")
    values = [decision.to_bytes(), decision.to_bytes(), recommended.to_bytes(), b"{not json"]
    asyncio.run(_send(kafka_bootstrap, topic_names.scaling, key, values))
    wait_until(
        lambda: len(outcomes(decision.decision_id)) == 2 and outcomes(None),
        30,
        f"decisions were not audited; log: {first.log()[-2000:]}",
    )
    assert outcomes(decision.decision_id) == ["applied", "duplicate"]
    assert outcomes(recommended.decision_id) == ["pending"]
    assert outcomes(None) == ["refused"]
    assert asg_desired(GROUP) == 6
    first.stop()

    # Moved by hand while the worker was down: applying the decision again would undo it.
    boto3.client("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=3)
    second = start_worker(env, name="second")
    sent_at = time.time()
    asyncio.run(_send(kafka_bootstrap, topic_names.scaling, key, [decision.to_bytes()]))
    wait_until(
        lambda: any(r["ts"] >= sent_at for r in records(decision.decision_id)),
        30,
        f"the replay was not audited; log: {second.log()[-2000:]}",
    )
    after = records(decision.decision_id)
    assert [r["outcome"] for r in after].count("applied") == 1
    assert {r["outcome"] for r in after if r["ts"] >= sent_at} == {"duplicate"}
    assert asg_desired(GROUP) == 3


def test_autopilot_actuate_runs_a_worker_with_the_actuator_on(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    env = {
        **os.environ,
        "AUTOPILOT_ACTUATOR_CONFIG": str(missing),
        "AUTOPILOT_BROKER": "kafka://127.0.0.1:1",
    }
    env.pop("AUTOPILOT_ACTUATOR", None)
    proc = subprocess.run(
        [str(AUTOPILOT), "actuate", "--no-dry-run"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # The mapping file is read only when the actuator is on: the worker it became had it on.
    assert proc.returncode != 0
    message = f"AUTOPILOT_ACTUATOR_CONFIG: {missing}: no such actuation mapping file"
    assert message in proc.stderr, proc.stderr[-2000:]
