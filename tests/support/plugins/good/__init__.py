"""A well-behaved plugin: the z-score of a value against the running mean and variance."""

from __future__ import annotations

import math

from models.registry import Entry


class RunningZScore:
    """Welford's running mean and variance; the score squashes ``|z|`` into [0, 1).

    It has no ``to_state``: like a River estimator, it is checkpointed by pickling.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def score_one(self, x: dict[str, float]) -> float:
        if self.n < 2:
            return 0.0
        sd = math.sqrt(self.m2 / (self.n - 1)) or 1.0
        z = abs(x["value"] - self.mean) / sd
        return z / (3.0 + z)

    def learn_one(self, x: dict[str, float]) -> None:
        self.n += 1
        delta = x["value"] - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x["value"] - self.mean)


ENTRY = Entry(
    "detectors",
    "zscore",
    RunningZScore,
    max_bytes_per_key=1024,
    summary="z-score against the running mean",
    max_seconds_per_call=0.001,
    threshold=0.5,
)
