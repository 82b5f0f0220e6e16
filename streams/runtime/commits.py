"""Offset commits that go with the worker's checkpoints (:mod:`agents.runtime.checkpoints`).

Faust commits on a timer (``broker_commit_interval``), after ``broker_commit_every``
messages, at a revocation and at a stop; each goes through the consumer's ``_commit_tps``
(a private method of the pinned faust-streaming): it computes the offsets to commit from the
messages handled, waits for the messages attached to them, flushes the producer and
commits. :class:`BarrierCommits` computes those offsets inside the app's ``commit_barrier``,
where the checkpoints are written with no message being handled, and keeps each partition's
below the cap the barrier gives (the first message a brain not yet written learned from):
the offsets committed are those of messages the checkpoints hold. The offsets held back go
back to faust's list of acknowledged offsets (``_acked``, ``_acked_index``), so that a later
commit takes them. The barrier is left before the flush and the commit, so that the agents
handle messages meanwhile (theirs are committed next time). The steps after the barrier are
faust's own ``_commit_tps``; ``tests/e2e/test_crash_replay.py`` checks the whole on the real
broker, ``tests/unit/test_commits.py`` the caps on faust's consumer.

A commit never passes offsets no stream acknowledged. Faust checks that only against a
committed offset it holds, and holds none for a partition never committed or committed at
0; messages its start-up and rebalances drop on their way to the streams
(:mod:`agents.compat.offsets`) were then committed past, never handled: in a run killed 8
times, 200 decisions of a partition never reached the actuator. :meth:`commit_base` is the
committed offset, else the lowest offset fetched since the worker started (as aiokafka
handed it, before faust could drop it); a partition
whose acknowledged offsets start past it is not committed until the watchdog reads the gap
again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.exceptions import ProducerSendError
from faust.types import TP

__all__ = ["BarrierCommits", "fetch_position"]


def fetch_position(consumer: AIOKafkaConsumer, tp: TP) -> int | None:
    """The position of ``tp`` in ``consumer``: the offset of the next message its fetcher
    hands out, ``None`` when not assigned or being reset.

    What aiokafka's ``position()`` returns without waiting, read from its subscription state
    (private names of the pinned aiokafka; ``tests/e2e/test_fetching.py`` checks them). The
    state belongs to the consumer's thread: an int, read without a lock.
    """
    subscription = consumer._subscription.subscription
    assignment = None if subscription is None else subscription.assignment
    if assignment is None or tp not in assignment.tps:
        return None
    state = assignment.state_value(tp)
    return state.position if state.has_valid_position else None


class BarrierCommits:
    """A mixin for Faust's consumer: the offsets of each commit are taken inside
    ``app.commit_barrier()``, if set, and kept at or below its caps.

    The barrier yields the caps (partition -> highest offset to commit), or ``None`` to skip
    the commit; what a commit does not take, the next one does.
    """

    app: Any
    # Partition -> the lowest offset fetched since the worker started.
    _fetched_from: dict[TP, int]

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        # Every record fetched, before faust can drop it: its ``getmany`` stops handing out
        # a fetched batch when the group's generation changes, and what aiokafka's position
        # has passed is then never read. A worker given a partition never committed, whose
        # first batch was so dropped, took the next for where reading starts, and the group
        # committed past 14 messages nobody handled (scale-out bench, two workers).
        records, active = await super()._wait_next_records(timeout)  # type: ignore[misc]
        fetched = self.__dict__.setdefault("_fetched_from", {})
        for tp, batch in (records or {}).items():
            if batch and batch[0].offset < fetched.get(tp, batch[0].offset + 1):
                fetched[tp] = batch[0].offset
        return records, active

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        try:
            async for tp, message in super().getmany(timeout):  # type: ignore[misc]
                self.__dict__["_delivering"] = True
                yield tp, message
        finally:
            self.__dict__["_delivering"] = False

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust takes a jump in the offsets it reads for a gap in the log (a compacted or
        # transactional topic) and counts the gap acknowledged, so a commit passes it. The
        # worker reads neither kind: the jumps seen (68 in a run killed 8 times, up to 280
        # offsets each) were a fetch made before faust sought back to the committed offset
        # at start-up, whose later messages went on after the seek. Those offsets are not
        # taken for done: the commit waits, and the watchdog reads them again.
        return

    async def _seek(self, partition: TP, offset: int) -> None:
        # Faust's seek changes aiokafka's fetcher from the event loop's thread, while the
        # consumer thread may be handing out its records: both removed a partition's
        # records, and the KeyError crashed a worker that sought two partitions back in a
        # row. The seek is made in the consumer thread, where the fetcher lives.
        thread = self._thread  # type: ignore[attr-defined]
        await thread.call_thread(thread.seek, partition, offset)

    def ack(self, message: Any) -> bool:
        """Faust's acknowledgement; a message whose offset was acknowledged before (a copy
        read again after a seek back) leaves the set of messages being handled too.

        Faust keeps such a copy in that set (a weak set: until nothing refers to it; a
        stream holds its last event), where it looks handled for good: the worker killed
        last in a CI run's crash test never marked an interactions partition read to its
        end idle, so the tenant brains' event time stopped short of its last SLO burn, and
        a rebalance waits for the set to empty.
        """
        acked = super().ack(message)  # type: ignore[misc]
        if not acked:
            self._unacked_messages.discard(message)  # type: ignore[attr-defined]
        return acked

    def being_handled(self) -> list[Any]:
        """The messages handed to a stream and not acknowledged yet.

        Faust's set of them (``unacked``) was seen to keep a message it had marked
        acknowledged (``acked``): the last message of a partition read again after a seek
        back stayed in it for good, in runs of the scale-out bench, so that partition was
        never marked idle, and the region evaluator's event time stopped short of its last
        records. Such messages are taken out of the set here.
        """
        unacked = self._unacked_messages  # type: ignore[attr-defined]
        handling = []
        for message in list(unacked):
            if message.acked:
                unacked.discard(message)
            else:
                handling.append(message)
        return handling

    def commit_base(self, tp: TP) -> int | None:
        """Where ``tp``'s acknowledged offsets must start for a commit: its committed offset,
        else the lowest offset fetched since the worker started (``None`` before any)."""
        committed = self._committed_offset.get(tp)  # type: ignore[attr-defined]
        return committed or self.__dict__.get("_fetched_from", {}).get(tp)

    @property
    def delivering(self) -> bool:
        """Whether faust is handing a fetched batch to the streams: messages of it may be
        neither acknowledged nor in flight yet, nor dropped."""
        return self.__dict__.get("_delivering", False)

    def fetch_position(self, tp: TP) -> int | None:
        """The offset of the next message of ``tp`` the fetcher hands faust (``None`` when
        unknown): every message below it went to faust, handled or dropped."""
        # Faust runs its aiokafka consumer in its consumer thread (pinned faust-streaming).
        consumer = getattr(getattr(self, "_thread", None), "_consumer", None)
        return None if consumer is None else fetch_position(consumer, tp)

    def has_gap(self, tp: TP) -> bool:
        """Whether ``tp``'s acknowledged offsets start past :meth:`commit_base` (faust
        tolerates one offset: a transaction's marker)."""
        acked = self._acked.get(tp)  # type: ignore[attr-defined]
        base = self.commit_base(tp)
        return bool(acked) and base is not None and min(acked) - base > 1

    async def _commit_tps(self, tps: Iterable[TP], start_new_transaction: bool) -> bool:
        barrier = getattr(self.app, "commit_barrier", None)
        if barrier is None:
            return await super()._commit_tps(tps, start_new_transaction)  # type: ignore[misc]
        tps = [tp for tp in tps if not self.has_gap(tp)]
        async with barrier() as caps:
            if caps is None:
                return False
            offsets = self._filter_committable_offsets(tps)  # type: ignore[attr-defined]
            self.cap_offsets(offsets, caps)
        if not offsets:
            return False
        try:
            await self._handle_attached(offsets)  # type: ignore[attr-defined]
        except ProducerSendError as exc:
            await self.crash(exc)  # type: ignore[attr-defined]
            return False
        return await self._commit_offsets(  # type: ignore[attr-defined]
            offsets, start_new_transaction=start_new_transaction
        )

    def cap_offsets(self, offsets: dict[TP, int], caps: Mapping[TP, int]) -> None:
        """Lower each offset of ``offsets`` (faust's, the next to read) to its cap; give the
        acknowledged offsets held back to the next commit."""
        for tp, cap in caps.items():
            offset = offsets.get(tp)
            if offset is None or offset <= cap:
                continue
            committed = self._committed_offset.get(tp) or 0  # type: ignore[attr-defined]
            held = range(max(cap, committed), offset)
            # Faust took offsets below `offset` off its sorted list; those from `cap` on go
            # back to its head.
            self._acked[tp][:0] = held  # type: ignore[attr-defined]
            self._acked_index[tp].update(held)  # type: ignore[attr-defined]
            if cap > committed:
                offsets[tp] = cap
            else:
                del offsets[tp]
