"""Detector plugins for the lab's tests, loaded through ``AUTOPILOT_PLUGIN_MODULES``.

``bench-zscore`` flags a value far from the running mean; ``bench-broken`` raises once it
has learned a few values, as a faulty plugin would.

>>> detector = ZScoreDetector()
>>> for v in [10.0, 11.0, 9.0, 10.0, 11.0, 9.0]:
...     detector.learn_one({"value": v})
>>> detector.score_one({"value": 10.0}) < 0.5 <= detector.score_one({"value": 40.0})
True
"""

from __future__ import annotations

import math

from models.registry import Entry


class ZScoreDetector:
    """River's anomaly detector protocol over a running mean and variance (Welford)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def score_one(self, x: dict[str, float]) -> float:
        """``|z| / (|z| + 4)``: 0.5 at four standard deviations."""
        if self.n < 2:
            return 0.0
        z = abs(x["value"] - self.mean) / (math.sqrt(self.m2 / (self.n - 1)) or 1.0)
        return z / (z + 4.0)

    def learn_one(self, x: dict[str, float]) -> None:
        self.n += 1
        delta = x["value"] - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x["value"] - self.mean)


class BrokenDetector(ZScoreDetector):
    """Raises once it has learned ten values."""

    def learn_one(self, x: dict[str, float]) -> None:
        if self.n >= 10:
            raise RuntimeError("broken on purpose")
        super().learn_one(x)


ZSCORE = Entry(
    "detectors", "bench-zscore", ZScoreDetector, max_bytes_per_key=1024,
    summary="running z-score, for tests", threshold=0.5, warmup=20,
)  # fmt: skip
BROKEN = Entry(
    "detectors", "bench-broken", BrokenDetector, max_bytes_per_key=1024,
    summary="raises after ten values, for tests",
)  # fmt: skip
