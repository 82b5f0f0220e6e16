"""Messages reach the agents in offset order, none skipped and none twice (issue #24).

Faust's recovery resumes the stream partitions, then seeks them to their committed offsets
(``faust/tables/recovery.py``, ``_resume_streams``). The seek is made on the aiokafka
consumer from the event loop's thread while the consumer's own thread fetches, so a fetch
made from the old position can be handed over after the seek, and the partition goes on
from where that fetch ended. Faust's ``getmany`` also stops handing over a fetch when its
flow is suspended or the consumer's generation changes, and skips the records of a paused
partition, while the consumer has read past them. In each case the messages between were
not delivered: seen on a worker killed 20 times, the actuator got 100 of 556 scaling
decisions late, after newer ones, and those at the end of a partition never.
aiokafka's ``seek_to_committed`` also leaves a partition committed at 0, or never
committed, where it is, not at the log's start.

:class:`DeliveryOrder` keeps, per partition of a topic whose messages the agents
acknowledge, the offset to deliver next. Every seek sets it (a partition never committed
gets 0: the log's start, under the app's ``earliest`` reset); every message delivered moves
it on. A message below it was delivered already and is not delivered again; a message past
it is held back, and the partition is sought back to it before the next fetch. After
:data:`MAX_SEEKS_BACK` seeks to an offset the log no longer holds (retention moved its
start), delivery goes on from the first message there, and says so. Changelogs, whose
compaction leaves gaps, are not checked.

:class:`InOrderDelivery` applies it to Faust's consumer through the pinned faust-streaming's
``_wait_next_records`` (what a fetch brought), ``getmany``, ``_seek`` and
``seek_to_committed``; ``tests/unit/test_ordering.py`` checks it on faust's consumer, and
``tests/e2e/test_crash_replay.py`` on the real broker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from faust.transport.consumer import ensure_TP
from faust.types import TP

__all__ = ["MAX_SEEKS_BACK", "DeliveryOrder", "InOrderDelivery"]

log = logging.getLogger(__name__)

MAX_SEEKS_BACK = 5
"""Seeks back to one offset before taking it for gone from the log."""


class DeliveryOrder:
    """The offset each partition delivers next, and whether a message is delivered.

    >>> order, tp = DeliveryOrder(), TP("telemetry.metrics", 0)
    >>> order.sought(tp, 7)
    >>> [order.admit(tp, offset) for offset in (5, 7, 9, 8)]
    [False, True, False, True]
    >>> order.seeks_back({tp: 12})
    {TP(topic='telemetry.metrics', partition=0): 9}
    """

    def __init__(self) -> None:
        self._due: dict[TP, int] = {}
        # Partition -> (offset sought back to, how many times in a row).
        self._seeks: dict[TP, tuple[int, int]] = {}

    def due(self, tp: TP) -> int | None:
        """The offset of ``tp`` to deliver next; ``None`` before its first seek."""
        return self._due.get(tp)

    def sought(self, tp: TP, offset: int) -> None:
        """``tp`` was sought to ``offset``: deliver from there."""
        self._due[tp] = offset

    def forget(self, tp: TP) -> None:
        """``tp`` is no longer assigned; its next seek says where it goes on."""
        self._due.pop(tp, None)
        self._seeks.pop(tp, None)

    def admit(self, tp: TP, offset: int) -> bool:
        """Whether the message at ``offset`` of ``tp`` is delivered (then the next is due)."""
        due = self._due.get(tp)
        if due is None or offset == due:
            self._due[tp] = offset + 1
            self._seeks.pop(tp, None)
            return True
        if offset < due:
            return False
        sought_to, seeks = self._seeks.get(tp, (due, 0))
        if sought_to != due or seeks < MAX_SEEKS_BACK:
            return False
        log.warning(
            "%s[%d]: offsets %d to %d could not be read after %d seeks back (gone from the "
            "log?); going on from %d",
            tp.topic, tp.partition, due, offset - 1, MAX_SEEKS_BACK, offset,
        )  # fmt: skip
        self._due[tp] = offset + 1
        self._seeks.pop(tp, None)
        return True

    def seeks_back(self, fetched_end: Mapping[TP, int]) -> dict[TP, int]:
        """The partitions to seek back, and where to: those fetched up to ``fetched_end``
        (the offset after the last message fetched) and not delivered that far."""
        back = {}
        for tp, end in fetched_end.items():
            due = self._due.get(tp)
            if due is None or end <= due:
                continue
            offset, count = self._seeks.get(tp, (due, 0))
            self._seeks[tp] = (due, count + 1 if offset == due else 1)
            back[tp] = due
        return back


class InOrderDelivery:
    """A mixin for Faust's consumer: each partition of an acknowledged topic hands its
    messages to the streams in offset order, with none skipped (:class:`DeliveryOrder`)."""

    app: Any

    @property
    def delivery_order(self) -> DeliveryOrder:
        return self.__dict__.setdefault("_delivery_order", DeliveryOrder())

    @property
    def _fetched_end(self) -> dict[TP, int]:
        # Partition -> the offset after the last message fetched since the last getmany.
        return self.__dict__.setdefault("_fetched_end_of", {})

    def _checked(self, tp: TP) -> bool:
        return self.app.topics.acks_enabled_for(tp.topic)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        records, active = await super()._wait_next_records(timeout)  # type: ignore[misc]
        for tp, batch in (records or {}).items():
            if batch and self._checked(tp):
                end = batch[-1].offset + 1
                self._fetched_end[tp] = max(end, self._fetched_end.get(tp, end))
        return records, active

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        await self._seek_back_undelivered()
        admit = self.delivery_order.admit
        async for tp, message in super().getmany(timeout):  # type: ignore[misc]
            if not self._checked(tp) or admit(tp, message.offset):
                yield tp, message

    async def _seek_back_undelivered(self) -> None:
        fetched, order = dict(self._fetched_end), self.delivery_order
        self._fetched_end.clear()
        assigned = self.assignment()  # type: ignore[attr-defined]
        for tp, offset in order.seeks_back(fetched).items():
            if tp not in assigned:
                order.forget(tp)
                continue
            log.info(
                "%s[%d] was fetched to %d and delivered to %d; reading it again from %d",
                tp.topic, tp.partition, fetched[tp] - 1, offset - 1, offset,
            )  # fmt: skip
            await self.seek(tp, offset)  # type: ignore[attr-defined]

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Faust revokes every partition at a rebalance (eager); the seek to the committed
        # offsets that ends it says where each assigned one goes on.
        for tp in revoked:
            self.delivery_order.forget(tp)
            self._fetched_end.pop(tp, None)
        await super().on_partitions_revoked(revoked)  # type: ignore[misc]

    async def _seek(self, partition: TP, offset: int) -> None:
        await super()._seek(partition, offset)  # type: ignore[misc]
        tp = ensure_TP(partition)
        if self._checked(tp):
            self.delivery_order.sought(tp, offset)
            self._fetched_end.pop(tp, None)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()  # type: ignore[misc]
        for partition, offset in committed.items():
            tp = ensure_TP(partition)
            if self._checked(tp):
                # aiokafka seeks only past 0; the app resets to the log's start.
                self.delivery_order.sought(tp, offset if offset and offset > 0 else 0)
                self._fetched_end.pop(tp, None)
        return committed
