"""Commits stay below what the checkpoints hold: caps on faust's own consumer bookkeeping.

The worker's consumer (:class:`streams.runtime.commits.BarrierCommits` on faust's) takes the
offsets faust would commit and lowers them to the caps the checkpoints give; the offsets held
back must be committed by a later commit, or the partition's commits would stop for good.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Mapping
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP, Message

from streams.runtime.app import app, topics

TOPIC = "test-commits"


@pytest.fixture
def consumer() -> Iterator[object]:
    consumer = app.consumer
    yield consumer
    consumer.__dict__.setdefault("_fetched_from", {})
    for bookkeeping in (
        consumer._acked,
        consumer._acked_index,
        consumer._committed_offset,
        consumer._fetched_from,
    ):
        for tp in [tp for tp in bookkeeping if tp.topic == TOPIC]:
            del bookkeeping[tp]


def handled(consumer, tp: TP, offsets: range, committed: int) -> None:
    """``offsets`` of ``tp`` acknowledged, as faust does it, with ``committed`` committed."""
    consumer._committed_offset[tp] = committed
    for offset in offsets:
        consumer._acked[tp].append(offset)
        consumer._acked_index[tp].add(offset)


def commit(consumer, caps: dict[TP, int]) -> dict[TP, int]:
    """What one commit takes, and its bookkeeping once committed."""
    offsets = consumer._filter_committable_offsets(list(consumer._acked))
    offsets = {tp: offset for tp, offset in offsets.items() if tp.topic == TOPIC}
    consumer.cap_offsets(offsets, caps)
    consumer._committed_offset.update(offsets)
    return offsets


def test_a_cap_holds_the_commit_and_the_next_commit_takes_the_rest(consumer) -> None:
    held, free = TP(TOPIC, 0), TP(TOPIC, 1)
    handled(consumer, held, range(10, 20), committed=10)
    handled(consumer, free, range(0, 5), committed=0)
    assert commit(consumer, {held: 15}) == {held: 15, free: 5}
    assert commit(consumer, {}) == {held: 20}
    assert commit(consumer, {}) == {}


def test_a_cap_at_the_committed_offset_commits_nothing_until_it_moves(consumer) -> None:
    tp = TP(TOPIC, 2)
    handled(consumer, tp, range(10, 20), committed=10)
    assert commit(consumer, {tp: 10}) == {}
    assert commit(consumer, {tp: 12}) == {tp: 12}
    handled(consumer, tp, range(20, 25), committed=12)
    assert commit(consumer, {}) == {tp: 25}


def test_offsets_never_acknowledged_hold_a_partition_faust_holds_no_commit_for(consumer) -> None:
    tp = TP(TOPIC, 3)
    # Offsets 0 to 11 were fetched and dropped on their way to a stream, never acked.
    consumer._fetched_from[tp] = 0
    handled(consumer, tp, range(12, 15), committed=None)
    assert consumer.has_gap(tp)
    handled(consumer, tp, range(0, 12), committed=None)
    consumer._acked[tp].sort()
    assert not consumer.has_gap(tp)


def test_reading_starts_at_records_fetched_that_faust_dropped_before_its_streams(
    consumer, monkeypatch
) -> None:
    # A worker given a partition never committed: its first batch (offsets 7 to 20) was
    # fetched, and dropped as the group's generation changed; the next starts at 21.
    tp = TP(TOPIC, 4)
    batches = [[7, 8, 20], [21, 22]]

    async def fetched(self, timeout: float) -> tuple[dict, set]:
        return {tp: [SimpleNamespace(offset=o) for o in batches.pop(0)]}, {tp}

    monkeypatch.setattr(FaustConsumer, "_wait_next_records", fetched)
    for _ in range(2):
        asyncio.run(consumer._wait_next_records(1.0))
    assert consumer.commit_base(tp) == 7
    handled(consumer, tp, range(21, 23), committed=None)
    assert consumer.has_gap(tp)


def test_the_fetch_position_is_read_where_the_pinned_faust_keeps_its_aiokafka_consumer(
    consumer,
) -> None:
    # Faust runs aiokafka's consumer in its consumer thread, as ``_thread._consumer``; not
    # started, there is none, and no position.
    assert hasattr(consumer._thread, "_consumer")
    assert consumer.fetch_position(TP(TOPIC, 0)) is None
    assert consumer.delivering is False


def test_the_watchdog_finds_queued_messages_where_the_pinned_faust_keeps_them() -> None:
    # agents.compat.offsets reads the channels of a partition from faust's conductor, and
    # the events waiting in each channel's queue.
    assert isinstance(app.topics._tp_index, Mapping)
    channel = topics.metrics.clone(is_iterator=True)
    assert isinstance(channel.queue._queue, deque)


def test_a_seek_is_made_in_the_consumer_thread(consumer, monkeypatch) -> None:
    # Made from the event loop's thread, it raced aiokafka's fetcher in the consumer thread,
    # and the KeyError crashed a worker.
    calls = []

    class ConsumerThread:
        def seek(self, tp: TP, offset: int) -> None:
            raise AssertionError("sought outside the consumer thread")

        async def call_thread(self, fun, *args) -> None:
            assert fun == self.seek
            calls.append(args)

    monkeypatch.setattr(consumer, "_thread", ConsumerThread())
    tp = TP(TOPIC, 4)
    asyncio.run(consumer.seek(tp, 17))
    assert calls == [(tp, 17)]
    assert consumer._read_offset.pop(tp) == 17


def test_a_copy_of_a_message_acknowledged_before_is_no_longer_being_handled(
    consumer, monkeypatch
) -> None:
    # A seek back reads again messages acknowledged already; faust kept their copies among
    # the messages being handled, and a partition so looked busy for good.
    monkeypatch.setattr(app.topics, "_acking_topics", {TOPIC})
    tp = TP(TOPIC, 7)

    def delivered(offset: int) -> Message:
        message = Message(TOPIC, tp.partition, offset, 0.0, 0, {}, b"k", b"v", None, tp=tp)
        consumer.track_message(message)
        return message

    first, copy = delivered(3), delivered(3)
    assert consumer.ack(first)
    assert not consumer.ack(copy)
    assert copy not in consumer.unacked and first not in consumer.unacked


def test_a_message_faust_marked_acknowledged_is_no_longer_being_handled(
    consumer, monkeypatch
) -> None:
    monkeypatch.setattr(app.topics, "_acking_topics", {TOPIC})
    tp = TP(TOPIC, 8)
    done, busy = (Message(TOPIC, 8, o, 0.0, 0, {}, b"k", b"v", None, tp=tp) for o in (4, 5))
    for message in (done, busy):
        consumer.track_message(message)
    # Marked acknowledged, yet left in faust's set (seen for a partition's last message
    # read again after a seek back).
    done.acked = True
    assert consumer.being_handled() == [busy]
    assert done not in consumer.unacked and busy in consumer.unacked
    consumer.unacked.discard(busy)


def test_an_agents_stream_names_its_topics_where_the_pinned_faust_keeps_them() -> None:
    # agents.compat.offsets.ordered learns the topics a reader reads from its stream, before
    # any message comes, to hold their partitions' commits until it has had one.
    from agents.metrics import metrics

    assert metrics.stream().channel.topics == (topics.metrics.get_topic_name(),)
