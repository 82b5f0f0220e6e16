"""A revocation waits a bounded time for messages that no stream will acknowledge."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from streams.runtime import app as runtime

# What faust passes as the logger at a revocation: its flight recorder, which logs nothing
# unless the revocation outlasts the session timeout.
FLIGHT_RECORDER = SimpleNamespace(info=lambda *args: None, warning=lambda *args: None)


def test_a_revocation_goes_on_without_a_message_left_in_a_cleared_buffer(
    monkeypatch, caplog
) -> None:
    # (topic, partition, offset) of a decision the actions agent acknowledged, whose
    # audit-trail copy was in the buffer Faust cleared: its own wait would last until the
    # group went on without us.
    unacked = {("decisions.scaling", 3, 30)}

    async def wait_empty() -> None:
        while unacked:
            await asyncio.sleep(0.01)

    consumer = SimpleNamespace(unacked=unacked, wait_empty=wait_empty)
    monkeypatch.setattr(runtime, "REBALANCE_WAIT_S", 0.2)
    assert not runtime.app.should_stop
    with caplog.at_level(logging.WARNING):
        asyncio.run(
            asyncio.wait_for(runtime.app._consumer_wait_empty(consumer, FLIGHT_RECORDER), 5)
        )
    assert unacked == set()
    assert "revoking partitions: 1 of the messages" in caplog.text


def test_a_revocation_waits_for_a_message_being_handled(monkeypatch) -> None:
    unacked = {("telemetry.metrics", 0, 7)}

    async def handled_soon() -> None:
        await asyncio.sleep(0.05)
        unacked.clear()

    async def wait_empty() -> None:
        while unacked:
            await asyncio.sleep(0.01)

    async def revoke() -> None:
        handler = asyncio.ensure_future(handled_soon())
        consumer = SimpleNamespace(unacked=unacked, wait_empty=wait_empty)
        await runtime.app._consumer_wait_empty(consumer, FLIGHT_RECORDER)
        await handler

    monkeypatch.setattr(runtime, "REBALANCE_WAIT_S", 60.0)
    asyncio.run(asyncio.wait_for(revoke(), 5))
    assert unacked == set()
