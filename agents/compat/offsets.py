"""A watchdog for offset commits that stop advancing (faust-streaming issues #596 and #625).

Faust commits a partition's offset only up to the end of the first run of consecutive
acknowledged offsets. Races of its start-up and rebalance paths, seen on a worker
restarted mid-stream, break that for good while the worker goes on reading:

* *dropped messages*: messages fetched while the flow was suspended are dropped, and the
  fetcher reads on after them. They are never processed nor acknowledged, and the commit
  waits for them forever. Every :data:`CHECK_EVERY_S` the timer looks for a partition whose
  acknowledged offsets start past the committed one with no message of the gap still being
  processed; when two checks in a row find the same gap, it seeks the partition back to the
  committed offset: the dropped messages are read and processed, and the commit moves on.
  The messages after them, processed already, or queued or in hand for a stream, are read
  again too; :func:`processed_before` tells :class:`agents.runtime.edge.Edge` to skip one
  copy of each, so that no brain learns a record twice (a worker whose brains had learned
  the records past the gap twice published other SLO burns than a worker that had not).
* *a dropped tail*: when the dropped messages are the latest fetched, no acknowledgement
  after them shows a gap, and the commit stands at them with nothing to wait for: they
  would stay unread until the partition's next owner (a CI run's actuator waited 150 s for
  133 decisions so dropped). The timer compares what the fetcher handed faust
  (:meth:`~streams.runtime.commits.BarrierCommits.fetch_position`) with the highest offset
  acknowledged, in a stream's hands or queued for one, between two batches; when two
  checks in a row find the same messages missing, it seeks the partition back to the first
  of them.
* *duplicates*: offsets faust took for a gap in the log are later read and acknowledged
  again, so the list of acknowledged offsets holds some twice; faust's run of consecutive
  offsets then ends at the first duplicate, and the commit crawls one offset per commit.
  The timer removes the duplicates.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.types import TP

from streams.runtime.app import app

__all__ = [
    "CHECK_EVERY_S",
    "check_commits",
    "next_offset",
    "processed_before",
    "repair_stuck_commits",
]

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
"""Wall seconds between two checks; a gap must be seen by two checks in a row."""

# Partition -> (committed offset, first acknowledged offset) of the gap seen last check.
_gaps: dict[TP, tuple[int, int]] = {}
# Partition -> (first, end) of the dropped tail seen last check.
_tails: dict[TP, tuple[int, int]] = {}
# Partition -> offsets processed, or in a stream's hands, when it was sought back over
# dropped messages, not yet read again.
_processed: dict[TP, set[int]] = {}


def next_offset(tp: TP, highest_read: int) -> int:
    """The offset of the next message of ``tp`` this worker will read, given the highest it
    read since the partition was assigned (-1 for none).

    With none read, reading starts at the committed offset, as faust's private bookkeeping
    holds it (``None`` stands for 0): what a partition's previous owner read to its end,
    this one never reads, and "read to its end" is judged from there. The highest, not the
    latest: a partition sought back over dropped messages reads those again, below it.
    """
    return highest_read + 1 if highest_read >= 0 else app.consumer._committed_offset.get(tp) or 0


def processed_before(tp: TP, offset: int) -> bool:
    """Whether to skip the message at ``offset`` of ``tp``: the partition was sought back
    over dropped messages, and the message had been processed, or was in a stream's hands
    or queue, at the seek; each is answered ``True`` once. A queued one comes twice: its
    first copy is skipped, so that the copy read again is processed in the partition's
    order.

    >>> tp = TP("telemetry.metrics", 0)
    >>> _processed[tp] = {7, 8}
    >>> [processed_before(tp, offset) for offset in (5, 7, 8, 8)]
    [False, True, True, False]
    >>> tp in _processed
    False
    """
    done = _processed.get(tp)
    if done is None or offset not in done:
        return False
    done.discard(offset)
    if not done:
        del _processed[tp]
    return True


def _seek_back(tp: TP, offset: int) -> Any:
    """Seek ``tp`` back to ``offset``; what was processed, or is in a stream's hands or
    queue (to be processed before anything read again), is skipped when it is read again
    (:func:`processed_before`)."""
    consumer = app.consumer
    done = set(consumer._acked.get(tp, ()))
    done.update(m.offset for m in list(consumer.unacked) if m.tp == tp)
    done.update(_queued(tp))
    _processed[tp] = {o for o in done if o >= offset}
    return consumer.seek(tp, offset)


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


async def _forget_processed(sender: Any, revoked: set[TP], **_: Any) -> None:
    # A partition that moves is read again by its next owner from its committed offset.
    for tp in revoked:
        _processed.pop(tp, None)


app.on_partitions_revoked.connect(_forget_processed)


def _stuck_gaps() -> dict[TP, tuple[int, int]]:
    """Partitions whose commit waits for offsets that no stream is processing: ``(first,
    end)`` of the offsets missing."""
    consumer = app.consumer
    in_flight: dict[TP, list[int]] = {}
    for message in list(consumer.unacked):
        in_flight.setdefault(message.tp, []).append(message.offset)
    gaps = {}
    # Faust's private bookkeeping (pinned faust-streaming): acknowledged offsets not yet
    # committed, and the committed offset (the next one to read).
    for tp, acked in list(consumer._acked.items()):
        # The committed offset, else the lowest delivered (streams.runtime.commits); faust
        # tolerates a gap of one offset.
        committed = consumer.commit_base(tp)
        if not acked or committed is None or tp not in consumer.assignment():
            continue
        head = min(acked)
        if head - committed <= 1:
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
    for message in list(consumer.unacked):
        handled[message.tp] = max(message.offset, handled.get(message.tp, -1))
    tails = {}
    for tp in sorted(app.assignor.assigned_actives()):
        end = consumer.fetch_position(tp)
        base = consumer.commit_base(tp)
        if end is None or base is None or not app.topics.acks_enabled_for(tp.topic):
            continue
        if _queued(tp):
            continue
        acked = consumer._acked.get(tp)
        first = max(base, handled.get(tp, -1) + 1, max(acked) + 1 if acked else 0)
        # Faust tolerates one offset: a transaction's marker.
        if end - first > 1:
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

    Duplicate acknowledgements are removed at once; a partition is sought back to its
    committed offset when the previous check found the same gap.
    """
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        _gaps.clear()
        _tails.clear()
        return
    _remove_duplicate_acks()
    gaps = _stuck_gaps()
    tails = {tp: tail for tp, tail in _dropped_tails().items() if tp not in gaps}
    for found, seen, what in (
        (gaps, _gaps, "hold its commit back"),
        (tails, _tails, "were the latest fetched"),
    ):
        for tp, missing in list(found.items()):
            if seen.get(tp) != missing:
                continue
            first, end = missing
            log.warning(
                "offsets %d to %d of %s[%d] were dropped unprocessed and %s; reading the "
                "partition again from %d",
                first, end - 1, tp.topic, tp.partition, what, first,
            )  # fmt: skip
            await _seek_back(tp, first)
            del found[tp]
        seen.clear()
        seen.update(found)
