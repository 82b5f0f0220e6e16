"""The private names :mod:`streams.runtime.fetching` sets reach the fetcher of a real
aiokafka consumer: this test fails if an upgrade of the pinned aiokafka renames them."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer

from streams.runtime.fetching import batch_fetches

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
