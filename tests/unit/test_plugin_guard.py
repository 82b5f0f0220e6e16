"""The plugin guard's clock: what a plugin's own code costs, not what runs around it."""

from __future__ import annotations

import gc
import time

from models.plugins.guard import PluginGuard


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_a_call_over_its_budget_is_an_overrun() -> None:
    guard = PluginGuard(max_failures=2)
    assert guard.call("slow", 0.001, burn, 0.003) == (True, None)
    stats = guard.stats["slow"]
    assert stats.overruns == 1 and not stats.quarantined
    assert stats.seconds >= 0.003
    assert "over its budget of 1.0 ms" in stats.last_error


def test_a_garbage_collection_inside_a_call_is_not_counted_against_the_plugin() -> None:
    heap = [[i] for i in range(300_000)]  # a full collection walks these: tens of ms
    guard = PluginGuard(max_failures=1)
    started = time.thread_time()
    guard.call("allocating", 0.0005, gc.collect)
    assert time.thread_time() - started > 0.0005  # the collection itself did take longer
    stats = guard.stats["allocating"]
    assert stats.overruns == 0 and not stats.quarantined
    assert stats.seconds < 0.0005
    assert len(heap) == 300_000
