"""A plugin whose scores depend on an unseeded random generator."""

from __future__ import annotations

import random

from models.registry import Entry
from tests.support.plugins.good import RunningZScore


class JitteryZScore(RunningZScore):
    """The good z-score, plus noise: two replays of a series disagree."""

    def score_one(self, x: dict[str, float]) -> float:
        return min(1.0, super().score_one(x) + random.random() * 1e-3)


ENTRY = Entry(
    "detectors", "jittery", JitteryZScore, max_bytes_per_key=1024, summary="noisy z-score"
)
