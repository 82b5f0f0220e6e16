"""The edge handles each partition's messages in their order, also when faust drops some on
their way (agents.compat.offsets.in_order): what comes past a gap waits for the gap."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

from agents.compat import offsets
from agents.runtime import checkpoints
from streams.runtime.commits import BarrierCommits

PARTITION = TP("telemetry.interactions", 1)
COMMITTED = 100


@pytest.fixture
def reader(monkeypatch):
    """Offers offsets to the edge's order, as a stream delivers them; returns those handled,
    and records the seeks and the clock."""
    seeks: list[int] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append(offset)

    # The offsets the log holds no record at (transactions' markers); every other one has.
    markers: set[int] = set()

    async def first_offset(tp: TP, offset: int, before: int) -> int:
        while offset < before and offset in markers:
            offset += 1
        return offset

    consumer = SimpleNamespace(
        _committed_offset={PARTITION: COMMITTED}, seek=seek, assignment=lambda: {PARTITION}
    )
    # The worker's consumer says where reading starts.
    consumer.commit_base = lambda tp: BarrierCommits.commit_base(consumer, tp)
    monkeypatch.setattr(offsets, "app", SimpleNamespace(consumer=consumer))
    monkeypatch.setattr(offsets, "_next", {})
    monkeypatch.setattr(offsets, "_behind", {})
    monkeypatch.setattr(offsets, "_taken", {})
    monkeypatch.setattr(offsets, "_readers", {})
    monkeypatch.setattr(offsets, "probe", SimpleNamespace(first_offset=first_offset))
    clock = [1000.0]
    monkeypatch.setattr(offsets.time, "monotonic", lambda: clock[0])

    def offer(*arrivals: int, reader: str = "interactions") -> list[int]:
        async def run() -> list[int]:
            return [o for o in arrivals if await offsets.in_order(reader, PARTITION, o)]

        return asyncio.run(run())

    return SimpleNamespace(offer=offer, seeks=seeks, clock=clock, markers=markers)


def test_messages_past_dropped_ones_wait_for_them(reader) -> None:
    # Faust dropped 102 to 104 after a restart; 105 to 107 reach the edge first.
    assert reader.offer(100, 101, 105, 106, 107) == [100, 101]
    assert reader.seeks == [102]
    # Read again from 102: the gap first, then what came past it, each once.
    assert reader.offer(102, 103, 104, 105, 106, 107, 108) == list(range(102, 109))
    assert reader.offer(104, 108) == []


def test_reading_starts_at_the_committed_offset(reader) -> None:
    # The first messages after the committed offset were dropped at start-up.
    assert reader.offer(103, 104) == []
    assert reader.seeks == [COMMITTED]
    assert reader.offer(100, 101, 102, 103, 104) == [100, 101, 102, 103, 104]


def test_messages_dropped_before_any_stream_saw_them_are_read_again(reader) -> None:
    # Faust's fetch loop dropped 100 to 102 before yielding them: the lowest offset fetched
    # is 103, but reading starts at the committed offset.
    offsets.app.consumer._fetched_from = {PARTITION: 103}
    assert reader.offer(103) == []
    assert reader.seeks == [COMMITTED]
    assert reader.offer(100, 101, 102, 103) == [100, 101, 102, 103]


def test_a_partition_never_committed_starts_at_the_lowest_offset_fetched(reader) -> None:
    offsets.app.consumer._committed_offset = {PARTITION: None}
    offsets.app.consumer._fetched_from = {PARTITION: 40}
    assert reader.offer(40, 41) == [40, 41]
    assert reader.seeks == []


def test_a_seek_undone_by_faust_is_made_again(reader) -> None:
    assert reader.offer(100, 105) == [100]
    reader.clock[0] += offsets.RESEEK_AFTER_S / 2
    assert reader.offer(106) == []
    assert reader.seeks == [101]
    reader.clock[0] += offsets.RESEEK_AFTER_S
    assert reader.offer(107) == []
    assert reader.seeks == [101, 101]


def test_offsets_that_never_come_are_given_up_after_a_while(reader) -> None:
    # Deleted by retention while the consumer lagged, say: reading goes on without them.
    assert reader.offer(100, 150) == [100]
    reader.clock[0] += offsets.MAX_BEHIND_S
    assert reader.offer(151, 152) == [151, 152]


def test_a_transactions_marker_is_not_a_gap(reader) -> None:
    reader.markers.update({101, 104, 105})
    assert reader.offer(100, 102, 103, 106) == [100, 102, 103, 106]
    assert reader.seeks == []


def test_one_message_dropped_is_read_again_not_taken_for_a_marker(reader) -> None:
    # Faust drops single messages too: a sample so lost once cost a scaling decision.
    assert reader.offer(100, 102) == [100]
    assert reader.seeks == [101]
    assert reader.offer(101, 102) == [101, 102]


def test_a_marker_before_dropped_messages_is_passed_over(reader) -> None:
    reader.markers.add(101)
    assert reader.offer(100, 104) == [100]
    assert reader.seeks == [102]
    assert reader.offer(102, 103, 104) == [102, 103, 104]


def test_commits_stay_below_the_next_message_to_handle(reader) -> None:
    # 105 and 106, skipped, are acknowledged by faust: a commit must not pass them.
    reader.offer(100, 101, 105, 106)
    assert checkpoints.commit_caps()[PARTITION] == 102


def test_readers_of_one_partition_keep_their_orders_apart(reader) -> None:
    # The actuator and the audit trail both read each decision: each handles it once.
    assert reader.offer(100, 101, reader="actuator") == [100, 101]
    assert reader.offer(100, 101, 102, reader="audit-trail") == [100, 101, 102]
    assert reader.offer(102, reader="actuator") == [102]


def test_a_seek_for_one_reader_gives_the_others_copies_they_skip(reader) -> None:
    assert reader.offer(100, 101, 102, reader="audit-trail") == [100, 101, 102]
    # The actuator's 101 and 102 were dropped on their way: it seeks the partition back.
    assert reader.offer(100, 103, reader="actuator") == [100]
    assert reader.seeks == [101]
    assert reader.offer(101, 102, 103, reader="actuator") == [101, 102, 103]
    assert reader.offer(101, 102, 103, reader="audit-trail") == [103]


def test_commits_stay_below_the_next_message_of_every_reader(reader) -> None:
    reader.offer(100, 101, 102, 103, reader="audit-trail")
    reader.offer(100, 105, reader="actuator")
    assert checkpoints.commit_caps()[PARTITION] == 101


def test_a_partition_that_moves_is_read_from_its_committed_offset_again(reader) -> None:
    reader.offer(100, 101, reader="actuator")
    reader.offer(100, reader="audit-trail")
    asyncio.run(offsets._forget_order(None, {PARTITION}))
    assert offsets._taken == {}
    assert offsets.next_offsets() == {}
    assert reader.offer(100, reader="actuator") == [100]


def test_a_message_given_and_not_finished_holds_the_commit_at_its_offset(reader) -> None:
    # Faust counts 102 acknowledged from a copy skipped before a seek back; the copy read
    # again waits for a checkpoint to end: a commit past it would lose it to a crash.
    assert reader.offer(100, 101, 102) == [100, 101, 102]
    assert checkpoints.commit_caps()[PARTITION] == 102
    offsets.finished("interactions", PARTITION)
    assert checkpoints.commit_caps()[PARTITION] == 103


def test_asking_about_another_message_finishes_the_last(reader) -> None:
    assert reader.offer(100) == [100]
    assert checkpoints.commit_caps()[PARTITION] == 100
    # A copy below, skipped: the reader is done with 100.
    assert reader.offer(99) == []
    assert checkpoints.commit_caps()[PARTITION] == 101


def test_ordered_gives_each_message_once_in_order_and_holds_the_commit_while_handled(
    reader,
) -> None:
    class Stream:
        async def events(self):
            for offset in (100, 101, 100, 102):
                yield SimpleNamespace(message=SimpleNamespace(tp=PARTITION, offset=offset))

    async def read() -> list[tuple[int, int]]:
        return [
            (event.message.offset, checkpoints.commit_caps()[PARTITION])
            async for event in offsets.ordered("interactions", Stream())
        ]

    assert asyncio.run(read()) == [(100, 100), (101, 101), (102, 102)]
    assert checkpoints.commit_caps()[PARTITION] == 103
