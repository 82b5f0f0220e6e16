"""Writing one request to ``autopilot.control``, as the operators' commands do.

The topic is compacted and keyed ``<verb>/<subject>`` (:mod:`agents.runtime.control` reads
it on every worker). It is created compacted here if no worker has created it yet: the
broker's auto-creation would make it a plain topic that loses old requests to retention.
"""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.topics import TopicNames
from streams.runtime.settings import Settings

__all__ = ["send_control"]


async def _ensure_control_topic(settings: Settings, topic: str) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.aiokafka_security_kwargs()
    )
    await admin.start()
    try:
        new = NewTopic(topic, settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([new])
    finally:
        await admin.close()


async def send_control(settings: Settings, key: bytes, value: bytes) -> None:
    """Write ``value`` under ``key`` to the deployment's control topic, acknowledged by all
    in-sync replicas."""
    topic = TopicNames(settings.topic_prefix).control
    await _ensure_control_topic(settings, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all",
        **settings.aiokafka_security_kwargs(),
    )  # fmt: skip
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
