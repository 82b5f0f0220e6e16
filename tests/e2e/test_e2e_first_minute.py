"""The first minute of ``make run``: every kind of decision on screen, no alarming noise.

``autopilot up`` runs as ``make run`` runs it (on the session broker, so that it starts no
broker of its own); ``autopilot tail`` is started right after "up", as a newcomer would,
and before any worker, as an operator might.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas import Decision, decision_id_for
from schemas.decision import KIND_TOPICS
from schemas.topics import FAILOVER, REMEDIATION, SCALING, TopicNames
from streams.kafka.local import free_port
from streams.kafka.topics import create_topics
from tests.conftest import AUTOPILOT, wait_until
from tests.support.topics import topics_on

pytestmark = pytest.mark.kafka

FIRST = re.compile(r"^\+(\d+)s first (\w+) decision: ", re.MULTILINE)


def firsts(log: Path) -> dict[str, int]:
    """Each decision kind ``up`` announced, with the seconds after "up" it said."""
    return {kind: int(s) for s, kind in FIRST.findall(log.read_text(errors="replace"))}


def topics_of(kinds: dict[str, int]) -> set[str]:
    return {KIND_TOPICS[kind] for kind in kinds}


def broker_env(bootstrap: str, names: TopicNames) -> dict[str, str]:
    """The environment of a command on the session broker, under the test's topic prefix."""
    return {
        **os.environ,
        "AUTOPILOT_BROKER": f"kafka://{bootstrap}",
        "AUTOPILOT_TOPIC_PREFIX": names.prefix,
        "AUTOPILOT_PARTITIONS": "4",
    }


def failover_decision() -> Decision:
    subject, params = {"region": "eu-west"}, {"from": "eu-west", "to": "us-east"}
    return Decision(
        decision_id=decision_id_for("failover", subject, "shift_traffic", params, [1.0]),
        kind="failover",
        ts=time.time(),
        subject=subject,
        action="shift_traffic",
        params=params,
        mode="recommend",
        confidence=0.9,
        reason="Test failover printed by tail.",
        evidence={},
        model_version="test",
    )


async def produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"eu-west")
    finally:
        await producer.stop()


def test_up_shows_scaling_remediation_and_failover_and_tail_stays_quiet(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    env = {
        **broker_env(kafka_bootstrap, topic_names),
        "AUTOPILOT_WEB_PORT": str(free_port()),
        "AUTOPILOT_DATA_DIR": str(tmp_path / "data"),
    }
    up_log, tail_log = tmp_path / "up.log", tmp_path / "tail.log"
    with up_log.open("wb") as out:
        up = subprocess.Popen(
            [str(AUTOPILOT), "up", "--run-dir", str(tmp_path / "run")],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    tail = None
    try:
        wait_until(lambda: "\nup in " in up_log.read_text(), 180, "autopilot up never came up")
        with tail_log.open("wb") as out:
            tail = subprocess.Popen(
                [str(AUTOPILOT), "tail"],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        # Every decision topic: a scaling decision, an anomaly or remediation decision, and a
        # failover recommendation. They come within about a minute of "up" on a quiet
        # machine (up's log says when: "+Ns first ..."); beside other tests on two cores the
        # worker trails the 120x replay, so the wait is generous: not a speed claim.
        wanted = {SCALING, REMEDIATION, FAILOVER}
        wait_until(
            lambda: topics_of(firsts(up_log)) >= wanted,
            240,
            lambda: f"not every kind of decision after up: {firsts(up_log)}",
        )
        announced = firsts(up_log)
        assert {"scaling", "failover"} <= set(announced), announced
        assert {"remediation", "anomaly"} & set(announced), announced
        # What tail printed: the decisions, and no ERROR (no missing topic, no leader).
        shown = re.compile(r"^\d\d:\d\d:\d\d failover ", re.MULTILINE)
        wait_until(lambda: shown.search(tail_log.read_text()), 30, "tail showed no failover")
        tail.send_signal(signal.SIGINT)
        tail.wait(30)
        printed = tail_log.read_text(errors="replace")
        assert "ERROR" not in printed and "Traceback" not in printed, printed[-3000:]
        assert re.search(r"^\d\d:\d\d:\d\d scaling ", printed, re.MULTILINE), printed[-3000:]
    finally:
        for proc in (tail, up):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    # Ctrl-C stops everything up started, and says so; the run was clean.
    said = up_log.read_text(errors="replace")
    assert up.returncode == 0, said[-3000:]
    assert "stopped worker" in said and "stopped simulator" in said
    assert "Traceback" not in said and "Warning" not in said, said[-3000:]


def test_tail_before_any_worker_waits_in_one_line_then_follows(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    env = broker_env(kafka_bootstrap, topic_names)
    log = tmp_path / "tail.log"
    with log.open("wb") as out:
        tail = subprocess.Popen(
            [str(AUTOPILOT), "tail", "failover"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: "waiting for" in log.read_text(), 60, "tail did not say it waits")
        time.sleep(3)  # a few more polls: still one line, and the topic not auto-created
        assert log.read_text().count("waiting for") == 1
        assert topic_names.failover not in topics_on(kafka_bootstrap)
        # The topics appear (as kafka start, up or a worker make them); tail follows.
        asyncio.run(create_topics(kafka_bootstrap, [(topic_names.failover, 4, {})]))
        wait_until(lambda: "following" in log.read_text(), 60, "tail did not follow")
        decision = failover_decision()

        def printed_it() -> bool:
            # Sent again until seen: tail reads from the end, wherever that was when it
            # got its partitions.
            asyncio.run(produce(kafka_bootstrap, topic_names.failover, decision.to_bytes()))
            return decision.reason in log.read_text()

        wait_until(printed_it, 60, "tail did not print the decision", interval=2)
    finally:
        tail.send_signal(signal.SIGINT)
        tail.wait(30)
    printed = log.read_text(errors="replace")
    assert "ERROR" not in printed and "Traceback" not in printed, printed[-3000:]
