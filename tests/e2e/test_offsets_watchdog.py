"""The commit watchdog on faust's real consumer: the private bookkeeping it reads is pinned
(faust-streaming in pyproject.toml), and this test fails if an upgrade changes it.

A worker of the product's app seeks its partition past five unread offsets once the first
ten are committed, which is the state faust's dropped-messages race (#596) leaves behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import TopicNames
from streams.kafka.local import free_port
from tests.conftest import wait_until
from tests.support.paths import ROOT

pytestmark = pytest.mark.kafka

FIRST, SKIP, TOTAL = 10, 5, 30


def start(env: dict[str, str], log_path) -> subprocess.Popen:
    port = free_port()
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.offsets_worker", "worker", "-l", "info",
             "--web-port", str(port)],
            env={**env, "AUTOPILOT_WEB_PORT": str(port)}, cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


async def produce(bootstrap: str, topic: str, first: int, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(first, first + count):
            await producer.send_and_wait(topic, b"{}", key=b"k", partition=0)
            del i
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


@pytest.mark.parametrize("watchdog", ["on", "off"])
def test_messages_dropped_by_the_real_consumer_are_read_again_and_committed(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path, watchdog: str
) -> None:
    env = {
        **os.environ,
        "AUTOPILOT_BROKER": f"kafka://{kafka_bootstrap}",
        "AUTOPILOT_TOPIC_PREFIX": topic_names.prefix,
        "AUTOPILOT_PARTITIONS": "1",
        "AUTOPILOT_DATA_DIR": str(tmp_path / "data"),
        "AUTOPILOT_TEST_FIRST": str(FIRST),
        "AUTOPILOT_TEST_SKIP": str(SKIP),
        "AUTOPILOT_TEST_WATCHDOG": watchdog,
    }
    (tmp_path / "data").mkdir()
    log_path = tmp_path / "worker.log"
    proc = start(env, log_path)
    group = f"{topic_names.prefix}paas-autopilot"
    topic = topic_names.metrics

    def log() -> str:
        return log_path.read_text(errors="replace")

    def processed(count: int) -> bool:
        return re.search(rf"processed {count}\b", log()) is not None

    try:
        wait_until(lambda: "Worker ready" in log(), 90, "worker not ready")
        asyncio.run(produce(kafka_bootstrap, topic, 0, FIRST))
        wait_until(lambda: "skipped offsets" in log(), 60, "the worker did not skip")
        asyncio.run(produce(kafka_bootstrap, topic, FIRST, TOTAL - FIRST))
        wait_until(lambda: processed(TOTAL - SKIP), 60, "the worker did not read on")
        if watchdog == "on":
            wait_until(
                lambda: asyncio.run(committed(kafka_bootstrap, group, topic)) == TOTAL,
                60,
                f"the commit never reached {TOTAL}",
            )
            assert f"offsets {FIRST} to {FIRST + SKIP - 1} of {topic}[0] were dropped" in log()
            assert processed(TOTAL)
        else:
            # Two watchdog checks and more: without it the commit waits for good.
            time.sleep(12)
            assert asyncio.run(committed(kafka_bootstrap, group, topic)) == FIRST
    finally:
        print(log()[-3000:])  # shown by pytest when the test fails
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
