"""Checkpoints: what the brains learned, written with the offsets they learned it from.

A worker's brains are written at the offset commits, as one step with them
(:func:`_checkpointed`, the app's ``commit_barrier``): no agent is in the middle of a
message, the decisions already made are acknowledged by the broker, the brains due are
written with the position of each partition they were written at, and each partition is
committed no further than the first record a brain not yet written learned from
(:func:`commit_caps`). A worker killed at any moment restarts from a commit
whose checkpoints hold everything learned below it, so it learns every record once and
decides again as it first did; killed between a checkpoint's write and its commit, it reads
records its brains already hold, and the positions in their checkpoints skip them
(:meth:`PartitionBrains.learning`). Decisions made after the last commit are made again, with
the same ``decision_id``: delivery is at least once, and a consumer that deduplicates by id
sees each decision once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import faust
import orjson
from faust.streams import current_event
from faust.types import TP

from agents.compat.offsets import next_offsets
from streams.runtime.app import DLQ_MAX_MESSAGE_BYTES, app, settings

__all__ = [
    "CHECKPOINT_MAX_BYTES",
    "QUIET_WAIT_S",
    "HandlingGate",
    "OncePerMessage",
    "PartitionBrains",
    "PartitionTable",
    "before_checkpoint",
    "changed",
    "checkpoint_entry",
    "checkpointing",
    "commit_caps",
    "gate",
    "handing_over",
    "handled",
    "handling_partition",
    "partition_table",
    "positions_of",
    "read_entry",
    "replayed",
    "written",
]

log = logging.getLogger(__name__)

# The changelog topic accepts messages as large as the DLQ's (the producer's limit too);
# a checkpoint leaves room for the record's key and framing.
CHECKPOINT_MAX_BYTES = DLQ_MAX_MESSAGE_BYTES - 64 * 1024
QUIET_WAIT_S = 30.0
"""Wall seconds a commit waits for the agents to finish the messages they are handling;
past it, that commit is skipped (its offsets are committed by the next)."""


class HandlingGate:
    """Agents handle messages side by side; a checkpoint waits until none is mid-message.

    Examples
    --------
    >>> import asyncio
    >>> async def demo():
    ...     gate = HandlingGate()
    ...     await gate.enter()
    ...     async def release():
    ...         gate.leave()
    ...     asyncio.get_running_loop().call_later(0.01, lambda: asyncio.ensure_future(release()))
    ...     async with gate.closed(1.0) as quiet:
    ...         return quiet, gate.busy
    >>> asyncio.run(demo())
    (True, 0)
    """

    def __init__(self) -> None:
        self.busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()

    async def enter(self) -> None:
        """Start handling a message; waits while a checkpoint is being taken."""
        while not self._open.is_set():
            await self._open.wait()
        self.busy += 1
        self._idle.clear()

    def leave(self) -> None:
        """Done with a message."""
        self.busy -= 1
        if not self.busy:
            self._idle.set()

    @asynccontextmanager
    async def handling(self) -> AsyncIterator[None]:
        """Enter for the block (a timer that publishes what brains hold)."""
        await self.enter()
        try:
            yield
        finally:
            self.leave()

    @asynccontextmanager
    async def closed(self, wait_s: float) -> AsyncIterator[bool]:
        """Let no message start, wait up to ``wait_s`` for those being handled to end; say
        whether they did."""
        self._open.clear()
        try:
            try:
                await asyncio.wait_for(self._idle.wait(), wait_s)
                quiet = True
            except TimeoutError:
                quiet = False
            yield quiet
        finally:
            self._open.set()


gate = HandlingGate()
"""The worker's one gate: every agent's message passes it (:class:`agents.runtime.edge.Edge`)."""
handled: dict[TP, int] = {}
"""Partition -> the highest offset this worker handled to its end since it started."""


def _position_key(tp: TP) -> str:
    return f"{tp.topic}/{tp.partition}"


def positions_of(partition: int, floor: dict[str, int] | None = None) -> dict[str, int]:
    """``"<topic>/<partition>"`` -> the next offset to handle, for every partition numbered
    ``partition`` this worker handled, over ``floor`` (the positions a brain was restored
    with: a partition not handled since is where it was)."""
    out = dict(floor or {})
    for tp, offset in list(handled.items()):
        if tp.partition == partition:
            out[_position_key(tp)] = offset + 1
    return out


def checkpoint_entry(partition: int, floor: dict[str, int] | None, state: Any) -> dict:
    """What a checkpoint holds: ``state``, and the positions (:func:`positions_of`) below
    which its brain has learned every record of the partitions numbered ``partition``."""
    return {"positions": positions_of(partition, floor), "state": state}


def read_entry(saved: bytes) -> tuple[dict[str, int] | None, Any]:
    """The positions and the state of a checkpoint (no positions in one written before
    checkpoints had them)."""
    entry = orjson.loads(saved)
    if isinstance(entry, dict) and entry.keys() == {"positions", "state"}:
        return entry["positions"], entry["state"]
    return None, entry


def replayed(positions: dict[str, int]) -> bool:
    """Whether the message being handled is below ``positions``: its effect is already in
    the checkpoint they were saved with (a worker killed between that checkpoint's write and
    the commit of its offsets reads it again)."""
    event = current_event()
    if event is None:
        return False
    message = event.message
    return message.offset < positions.get(_position_key(message.tp), -1)


# A brain's name and key -> partition -> the lowest offset of a message that changed the
# brain since it was last written.
_unwritten: dict[Hashable, dict[TP, int]] = {}


def changed(brain: Hashable) -> None:
    """Note that the message being handled changed ``brain`` (its name and key): until it is
    written (:func:`written`), no offset of the message's partition from there on is
    committed."""
    event = current_event()
    if event is None:
        return
    message = event.message
    since = _unwritten.setdefault(brain, {})
    if message.offset < since.get(message.tp, message.offset + 1):
        since[message.tp] = message.offset


def written(brain: Hashable) -> None:
    """``brain`` was written with all it learned, or dropped: it holds no commit back."""
    _unwritten.pop(brain, None)


def commit_caps() -> dict[TP, int]:
    """Partition -> the offset its commits must stay at or below: the first message a
    brain not yet written learned from, and the next message the edge handles (those
    skipped past messages faust dropped are acknowledged, not handled)."""
    caps: dict[TP, int] = next_offsets()
    for since in list(_unwritten.values()):
        for tp, offset in since.items():
            caps[tp] = min(offset, caps.get(tp, offset))
    return caps


_writers: list[Callable[[], None]] = []
_preparers: list[Callable[[], Awaitable[None]]] = []


def checkpointing(write: Callable[[], None]) -> Callable[[], None]:
    """Register ``write()``, which writes brains that changed (:func:`changed`), all of them
    or some, and says which (:func:`written`); it runs at every commit, with no message
    being handled."""
    _writers.append(write)
    return write


def before_checkpoint(
    prepare: Callable[[], Awaitable[None]],
) -> Callable[[], Awaitable[None]]:
    """Register ``prepare()``, awaited at every commit before the brains are written, with no
    message being handled: it sends on what is held for other workers and in no
    checkpoint (the region evidence of the partitions read)."""
    _preparers.append(prepare)
    return prepare


@asynccontextmanager
async def _checkpointed() -> AsyncIterator[dict[TP, int] | None]:
    """What every commit of the worker's offsets runs in: yields the caps of the offsets to
    commit (:func:`commit_caps`), or ``None`` to commit nothing.

    With no message mid-handler, what was held back is sent, the producer is flushed (the
    decisions of every record handled are in the log before a checkpoint says the record was
    learned), and the brains due are written; the consumer then takes the offsets of the
    messages handled, below the caps, before any other message is handled
    (:mod:`streams.runtime.commits`), and flushes the checkpoints and commits them once the
    agents go on.
    """
    async with gate.closed(QUIET_WAIT_S) as quiet:
        if not quiet:
            log.warning(
                "an agent stayed %.0f s in one message; offsets not committed this time",
                QUIET_WAIT_S,
            )
            yield None
            return
        for prepare in _preparers:
            await prepare()
        await app.producer.flush()
        for write in _writers:
            write()
        yield commit_caps()


app.commit_barrier = _checkpointed


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


T = TypeVar("T")


class OncePerMessage(Generic[T]):
    """What ``work(event, key)`` makes of the message being handled, worked out once a message
    and ``key``.

    The records of an envelope are one event, and a checkpoint is taken between messages,
    never inside one: what a subscriber makes of its message (its partition's brain, its
    reading noted) is worked out for the first record and kept for the others, as long as
    they share ``key``. Outside an event, ``work(None, key)`` is called every time (and may
    refuse).

    Examples
    --------
    >>> calls = []
    >>> def work(event, key):
    ...     calls.append(key)
    ...     return len(calls)
    >>> memo = OncePerMessage(work)
    >>> memo("a"), memo("a"), memo("b")  # no event: worked out each time
    (1, 2, 3)
    """

    __slots__ = ("_event", "_key", "_value", "_work")

    def __init__(self, work: Callable[[Any, Hashable], T]) -> None:
        self._work = work
        self._event: Any = None
        self._key: Hashable = None
        self._value: Any = None

    def __call__(self, key: Hashable = None) -> T:
        event = current_event()
        if event is None or event is not self._event or key != self._key:
            self._value = self._work(event, key)
            self._event, self._key = event, key
        return self._value

    def forget(self) -> None:
        """Work it out again at the next call, even for the same message (partitions were
        revoked: what was worked out may be gone)."""
        self._event = None


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
        transitions not yet published (no offset is committed then).

    Notes
    -----
    The brains that changed are written at the first commit (:func:`checkpointing`) once
    ``AUTOPILOT_CHECKPOINT_INTERVAL_S`` has passed since their last round, each as
    ``{"positions": ..., "state": ...}``, and at a revocation those of the partitions
    revoked (:func:`handing_over`); until then their partitions' commits wait.
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
        # Partition -> the positions its brain's checkpoint was restored with.
        self.restored_at: dict[int, dict[str, int]] = {}
        self._round_at = -math.inf
        app.on_partitions_assigned.connect(self._on_partitions_assigned)
        handing_over(self._hand_over)
        checkpointing(self._write_at_commit)

    def _write_at_commit(self) -> None:
        now = time.monotonic()
        if now - self._round_at < settings.checkpoint_interval_s or not self.may_checkpoint():
            return
        self._round_at = now
        self.checkpoint()

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
            positions, state = (None, None) if saved is None else read_entry(saved)
            if positions is not None:
                self.restored_at[partition] = positions
            brain = self.load(state)
            self.brains[partition] = brain
        return brain

    def learning(self, partition: int) -> B | None:
        """The brain of ``partition`` to learn the message being handled, or ``None`` if
        its checkpoint already holds that message (:func:`replayed`)."""
        brain = self.get(partition)
        floor = self.restored_at.get(partition)
        return None if floor and replayed(floor) else brain

    def owned(self) -> list[int]:
        """Partitions of the topic this worker is assigned as active, lowest first."""
        actives = app.assignor.assigned_actives()
        return sorted(tp.partition for tp in actives if tp.topic == self.topic)

    def touch(self, partition: int) -> None:
        """Mark a brain as changed since its last checkpoint (by the message handled)."""
        self.dirty.add(partition)
        changed((self.name, partition))

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
            self.restored_at.pop(partition, None)
            written((self.name, partition))

    def checkpoint(self, only: set[int] | None = None) -> bool:
        """Write every dirty brain (of the partitions ``only``, if given); return whether any
        was dirty. Never raises.

        A brain that evicts idle keys (:class:`EvictsIdle`) does so first, at its own
        event time. An exception would end the commit calling this: a failed write is
        logged and retried at the next checkpoint, and holds its partitions' commits until.
        """
        due = self.dirty if only is None else self.dirty & only
        any_due = bool(due)
        for partition in due:
            brain = self.brains.get(partition)
            if isinstance(brain, EvictsIdle):
                brain.evict_idle(brain.watermark)
        while due:
            partition = due.pop()
            self.dirty.discard(partition)
            brain = self.brains.get(partition)
            if brain is None:
                written((self.name, partition))
                continue
            entry = checkpoint_entry(partition, self.restored_at.get(partition), brain.to_state())
            state = orjson.dumps(entry)
            if len(state) > CHECKPOINT_MAX_BYTES:
                # Sending it would fail in the producer and stop the worker; keep learning
                # in memory, say so, and let the commits go on (holding them would read the
                # partition again from here at every restart).
                log.error(
                    "%s of partition %d is %d bytes, more than the %d a checkpoint holds: "
                    "not checkpointed",
                    self.name, partition, len(state), CHECKPOINT_MAX_BYTES,
                )  # fmt: skip
                written((self.name, partition))
                continue
            try:
                self.table[str(partition).encode()] = state
            except Exception:
                self.dirty.add(partition)
                log.exception("checkpoint of %s failed; will retry", self.name)
                break
            written((self.name, partition))
        return any_due
