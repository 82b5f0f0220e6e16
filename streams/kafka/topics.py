"""Create the product's topics on a broker before any worker runs (``autopilot kafka start``).

The worker creates them too, at start-up (:func:`streams.runtime.app.declare_topics`); a
broker made by ``kafka start`` or ``up`` has them at once, so a consumer started first
(``autopilot tail``, a dashboard) finds every topic it subscribes to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = ["create_topics"]

TopicSpec = tuple[str, int, Mapping[str, str]]
"""``(name, partitions, config)``."""


async def create_topics(
    bootstrap: str, specs: Iterable[TopicSpec], *, security: Mapping[str, Any] | None = None
) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created.

    Replication factor 1: this is for a local development broker, which has one node.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, 1, topic_configs=dict(config))
            for name, partitions, config in specs
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()
