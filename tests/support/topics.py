"""The topics a broker holds, as its admin API lists them."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient


async def _list(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


def topics_on(bootstrap: str) -> list[str]:
    """Every topic of the broker at ``bootstrap``."""
    return asyncio.run(_list(bootstrap))
