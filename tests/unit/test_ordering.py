"""In-order delivery (:mod:`streams.runtime.ordering`) on a consumer that fetches as faust's
does after a restart: from before a seek, past dropped records, cut short."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from streams.runtime.ordering import MAX_SEEKS_BACK, InOrderDelivery

METRICS, OTHER = TP("telemetry.metrics", 0), TP("telemetry.metrics", 1)
CHANGELOG = TP("paas-autopilot-brains-changelog", 0)


class FetchingConsumer:
    """What the mixin relies on in faust's consumer: each ``getmany`` hands over the next
    planned fetch (cut short after ``handed`` messages, if set), seeks are recorded."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.app = SimpleNamespace(
            topics=SimpleNamespace(acks_enabled_for=lambda topic: "changelog" not in topic)
        )
        self.committed = committed
        self.fetches: list[dict[TP, range]] = []
        self.handed: int | None = None
        self.sought: list[tuple[TP, int]] = []
        self.assigned = set(committed)

    async def _wait_next_records(self, timeout: float):
        fetch = self.fetches.pop(0) if self.fetches else {}
        records = {
            tp: [SimpleNamespace(offset=offset) for offset in offsets]
            for tp, offsets in fetch.items()
        }
        return records, None

    async def getmany(self, timeout: float):
        records, _ = await self._wait_next_records(timeout)
        handed = 0
        for tp, batch in records.items():
            for record in batch:
                if self.handed is not None and handed >= self.handed:
                    return
                handed += 1
                yield tp, record

    async def _seek(self, partition: TP, offset: int) -> None:
        self.sought.append((partition, offset))

    async def seek(self, partition: TP, offset: int) -> None:
        await self._seek(partition, offset)

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return dict(self.committed)

    def assignment(self) -> set[TP]:
        return self.assigned

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.assigned -= revoked


class Consumer(InOrderDelivery, FetchingConsumer):
    pass


async def delivered(consumer: Consumer, *fetches: dict[TP, range]) -> list[tuple[TP, int]]:
    """The messages the streams get from ``fetches``, one ``getmany`` each (and one more)."""
    consumer.fetches.extend(fetches)
    found = []
    for _ in range(len(fetches) + 1):
        found += [(tp, m.offset) async for tp, m in consumer.getmany(1.0)]
    return found


async def test_a_fetch_from_before_the_seek_to_committed_is_delivered_from_there_once():
    consumer = Consumer({METRICS: 100})
    await consumer.seek_to_committed()
    got = await delivered(consumer, {METRICS: range(90, 106)}, {METRICS: range(100, 111)})
    assert got == [(METRICS, offset) for offset in range(100, 111)]
    assert consumer.sought == []


async def test_messages_skipped_are_read_again_before_those_after_them():
    consumer = Consumer({METRICS: 100})
    await consumer.seek_to_committed()
    got = await delivered(consumer, {METRICS: range(103, 106)}, {METRICS: range(100, 106)})
    assert consumer.sought == [(METRICS, 100)]
    assert got == [(METRICS, offset) for offset in range(100, 106)]


async def test_other_partitions_are_not_held_up_by_one_sought_back():
    consumer = Consumer({METRICS: 100, OTHER: 0})
    await consumer.seek_to_committed()
    got = await delivered(consumer, {METRICS: range(105, 107), OTHER: range(0, 3)})
    assert got == [(OTHER, 0), (OTHER, 1), (OTHER, 2)]
    assert consumer.sought == [(METRICS, 100)]


async def test_a_fetch_cut_short_is_read_again_from_the_first_message_not_handed_over():
    consumer = Consumer({METRICS: 100})
    await consumer.seek_to_committed()
    consumer.handed = 4
    got = await delivered(consumer, {METRICS: range(100, 110)})
    assert got == [(METRICS, offset) for offset in range(100, 104)]
    assert consumer.sought == [(METRICS, 104)]


async def test_a_partition_never_committed_is_delivered_from_the_start_of_the_log():
    consumer = Consumer({METRICS: None})
    await consumer.seek_to_committed()
    got = await delivered(consumer, {METRICS: range(3, 5)}, {METRICS: range(0, 5)})
    assert consumer.sought == [(METRICS, 0)]
    assert got == [(METRICS, offset) for offset in range(5)]


async def test_changelogs_are_not_checked():
    consumer = Consumer({CHANGELOG: 10})
    await consumer.seek_to_committed()
    got = await delivered(consumer, {CHANGELOG: range(20, 22)})
    assert got == [(CHANGELOG, 20), (CHANGELOG, 21)]
    assert consumer.sought == []


async def test_a_seek_back_by_the_watchdog_delivers_the_offsets_again():
    consumer = Consumer({METRICS: 100})
    await consumer.seek_to_committed()
    await delivered(consumer, {METRICS: range(100, 105)})
    await consumer.seek(METRICS, 100)
    got = await delivered(consumer, {METRICS: range(100, 103)})
    assert got == [(METRICS, 100), (METRICS, 101), (METRICS, 102)]


async def test_offsets_gone_from_the_log_are_given_up_after_a_few_seeks_back():
    consumer = Consumer({METRICS: 100})
    await consumer.seek_to_committed()
    # Retention moved the log's start to 150: each seek back to 100 is reset to 150.
    got = await delivered(consumer, *[{METRICS: range(150, 152)}] * (MAX_SEEKS_BACK + 1))
    assert consumer.sought == [(METRICS, 100)] * MAX_SEEKS_BACK
    assert got == [(METRICS, 150), (METRICS, 151)]


async def test_a_partition_revoked_is_delivered_as_its_next_seek_says():
    consumer = Consumer({METRICS: 100})
    await consumer.seek_to_committed()
    await consumer.on_partitions_revoked({METRICS})
    consumer.assigned.add(METRICS)
    consumer.committed[METRICS] = 300
    await consumer.seek_to_committed()
    got = await delivered(consumer, {METRICS: range(300, 302)})
    assert got == [(METRICS, 300), (METRICS, 301)]
    assert consumer.sought == []
