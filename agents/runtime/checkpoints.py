"""Checkpoint tables for brains kept per partition of the topic they learn from."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import faust
import orjson
from faust.streams import current_event

from streams.runtime.app import DLQ_MAX_MESSAGE_BYTES, app, settings

__all__ = [
    "CHECKPOINT_MAX_BYTES",
    "PartitionBrains",
    "PartitionTable",
    "handing_over",
    "handling_partition",
    "partition_table",
]

log = logging.getLogger(__name__)

# The changelog topic accepts messages as large as the DLQ's (the producer's limit too);
# a checkpoint leaves room for the record's key and framing.
CHECKPOINT_MAX_BYTES = DLQ_MAX_MESSAGE_BYTES - 64 * 1024


class PartitionTable(faust.Table):
    """A table keyed by partition number (``b"3"``): an entry lives on that changelog partition.

    Faust's default writes an entry to the partition of the event being processed, which a
    timer has not; ``use_partitioner`` hashes the key, which would not land on ``p``.
    """

    def partition_for_key(self, key: Any) -> int:
        return int(key)


def partition_table(name: str, help: str, partitions: int | None = None) -> PartitionTable:
    """Declare a table holding one brain's state per partition, as large as a DLQ message.

    ``partitions`` is the partition count of the topic the brains learn from
    (``AUTOPILOT_PARTITIONS`` if omitted): Faust assigns changelog partition ``p`` with
    partition ``p`` of the topics of as many partitions.
    """
    return app.tables.add(
        PartitionTable(
            app,
            name=name,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions if partitions is None else partitions,
            extra_topic_configs={"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)},
            beacon=app.tables.beacon,
            help=help,
        )
    )


Handover = Callable[[set[Any]], int]
_handovers: list[Handover] = []


def handing_over(write: Handover) -> Handover:
    """Register ``write(revoked)``, which writes what was learned from the partitions
    ``revoked`` and returns how many entries it wrote, to run at every revocation.

    Faust has committed the offsets of every message learned from by then: their next owner
    reads on from there and restores all that was learned, deciding as one worker would
    have. The producer is flushed once, after every ``write``.
    """
    _handovers.append(write)
    return write


async def _hand_over(sender: Any, revoked: set[Any], **_: Any) -> None:
    if sum(write(revoked) for write in _handovers):
        await app.producer.flush()


app.on_partitions_revoked.connect(_hand_over)


class Checkpointable(Protocol):
    def to_state(self) -> dict[str, Any]: ...


@runtime_checkable
class EvictsIdle(Protocol):
    """A brain that drops keys idle for too long, judged at its own event time."""

    watermark: float

    def evict_idle(self, now: float) -> int: ...


B = TypeVar("B", bound=Checkpointable)


def handling_partition() -> int:
    """Partition of the message the calling agent is handling."""
    event = current_event()
    if event is None:
        raise RuntimeError("not called from an agent handling a message")
    return event.message.partition


class PartitionBrains(Generic[B]):
    """One brain per partition of ``topic``, restored on first use and checkpointed when dirty.

    Parameters
    ----------
    name, help
        The checkpoint table's name and description.
    topic
        The (prefixed) topic whose partitions the brains belong to.
    load
        Builds a brain from its saved state, or a new one from ``None``.
    partitions
        The topic's partition count, if not ``AUTOPILOT_PARTITIONS`` (an evaluator's topic
        has one).
    may_checkpoint
        Whether the brains may be written now; the region brain's may not while it holds
        transitions not yet published.

    Notes
    -----
    At a revocation the brains of the partitions revoked are written
    (:func:`handing_over`).
    """

    def __init__(
        self,
        name: str,
        help: str,
        topic: str,
        load: Callable[[dict[str, Any] | None], B],
        partitions: int | None = None,
        may_checkpoint: Callable[[], bool] = lambda: True,
    ) -> None:
        self.name = name
        self.topic = topic
        self.table = partition_table(name, help, partitions)
        self.load = load
        self.may_checkpoint = may_checkpoint
        self.brains: dict[int, B] = {}
        self.dirty: set[int] = set()
        app.on_partitions_assigned.connect(self._on_partitions_assigned)
        handing_over(self._hand_over)

    def _hand_over(self, revoked: Iterable[Any]) -> int:
        gone = {tp.partition for tp in revoked if tp.topic == self.topic} & self.dirty
        if not gone or not self.may_checkpoint():
            return 0
        self.checkpoint(gone)
        return len(gone)

    async def _on_partitions_assigned(self, sender: Any, assigned: set[Any], **_: Any) -> None:
        self.keep_only(assigned)

    def get(self, partition: int) -> B:
        """The brain of ``partition``: in memory, else from its checkpoint, else new."""
        brain = self.brains.get(partition)
        if brain is None:
            saved = self.table.get(str(partition).encode())
            brain = self.load(None if saved is None else orjson.loads(saved))
            self.brains[partition] = brain
        return brain

    def owned(self) -> list[int]:
        """Partitions of the topic this worker is assigned as active, lowest first."""
        actives = app.assignor.assigned_actives()
        return sorted(tp.partition for tp in actives if tp.topic == self.topic)

    def touch(self, partition: int) -> None:
        """Mark a brain as changed since its last checkpoint."""
        self.dirty.add(partition)

    def keep_only(self, assigned: set[Any]) -> None:
        """Drop the brains of partitions this worker no longer owns.

        Called at every assignment. Their new owner restores them from the changelog; a
        stale copy here would be checkpointed in its place (and would, e.g., answer
        remediation outcomes in the owner's place). A partition that moves was written at
        its revocation; learning since the last checkpoint is lost only when a worker dies.
        """
        owned = {tp.partition for tp in assigned if tp.topic == self.topic}
        for partition in set(self.brains) - owned:
            del self.brains[partition]
            self.dirty.discard(partition)

    def checkpoint(self, only: set[int] | None = None) -> bool:
        """Write every dirty brain (of the partitions ``only``, if given); return whether any
        was dirty. Never raises.

        A brain that evicts idle keys (:class:`EvictsIdle`) does so first, at its own
        event time. An exception would end the timer calling this, and with it the
        worker: a failed write is logged and retried at the next checkpoint.
        """
        due = self.dirty if only is None else self.dirty & only
        changed = bool(due)
        for partition in due:
            brain = self.brains.get(partition)
            if isinstance(brain, EvictsIdle):
                brain.evict_idle(brain.watermark)
        while due:
            partition = due.pop()
            self.dirty.discard(partition)
            brain = self.brains.get(partition)
            if brain is None:
                continue
            state = orjson.dumps(brain.to_state())
            if len(state) > CHECKPOINT_MAX_BYTES:
                # Sending it would fail in the producer and stop the worker; keep learning
                # in memory and say so.
                log.error(
                    "%s of partition %d is %d bytes, more than the %d a checkpoint holds: "
                    "not checkpointed",
                    self.name, partition, len(state), CHECKPOINT_MAX_BYTES,
                )  # fmt: skip
                continue
            try:
                self.table[str(partition).encode()] = state
            except Exception:
                self.dirty.add(partition)
                log.exception("checkpoint of %s failed; will retry", self.name)
                break
        return changed
