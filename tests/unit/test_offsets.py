"""The commit watchdog against faust's bookkeeping of one stuck partition, without a broker."""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace

import pytest
from faust.types import TP

from agents.compat import offsets
from streams.runtime.commits import BarrierCommits

PARTITION = TP("telemetry.interactions", 2)


class FakeConsumer(BarrierCommits):
    """The parts of faust's consumer the watchdog reads (with the worker's commit base),
    and a seek that records."""

    def __init__(
        self,
        committed: int | None,
        acked: list[int],
        in_flight: list[int],
        fetched_from: int | None = None,
        position: int | None = None,
    ) -> None:
        self._committed_offset = {PARTITION: committed}
        self.position = position
        self._fetched_from = {} if fetched_from is None else {PARTITION: fetched_from}
        self._acked = {PARTITION: acked}
        self.handling = [SimpleNamespace(tp=PARTITION, offset=o) for o in in_flight]
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return {PARTITION}

    def being_handled(self) -> list[SimpleNamespace]:
        return self.handling

    def fetch_position(self, tp: TP) -> int | None:
        return self.position if tp == PARTITION else None

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


def queue_of(offsets_queued) -> deque:
    """A channel's queue holding events of those messages of the partition."""
    return deque(
        SimpleNamespace(message=SimpleNamespace(tp=PARTITION, offset=o)) for o in offsets_queued
    )


@pytest.fixture
def consumer_of(monkeypatch):
    def install(
        committed: int | None,
        acked: list[int],
        in_flight=(),
        fetched_from=None,
        position=None,
        acks=True,
        queued=(),
        markers=(),
    ) -> FakeConsumer:
        consumer = FakeConsumer(committed, acked, list(in_flight), fetched_from, position)
        # The log: a record at every offset but the markers'. The questions asked of it are
        # recorded; None stands for a broker that does not answer.
        consumer.questions = []

        async def first_offset(tp: TP, offset: int, before: int) -> int | None:
            consumer.questions.append(offset)
            if markers is None:
                return None
            while offset < before and offset in markers:
                offset += 1
            return offset

        recovery = SimpleNamespace(completed=asyncio.Event())
        recovery.completed.set()
        fake_app = SimpleNamespace(
            consumer=consumer,
            rebalancing=False,
            tables=SimpleNamespace(recovery=recovery),
            assignor=SimpleNamespace(assigned_actives=lambda: {PARTITION}),
            topics=SimpleNamespace(
                acks_enabled_for=lambda topic: acks,
                # The channels the partition's messages go to, and whether one holds some.
                _tp_index={
                    PARTITION: [SimpleNamespace(queue=SimpleNamespace(_queue=queue_of(queued)))]
                },
            ),
        )
        monkeypatch.setattr(offsets, "app", fake_app)
        monkeypatch.setattr(offsets, "_gaps", {})
        monkeypatch.setattr(offsets, "_tails", {})
        monkeypatch.setattr(offsets, "_no_records", {})
        monkeypatch.setattr(offsets, "probe", SimpleNamespace(first_offset=first_offset))
        monkeypatch.setattr(offsets, "_next", {})
        monkeypatch.setattr(offsets, "_behind", {})
        return consumer

    return install


def test_a_gap_nothing_is_processing_is_read_again_on_the_second_check(consumer_of) -> None:
    # Offsets 9897 to 9914 were dropped: acknowledged offsets start at 9915.
    consumer = consumer_of(9897, [9915, 9916, 9917])
    asyncio.run(offsets.check_commits())
    assert consumer.seeks == []
    asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 9897)]


@pytest.mark.parametrize(
    ("committed", "acked", "in_flight", "markers"),
    [
        (9897, [9915, 9916], [9897], ()),  # the head of the gap is still being processed
        (9897, [9897, 9898], [], ()),  # no gap
        (9897, [9898], [], {9897}),  # a transaction's marker, which faust commits past
        (9897, [9900], [], {9897, 9898, 9899}),  # markers only
        (9897, [9915], [], None),  # the log does not answer
        (0, [5, 6], [], ()),  # nothing known to be missed: committed at 0, nothing fetched lower
        (None, [5, 6], [], ()),  # nothing committed yet, nor fetched lower
    ],
)
def test_no_seek_without_a_stuck_gap(consumer_of, committed, acked, in_flight, markers) -> None:
    consumer = consumer_of(committed, acked, in_flight, markers=markers)
    for _ in range(3):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == []


@pytest.mark.parametrize("committed", [None, 0])
def test_a_gap_where_faust_holds_no_committed_offset_is_read_again_from_the_lowest_fetched(
    consumer_of, committed
) -> None:
    # Faust holds no committed offset for a partition never committed, or committed at 0:
    # offsets 0 to 11 were fetched and dropped on their way to the streams, never acknowledged.
    consumer = consumer_of(committed, [12, 13, 14], fetched_from=0)
    assert consumer.has_gap(PARTITION)
    for _ in range(2):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 0)]


def test_a_gap_of_one_dropped_message_is_read_again(consumer_of) -> None:
    # Faust commits past a gap of one offset, taking it for a marker: the log says it is not.
    consumer = consumer_of(9897, [9898, 9899])
    for _ in range(2):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 9897)]


def test_a_gap_is_read_again_from_its_first_record_past_markers(consumer_of) -> None:
    consumer = consumer_of(9897, [9905], markers={9897, 9898})
    for _ in range(2):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 9899)]


def test_duplicate_acks_are_removed_so_the_commit_does_not_crawl(consumer_of) -> None:
    # What faust leaves when offsets it took for a gap are read and acknowledged again:
    # its run of consecutive offsets would end at 244, and the commit move by one a round.
    acked = [*range(243, 300), *range(244, 260)]
    consumer = consumer_of(244, acked)
    asyncio.run(offsets.check_commits())
    assert consumer._acked[PARTITION] == list(range(243, 300))
    assert consumer.seeks == []


def test_the_latest_messages_fetched_and_dropped_are_read_again_on_the_second_check(
    consumer_of,
) -> None:
    # 100 to 104 handled (committed up to 102), 105 to 109 fetched and dropped: nothing
    # acknowledged after them shows them missing.
    consumer = consumer_of(103, [103, 104], position=110)
    asyncio.run(offsets.check_commits())
    assert consumer.seeks == []
    asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 105)]


def test_a_dropped_tail_after_a_commit_is_read_again_from_the_committed_offset(
    consumer_of,
) -> None:
    consumer = consumer_of(105, [], position=110)
    for _ in range(2):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 105)]


@pytest.mark.parametrize(
    ("in_flight", "position", "acks", "delivering", "queued", "markers"),
    [
        ([105, 106, 107, 108, 109], 110, True, False, (), ()),  # being processed
        ([], 105, True, False, (), ()),  # every message fetched acknowledged
        ([], 106, True, False, (), {105}),  # one offset: a transaction's marker
        ([], 110, True, False, (), None),  # the log does not answer
        ([], 110, False, False, (), ()),  # a table's changelog: no acks
        ([], None, True, False, (), ()),  # position unknown (being reset)
        ([], 110, True, True, (), ()),  # a batch on its way to the streams
        ([], 110, True, False, range(105, 110), ()),  # waiting in a stream's queue
    ],
)
def test_no_seek_without_a_dropped_tail(
    consumer_of, in_flight, position, acks, delivering, queued, markers
) -> None:
    consumer = consumer_of(
        103, [103, 104], in_flight, position=position, acks=acks, queued=queued, markers=markers
    )
    consumer._delivering = delivering
    for _ in range(3):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == []


def test_the_last_message_of_a_partition_dropped_alone_is_read_again(consumer_of) -> None:
    # A CI run: the failover decision at offset 1, its partition's last, was dropped on its
    # way to the actuator; the check passed over one offset as a marker, and it stayed unread.
    consumer = consumer_of(1, [], position=2)
    for _ in range(2):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 1)]


def test_a_tail_of_markers_is_asked_about_once(consumer_of) -> None:
    consumer = consumer_of(103, [103, 104], position=106, markers={105})
    for _ in range(5):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == []
    assert consumer.questions == [105]


def test_a_tail_that_moves_between_checks_is_not_taken_for_dropped(consumer_of) -> None:
    # A fetch handed faust more between the checks: the streams are still at work.
    consumer = consumer_of(103, [103, 104], position=110)
    asyncio.run(offsets.check_commits())
    consumer.position = 120
    asyncio.run(offsets.check_commits())
    assert consumer.seeks == []


def test_a_reader_waiting_on_the_last_messages_of_a_partition_is_sought_again(
    consumer_of, monkeypatch
) -> None:
    # The edge sought back to 856, dropped on its way; faust undid the seek while 857 and
    # 858 were on theirs, and no later message comes to make the edge seek again.
    # The gap check, which asks the log, finds no answer: the reader's seek alone is tested.
    consumer = consumer_of(856, [857, 858], position=859, markers=None)
    clock = [500.0]
    monkeypatch.setattr(offsets.time, "monotonic", lambda: clock[0])
    key = ("telemetry.interactions", PARTITION)
    offsets._next[key] = 856
    offsets._behind[key] = (490.0, 499.0)
    asyncio.run(offsets.check_commits())
    assert consumer.seeks == []
    clock[0] += offsets.RESEEK_AFTER_S
    asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 856)]


def reading(reader: str, offsets_delivered=()) -> None:
    """``reader`` starts reading the partition's topic in order, and is given those offsets."""

    async def events():
        for offset in offsets_delivered:
            yield SimpleNamespace(message=SimpleNamespace(tp=PARTITION, offset=offset))

    stream = SimpleNamespace(channel=SimpleNamespace(topics=(PARTITION.topic,)), events=events)

    async def run() -> None:
        async for _ in offsets.ordered(reader, stream):
            pass

    asyncio.run(run())


def test_a_partition_no_reader_had_a_message_of_is_committed_no_further_than_its_start(
    consumer_of, monkeypatch
) -> None:
    # Faust's stream skipped 103 to 105 (found in its queue while the flow was suspended)
    # and acknowledged them: no reader had them, and a commit must not pass them.
    monkeypatch.setattr(offsets, "_readers", {})
    monkeypatch.setattr(offsets, "_taken", {})
    consumer_of(103, [103, 104, 105])
    reading("interactions")
    assert offsets.next_offsets() == {PARTITION: 103}
    # Once the reader has had 103 to 105, it is they that hold the commit.
    reading("interactions", [103, 104, 105])
    assert offsets.next_offsets() == {PARTITION: 106}


def test_the_latest_messages_acknowledged_before_a_reader_had_any_are_read_again(
    consumer_of, monkeypatch
) -> None:
    # As above, and nothing was fetched after them: no message comes to show them missing.
    monkeypatch.setattr(offsets, "_readers", {})
    consumer = consumer_of(103, [103, 104, 105], position=106)
    reading("interactions")
    for _ in range(2):
        asyncio.run(offsets.check_commits())
    assert consumer.seeks == [(PARTITION, 103)]
