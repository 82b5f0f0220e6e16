"""A watchdog for offset commits that stop advancing (faust-streaming issues #596 and #625).

Faust commits a partition's offset only up to the end of the first run of consecutive
acknowledged offsets. Races of its start-up and rebalance paths, seen on a worker
restarted mid-stream, break that for good while the worker goes on reading:

* *dropped messages*: messages fetched while the flow was suspended are dropped, and the
  fetcher reads on after them. The edge (:func:`in_order`) sees the jump at the next
  message that reaches it, handles nothing past it, and seeks back to the first missing
  one; the commits stay below it. As a backstop, every :data:`CHECK_EVERY_S` the timer
  looks for a partition whose acknowledged offsets start past the committed one with no
  message of the gap still being processed, and when two checks in a row find the same
  gap and the log holds records in it (:data:`probe`: a transaction's marker takes an
  offset and holds none), seeks it back to the first; the edge skips what it handled
  before.
* *a dropped tail*: when the dropped messages are the latest fetched, no acknowledgement
  after them shows a gap, and the commit stands at them with nothing to wait for: they
  would stay unread until the partition's next owner (a CI run's actuator waited 150 s for
  133 decisions so dropped). The timer compares what the fetcher handed faust
  (:meth:`~streams.runtime.commits.BarrierCommits.fetch_position`) with the highest offset
  acknowledged, in a stream's hands or queued for one, between two batches; when two
  checks in a row find the same messages missing, and the log holds records there, it
  seeks the partition back to the first of them. A CI run's actuator so waited for good on
  a failover decision, the last of its partition: one offset, which the check passed over
  as a marker, as faust does.
* *duplicates*: offsets faust took for a gap in the log are later read and acknowledged
  again, so the list of acknowledged offsets holds some twice; faust's run of consecutive
  offsets then ends at the first duplicate, and the commit crawls one offset per commit.
  The timer removes the duplicates.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from faust.types import TP

from streams.runtime.app import app, settings
from streams.runtime.log_probe import LogProbe

__all__ = [
    "CHECK_EVERY_S",
    "check_commits",
    "finished",
    "in_order",
    "next_offset",
    "next_offsets",
    "ordered",
    "repair_stuck_commits",
]

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
"""Wall seconds between two checks; a gap must be seen by two checks in a row."""

# Partition -> (committed offset, first acknowledged offset) of the gap seen last check.
_gaps: dict[TP, tuple[int, int]] = {}
# Partition -> (first, end) of the dropped tail seen last check.
_tails: dict[TP, tuple[int, int]] = {}
# Partition -> (first, end) of the last gap or tail found to hold no record (markers).
_no_records: dict[TP, tuple[int, int]] = {}
# (reader, partition) -> the offset of the next message the reader handles. Several agents
# read the decision topics, each message once: each keeps its own order.
_next: dict[tuple[str, TP], int] = {}
# (reader, partition) -> the offset of the message the reader was given and has not finished.
_taken: dict[tuple[str, TP], int] = {}
# Topic -> the readers that read it in order (:func:`ordered`), known before any message.
_readers: dict[str, set[str]] = {}
# (reader, partition) -> (when it fell behind, when it was last sought back), while messages
# past the next offset come instead of it (monotonic seconds).
_behind: dict[tuple[str, TP], tuple[float, float]] = {}
RESEEK_AFTER_S = 2.0
"""Wall seconds between two seeks back to the next offset while it does not come."""
MAX_BEHIND_S = 60.0
"""Wall seconds missing offsets are waited for before they are given up."""
probe = LogProbe(settings.bootstrap_servers, **settings.aiokafka_security_kwargs())
"""Asked where the log's next record is when a message comes past the one expected."""


async def _stop_probe(sender: Any, **_: Any) -> None:
    await probe.stop()


app.on_before_shutdown.connect(_stop_probe)


def next_offset(tp: TP, highest_read: int) -> int:
    """The offset of the next message of ``tp`` this worker will read, given the highest it
    read since the partition was assigned (-1 for none).

    With none read, reading starts at the committed offset, as faust's private bookkeeping
    holds it (``None`` stands for 0): what a partition's previous owner read to its end,
    this one never reads, and "read to its end" is judged from there. The highest, not the
    latest: a partition sought back over dropped messages reads those again, below it.
    """
    return highest_read + 1 if highest_read >= 0 else app.consumer._committed_offset.get(tp) or 0


async def in_order(reader: str, tp: TP, offset: int) -> bool:
    """Whether ``reader`` (an agent) handles the message at ``offset`` of ``tp`` now: it is
    the next of its partition for that reader.

    A message below the next offset was handled already (read again after a seek) and is
    skipped. A message past it is either the next record of the log, the offsets between
    holding none (a transaction's marker, records compacted away or deleted by retention),
    or faust dropped the ones between on their way; the log says which (:data:`probe`).
    Dropped ones are read first: the partition is sought back to them and the message
    skipped, as are the others past them, until they come; were they handled later, what
    they made (samples, tenant requests, region evidence) would come after theirs, and
    brains that take a position below the latest they have from a partition for a repeat,
    or a sample older than a series' latest for a replay, would never learn it; the actuator
    would refuse a dropped decision as superseded by a newer one it read first. (Taking a
    gap of one offset for a marker, as faust does, once lost a sample so, and with it a
    scaling decision.) Faust's read offset undoes a seek made while later messages of the
    partition are still on their way, so the seek is made again every
    :data:`RESEEK_AFTER_S` while none comes; after :data:`MAX_BEHIND_S` the missing offsets
    are given up, and logged. Commits stay at or below the next offset of every reader, and
    below a message given and not yet :func:`finished` (:func:`next_offsets`): faust
    acknowledges the messages skipped.

    The next offset starts where the partition's reading starts
    (:meth:`~streams.runtime.commits.BarrierCommits.commit_base`). Readers of one partition
    keep their orders apart: a seek made for one gives the others copies, which they skip.

    >>> import asyncio
    >>> tp = TP("telemetry.metrics", 7)
    >>> _next["metrics", tp] = 10
    >>> async def seek(tp, offset): print("seek", offset)
    >>> async def first_offset(tp, offset, before): return 12 if offset == 11 else offset
    >>> app.consumer.seek, probe.first_offset = seek, first_offset
    >>> asyncio.run(in_order("metrics", tp, 10)), asyncio.run(in_order("metrics", tp, 9))
    (True, False)

    11 is a marker; 13 and 14 were dropped:

    >>> asyncio.run(in_order("metrics", tp, 12))
    True
    >>> asyncio.run(in_order("metrics", tp, 15))
    seek 13
    False
    >>> [asyncio.run(in_order("metrics", tp, o)) for o in (16, 13, 14, 15, 16)]
    [False, True, True, True, True]
    >>> finished("metrics", tp)
    >>> del app.consumer.seek, probe.first_offset, _next["metrics", tp]
    """
    key = (reader, tp)
    # A reader asks again once done with the message it was given last.
    _taken.pop(key, None)
    expected = _next.get(key)
    if expected is None:
        # Where reading starts: the committed offset, else (never committed, or at 0) the
        # lowest fetched. Not the higher of the two: messages faust drops before its
        # streams see them would raise the lowest fetched past them, and be skipped when
        # read again. A committed offset the log has deleted is waited for, then given up.
        start = app.consumer.commit_base(tp)
        expected = offset if start is None else start
    if offset < expected:
        return False
    if offset > expected and key not in _behind:
        first = await probe.first_offset(tp, expected, offset)
        if first is not None and first > expected:
            # No record between: nothing was dropped there.
            expected = first
    if offset > expected:
        _next[key] = expected
        now = time.monotonic()
        since, sought = _behind.get(key, (now, -math.inf))
        if now - since < MAX_BEHIND_S:
            if now - sought >= RESEEK_AFTER_S:
                if sought == -math.inf:
                    log.info(
                        "%s: offsets %d to %d of %s[%d] were dropped on their way; reading "
                        "them first",
                        reader, expected, offset - 1, tp.topic, tp.partition,
                    )  # fmt: skip
                await _seek_again(key, since, now)
            return False
        log.warning(
            "%s: offsets %d to %d of %s[%d] were skipped and not read again in %.0f s; going "
            "on without them",
            reader, expected, offset - 1, tp.topic, tp.partition, MAX_BEHIND_S,
        )  # fmt: skip
    _next[key] = offset + 1
    _taken[key] = offset
    _behind.pop(key, None)
    return True


async def ordered(reader: str, stream: Any) -> AsyncIterator[Any]:
    """The events of ``stream`` that ``reader`` handles now (:func:`in_order`); each is
    :func:`finished` when the reader asks for the next.

    The reader is known to read the stream's topics from here on, before any message of
    theirs reaches it: :func:`next_offsets` holds their partitions' commits for it.
    """
    for topic in getattr(getattr(stream, "channel", None), "topics", ()):
        _readers.setdefault(topic, set()).add(reader)
    async for event in stream.events():
        message = event.message
        if not await in_order(reader, message.tp, message.offset):
            continue
        try:
            yield event
        finally:
            finished(reader, message.tp)


async def _seek_again(key: tuple[str, TP], since: float, now: float) -> None:
    """Seek a reader's partition back to its next offset, which it waits on since ``since``."""
    _behind[key] = (since, now)
    await app.consumer.seek(key[1], _next[key])


async def _seek_back_waiting_readers() -> None:
    """Seek again the partitions a reader waits on (:func:`in_order`) that it has not sought
    for :data:`RESEEK_AFTER_S`: a reader seeks when a message past the missing ones comes,
    and when those were the last of the partition none comes (faust undid the seek while
    they were on their way); a CI run so stood still for 150 s."""
    now = time.monotonic()
    for key, (since, sought) in list(_behind.items()):
        if key in _next and now - sought >= RESEEK_AFTER_S:
            await _seek_again(key, since, now)


def finished(reader: str, tp: TP) -> None:
    """``reader`` is done with the message of ``tp`` :func:`in_order` gave it last: a commit
    may now pass it."""
    _taken.pop((reader, tp), None)


def next_offsets() -> dict[TP, int]:
    """Partition -> the lowest offset of a message its readers have not finished: every
    message below it was handled by each, none at or past it may be committed.

    A message a reader was given and has not finished caps the commit at its own offset:
    faust may count it acknowledged already, from a copy skipped before a seek back, and a
    commit past it would lose it to a crash (a sample so lost, in a run killed 20 times,
    moved two SLO burns). A partition assigned to a reader that has had no message of it
    yet is capped where its reading starts: faust's stream skips, and acknowledges, the
    messages it finds in its queue while the flow is suspended or of a generation before
    a rebalance, and a commit past them before the reader's first message moved where
    reading starts past them (a CI run's crash test: one series' samples never learned).
    """
    lowest: dict[TP, int] = {}
    for key, offset in list(_next.items()):
        tp = key[1]
        offset = _taken.get(key, offset)
        lowest[tp] = min(offset, lowest.get(tp, offset))
    for tp in _unstarted():
        start = app.consumer.commit_base(tp) or 0
        lowest[tp] = min(start, lowest.get(tp, start))
    return lowest


def _unstarted() -> list[TP]:
    """Assigned partitions a reader of theirs has had no message of since their assignment."""
    return [
        tp
        for tp in list(app.consumer.assignment())
        if any((reader, tp) not in _next for reader in _readers.get(tp.topic, ()))
    ]


def _queued(tp: TP) -> list[int]:
    """Offsets of the messages of ``tp`` waiting in a stream's queue.

    A stream takes on (tracks) a message when it takes it from its channel's queue, so the
    queued ones are neither acknowledged nor in a stream's hands. Faust's conductor
    indexes the channels each partition's messages go to; a channel's queue is an
    ``asyncio.Queue`` of events (pinned faust-streaming and mode).
    """
    return [
        event.message.offset
        for channel in list(app.topics._tp_index.get(tp, ()))
        for event in list(channel.queue._queue)
        if getattr(event, "message", None) is not None and event.message.tp == tp
    ]


async def _forget_order(sender: Any, revoked: set[TP], **_: Any) -> None:
    # A partition that moves is read again by its next owner from its committed offset.
    for key in [key for key in list(_next) + list(_behind) if key[1] in revoked]:
        _next.pop(key, None)
        _taken.pop(key, None)
        _behind.pop(key, None)


app.on_partitions_revoked.connect(_forget_order)


def _stuck_gaps() -> dict[TP, tuple[int, int]]:
    """Partitions whose commit waits for offsets that no stream is processing: ``(first,
    end)`` of the offsets missing."""
    consumer = app.consumer
    in_flight: dict[TP, list[int]] = {}
    for message in consumer.being_handled():
        in_flight.setdefault(message.tp, []).append(message.offset)
    gaps = {}
    # Faust's private bookkeeping (pinned faust-streaming): acknowledged offsets not yet
    # committed, and the committed offset (the next one to read).
    for tp, acked in list(consumer._acked.items()):
        # The committed offset, else the lowest fetched (streams.runtime.commits).
        committed = consumer.commit_base(tp)
        if not acked or committed is None or tp not in consumer.assignment():
            continue
        head = min(acked)
        if head <= committed:
            continue
        if any(committed <= offset < head for offset in in_flight.get(tp, ())):
            continue
        gaps[tp] = (committed, head)
    return gaps


def _dropped_tails() -> dict[TP, tuple[int, int]]:
    """Partitions whose latest fetched messages faust dropped: ``(first, end)`` of the
    offsets the fetcher handed faust that no stream acknowledged, holds or has queued,
    nothing fetched after them.

    The gaps of :func:`_stuck_gaps` show in the acknowledgements of the messages after
    them; these have none after them, so the commit has nothing to wait for and they would
    stay unread until the partition's next owner reads from the committed offset.
    """
    consumer = app.consumer
    if consumer.delivering:
        # A batch on its way to the streams' queues.
        return {}
    handled: dict[TP, int] = {}
    for message in consumer.being_handled():
        handled[message.tp] = max(message.offset, handled.get(message.tp, -1))
    # Acknowledged without reaching a reader: skipped by faust's stream (next_offsets).
    unstarted = set(_unstarted())
    tails = {}
    for tp in sorted(app.assignor.assigned_actives()):
        end = consumer.fetch_position(tp)
        base = consumer.commit_base(tp)
        if end is None or base is None or not app.topics.acks_enabled_for(tp.topic):
            continue
        if _queued(tp):
            continue
        acked = None if tp in unstarted else consumer._acked.get(tp)
        first = max(base, handled.get(tp, -1) + 1, max(acked) + 1 if acked else 0)
        if end > first:
            tails[tp] = (first, end)
    return tails


def _remove_duplicate_acks() -> None:
    """Acknowledge each offset once, so that faust's runs of consecutive offsets are whole."""
    for tp, acked in list(app.consumer._acked.items()):
        unique = sorted(set(acked))
        if len(unique) < len(acked):
            log.info(
                "%d offsets of %s[%d] were acknowledged twice; their duplicates held its "
                "commit back",
                len(acked) - len(unique), tp.topic, tp.partition,
            )  # fmt: skip
            acked[:] = unique


@app.timer(CHECK_EVERY_S)
async def repair_stuck_commits() -> None:
    """Repair the partitions whose commit faust's bookkeeping holds back."""
    try:
        await check_commits()
    except Exception:
        # An exception would end the timer, and with it the worker; the next check retries.
        log.exception("could not check the offset commits")


async def check_commits() -> None:
    """One check of every assigned partition.

    Duplicate acknowledgements are removed at once; a partition is sought back to the
    first record missing when the previous check found the same gap and the log holds
    records in it. Gaps of markers only are remembered, and not asked about again.
    """
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        _gaps.clear()
        _tails.clear()
        return
    await _seek_back_waiting_readers()
    _remove_duplicate_acks()
    gaps = _stuck_gaps()
    tails = {tp: tail for tp, tail in _dropped_tails().items() if tp not in gaps}
    for found, seen, what in (
        (gaps, _gaps, "hold its commit back"),
        (tails, _tails, "were the latest fetched"),
    ):
        for tp, missing in list(found.items()):
            if seen.get(tp) != missing or _no_records.get(tp) == missing:
                continue
            first, end = missing
            # A transaction's marker takes an offset and is never acknowledged.
            record = await probe.first_offset(tp, first, end)
            if record is None:
                continue
            if record == end:
                _no_records[tp] = missing
                continue
            log.warning(
                "offsets %d to %d of %s[%d] were dropped unprocessed and %s; reading the "
                "partition again from %d",
                record, end - 1, tp.topic, tp.partition, what, record,
            )  # fmt: skip
            await app.consumer.seek(tp, record)
            del found[tp]
        seen.clear()
        seen.update(found)
