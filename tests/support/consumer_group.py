"""The workers' consumer group as the broker sees it: committed offsets, ends, backlog."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import TopicNames
from tests.conftest import wait_until

PARTITIONS = 4


def group_of(names: TopicNames) -> str:
    """The workers' consumer group: the default ``AUTOPILOT_APP_ID``."""
    return f"{names.prefix}paas-autopilot"


async def _ends(bootstrap: str, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    tps = [TopicPartition(topic, p) for topic in topics for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def end_offsets(bootstrap: str, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    """End offset of every partition of ``topics``: no consumer group involved."""
    return asyncio.run(_ends(bootstrap, topics))


async def _offsets(
    bootstrap: str, group: str, topics: tuple[str, ...]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    ends = await _ends(bootstrap, topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in committed.items() if meta is not None}, ends


def offsets(
    bootstrap: str, group: str, topics: tuple[str, ...]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """(committed offset, end offset) of every partition of ``topics`` for ``group``."""
    return asyncio.run(_offsets(bootstrap, group, topics))


def backlog(bootstrap: str, group: str, topics: tuple[str, ...]) -> int:
    """Messages of ``topics`` the group has not committed yet: what Kafka tools call lag."""
    committed, ends = offsets(bootstrap, group, topics)
    return sum(end - max(0, committed.get(tp, 0)) for tp, end in ends.items())


def wait_all_committed(bootstrap: str, names: TopicNames, timeout: float = 120) -> None:
    """Wait until the group has committed every telemetry message (nothing unread)."""
    group, topics = group_of(names), names.telemetry()
    wait_until(
        lambda: backlog(bootstrap, group, topics) == 0,
        timeout,
        f"the group did not commit every telemetry message: {offsets(bootstrap, group, topics)}",
    )
