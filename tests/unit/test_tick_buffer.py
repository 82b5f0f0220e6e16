"""The region evaluator's buffer releases observations exactly as a heap of them would."""

from __future__ import annotations

import heapq
import math
import random

import pytest

from models.brains.event_time import TickBuffer


def _heap_until(heap: list, ts: float) -> list:
    out = []
    while heap and heap[0][0] <= ts:
        out.append(heapq.heappop(heap))
    return out


@pytest.mark.parametrize("tick_s", [5.0, 0.3, 1.0 / 3.0, 7.25])
def test_releases_in_the_order_of_a_heap_late_items_and_odd_ticks_included(tick_s):
    rng = random.Random(int(tick_s * 1000))
    buffer, heap = TickBuffer(tick_s), []
    seq, now, released = 0, 1_790_000_000.0, 0
    for _ in range(3_000):
        action = rng.random()
        if action < 0.75:
            # Mostly ahead of the releases, sometimes late; ties of event time across sources.
            ts = round(now + rng.uniform(-3 * tick_s, 6 * tick_s), rng.choice([0, 1, 6]))
            item = (ts, rng.choice("abc"), seq, "body")
            seq += 1
            buffer.push(item)
            heapq.heappush(heap, item)
        elif action < 0.95:
            # Release up to a time that need not be a multiple of tick_s.
            now += rng.uniform(0, 2 * tick_s)
            expected = _heap_until(heap, now)
            assert buffer.pop_until(now) == expected
            released += len(expected)
        elif heap:
            assert buffer.pop_first() == heapq.heappop(heap)
        assert len(buffer) == len(heap)
        assert buffer.first_index() == (None if not heap else math.ceil(heap[0][0] / tick_s))
    assert released > 1_000
    assert buffer.items() == sorted(heap)


def test_the_first_index_is_the_tick_of_the_earliest_item():
    buffer = TickBuffer(5.0)
    assert buffer.first_index() is None
    buffer.push((12.0, "a", 0))
    buffer.push((6.0, "a", 1))
    assert buffer.first_index() == 2
    assert buffer.pop_until(10.0) == [(6.0, "a", 1)]
    assert buffer.first_index() == 3


def test_an_empty_buffer_has_nothing_to_pop_and_clear_empties_it():
    buffer = TickBuffer(5.0)
    with pytest.raises(IndexError):
        buffer.pop_first()
    buffer.push((1.0, "a", 0))
    buffer.clear()
    assert len(buffer) == 0 and buffer.pop_until(100.0) == [] and buffer.items() == []
    with pytest.raises(ValueError):
        TickBuffer(0.0)
