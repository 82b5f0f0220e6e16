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

from models.registry import Entry
from tests.support.plugins.good import RunningZScore as ZScoreDetector


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
