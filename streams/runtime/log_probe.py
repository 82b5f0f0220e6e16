"""Where a partition's log holds records: the first offset at or after a given one.

A message that reaches a stream past the one expected means one of two things: faust
dropped the messages between on their way (they must be read again), or the log holds no
record there (a transaction's commit or abort marker takes an offset; compaction and
retention delete records). Faust's messages do not say which, so the edge
(:func:`agents.compat.offsets.in_order`) asks the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP

__all__ = ["LogProbe"]

log = logging.getLogger(__name__)

POLL_MS = 100
"""How long one fetch waits for a record before the probe looks at its position again."""


class LogProbe:
    """Reads one record at a chosen offset with a consumer of its own, in no group.

    The consumer is started at the first question and kept until :meth:`stop`: gaps come
    in bursts (a restart's, or one per transaction of a transactional producer), and each
    question then costs one fetch. Questions are asked one at a time. It reads as the
    worker's consumer does: uncommitted records too, markers skipped.

    Parameters
    ----------
    bootstrap_servers
        The brokers.
    timeout_s
        How long a question waits for the broker, start-up included; no answer in time
        is ``None``.
    client
        Further keyword arguments of the consumer (security).
    """

    def __init__(self, bootstrap_servers: str, timeout_s: float = 5.0, **client: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self.client = client
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def first_offset(self, tp: TP, offset: int, before: int) -> int | None:
        """The offset of the first record of ``tp`` in ``[offset, before)``: ``offset``
        itself unless no record is there; ``before`` when the log holds none in the range
        (its fetch position passed them); ``None`` when the broker did not answer in
        time, or failed."""
        async with self._lock:
            try:
                return await asyncio.wait_for(
                    self._first_offset(tp, offset, before), self.timeout_s
                )
            except (TimeoutError, KafkaError) as exc:
                log.warning("could not read %s[%d] at %d: %r", tp.topic, tp.partition, offset, exc)
                return None

    async def _first_offset(self, tp: TP, offset: int, before: int) -> int:
        consumer = await self._started()
        partition = TopicPartition(tp.topic, tp.partition)
        consumer.assign([partition])
        consumer.seek(partition, offset)
        while True:
            records = await consumer.getmany(partition, timeout_ms=POLL_MS, max_records=1)
            batch = records.get(partition)
            if batch:
                return min(batch[0].offset, before)
            # Markers hold no record: the fetcher passes them and moves its position on.
            if await consumer.position(partition) >= before:
                return before

    async def stop(self) -> None:
        """Stop the consumer, if started."""
        async with self._lock:
            if self._consumer is not None:
                await self._consumer.stop()
                self._consumer = None

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                enable_auto_commit=False,
                # An offset retention deleted reads from the first one kept.
                auto_offset_reset="earliest",
                **self.client,
            )
            try:
                await consumer.start()
            except BaseException:
                # Not answered in time: close what the start opened.
                await consumer.stop()
                raise
            self._consumer = consumer
        return self._consumer
