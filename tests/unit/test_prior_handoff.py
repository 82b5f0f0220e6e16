"""The metrics agent hands each series the usage profile its interactions taught."""

from __future__ import annotations

import pytest

from agents import interactions, metrics
from models.brains.interactions import InteractionsBrain
from schemas.topics import telemetry_key

MONDAY = 1_704_067_200.0
SERIES = ("api", "eu-west")


@pytest.fixture
def partition_0():
    """The agents' per-partition state, emptied again after the test."""
    yield 0
    interactions.brains.pop(0, None)
    metrics._partition_of.pop(telemetry_key(*SERIES), None)
    metrics.brain.evict_idle(float("inf"))


def test_a_learned_week_becomes_the_forecasters_prior(partition_0: int) -> None:
    teacher = InteractionsBrain(salt=b"test")
    # Eight days of hourly traffic, three times busier from 09:00 to 12:00.
    for hour in range(8 * 24):
        busy = 9 <= hour % 24 < 12
        for _ in range(30 if busy else 10):
            teacher.usage.learn_series(MONDAY + hour * 3600.0, *SERIES)
    assert teacher.prior_for(*SERIES) is not None
    interactions.brains[partition_0] = teacher

    now = MONDAY + 8 * 86_400.0 + 8.5 * 3600.0  # Tuesday 08:30, before the peak
    for i in range(120):
        sample = {"rps": 100.0, "replicas": 4, "cpu_util": 0.5}
        metrics.brain.observe(now - 5.0 * (119 - i), *SERIES, sample)
    metrics._partition_of[telemetry_key(*SERIES)] = partition_0
    before = metrics.brain.forecast(*SERIES, 1800.0).mean

    metrics._hand_priors()

    after = metrics.brain.forecast(*SERIES, 1800.0).mean
    assert after > before * 1.1, (before, after)
