"""The private names of aiokafka the worker's consumer uses work on a real consumer: those
:mod:`streams.runtime.fetching` sets reach its fetcher, and
:func:`streams.runtime.commits.fetch_position` reads its position. These tests fail if an
upgrade of the pinned aiokafka renames them. And :class:`streams.runtime.log_probe.LogProbe`
tells a transaction's marker from a record on a real log."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.runtime.commits import fetch_position
from streams.runtime.fetching import batch_fetches
from streams.runtime.log_probe import LogProbe

pytestmark = pytest.mark.kafka


def test_a_started_consumer_fetches_as_batch_fetches_says(kafka_bootstrap: str) -> None:
    async def started_fetcher() -> tuple[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        batch_fetches(consumer, min_bytes=12_345, max_wait_ms=67)
        await consumer.start()
        try:
            # Connected: aiokafka's stop cancels a task that has not run yet otherwise.
            assert await consumer.topics() is not None
            fetcher = consumer._fetcher
            return fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(started_fetcher()) == (12_345, 67)


def test_fetch_position_is_the_offset_after_the_last_message_handed_out(
    kafka_bootstrap: str, topic_names
) -> None:
    topic = f"{topic_names.prefix}fetch-position"
    tp = TopicPartition(topic, 0)

    async def positions() -> list[int | None]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for n in range(7):
                await producer.send_and_wait(topic, b"%d" % n, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            seen = [fetch_position(consumer, tp)]  # not assigned
            consumer.assign([tp])
            consumer.seek(tp, 2)
            got = 0
            while got < 5:
                batches = await consumer.getmany(tp, timeout_ms=5000, max_records=5 - got)
                got += sum(len(records) for records in batches.values())
            seen.append(fetch_position(consumer, tp))
            consumer.seek(tp, 3)
            seen.append(fetch_position(consumer, tp))
            return seen
        finally:
            await consumer.stop()

    assert asyncio.run(positions()) == [None, 7, 3]


def test_the_log_probe_passes_over_transaction_markers_to_the_next_record(
    kafka_bootstrap: str, topic_names
) -> None:
    topic = f"{topic_names.prefix}log-probe"
    tp = TopicPartition(topic, 0)

    async def answers() -> list[int | None]:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic}-producer"
        )
        await producer.start()
        try:
            # Two records a transaction: records at 0, 1, 3, 4; commit markers at 2 and 5.
            for n in range(2):
                async with producer.transaction():
                    for m in range(2):
                        await producer.send_and_wait(topic, b"%d" % (2 * n + m), partition=0)
        finally:
            await producer.stop()
        probe = LogProbe(kafka_bootstrap, timeout_s=1.0)
        try:
            # (offset, before): the log ends at 6.
            questions = [(0, 6), (1, 6), (2, 6), (3, 6), (2, 3), (5, 6), (6, 7)]
            return [await probe.first_offset(tp, *question) for question in questions]
        finally:
            await probe.stop()

    # A record's offset; past the range (its end) when it holds markers only; None when
    # the log holds nothing there yet.
    assert asyncio.run(answers()) == [0, 1, 3, 3, 3, 6, None]
