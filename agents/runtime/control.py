"""Reading the control topic on every worker: each worker must see every request.

``autopilot.control`` is compacted and keyed ``<verb>/<subject>`` (``erase/<pseudonym>``,
``plugin/<group>/<scope>``). A Faust agent would share its partitions among the workers;
a consumer of one's own with no group gets every partition, read from the start (nothing is
committed), so a worker started later still learns every request the topic keeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer

from streams.runtime.settings import Settings

__all__ = ["follow_control"]

log = logging.getLogger(__name__)


async def follow_control(
    settings: Settings,
    topic: str,
    verb: str,
    handle: Callable[[bytes, bytes | None], Awaitable[None]],
) -> None:
    """Call ``handle(key, value)`` for every record of ``topic`` keyed ``<verb>/...``, old
    and new, until cancelled. A handler that raises is logged and the reader goes on."""
    consumer = AIOKafkaConsumer(
        topic,
        group_id=None,
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=5000,
        **settings.aiokafka_security_kwargs(),
    )
    prefix = f"{verb}/".encode()
    await consumer.start()
    try:
        async for message in consumer:
            key = message.key or b""
            if not key.startswith(prefix):
                continue  # another verb's record: its own reader applies it
            try:
                await handle(key, message.value)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("control: a %s record at offset %d failed", verb, message.offset)
    finally:
        await consumer.stop()
