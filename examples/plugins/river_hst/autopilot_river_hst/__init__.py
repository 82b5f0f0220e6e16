"""River's Half-Space Trees as a paas-autopilot detector plugin (``river-hst``).

The detector is a River pipeline, ``StandardScaler() | HalfSpaceTrees(...)``: the value is
standardised with its running mean and deviation, then scored by how sparse its region of
the last ``window_size`` values is. Standardising rather than min-max scaling matters: one
10x spike stretches a min-max scaler for good, squeezing every later value into a corner,
whereas it barely moves a running deviation. The trees' limits are then fixed at five
deviations either side; a value beyond them falls in an outermost leaf, which normal values
leave almost empty.

Measured on a daily cycle (100 ± 40, Gaussian noise σ 5) sampled every 10 s, with a 10x
spike and a +150 level shift later (three days, the shift at 2.6 days, and two days, the
shift at 1.75, the canned stream of ``tests/unit/test_example_plugins.py``; noise seeds 1
to 3): after the one-day warm-up, normal values score at most 0.75, so none reaches the
threshold of 0.8; the spike scores 0.90 to 0.91 and every value of the shift's first hour
is flagged (0.85 to 0.90). A shift stays flagged (the 6 h measured) until the window has
learned it, up to a day. Fewer trees (15) bring normal values to 0.79, too near the
threshold; a window shorter than the day is worse: a quarter-day window flags a sixth of
normal values, whose phase of the cycle it has not seen. Cost: 60 to 150 µs per value
(score and learn, on a shared 2-core machine), 219 KB per series
(``models.detect.bank.deep_sizeof``) and 30 KB pickled.

Examples
--------
>>> detector = RIVER_HST.factory()
>>> for i in range(200):
...     detector.learn_one({"value": 100.0 + i % 7})
>>> 0.0 <= detector.score_one({"value": 1_000.0}) <= 1.0
True
>>> RIVER_HST.builtin, RIVER_HST.capabilities
(False, frozenset())
"""

from __future__ import annotations

from river import anomaly, compose, preprocessing

from models.registry import Entry

__all__ = ["RIVER_HST", "make_detector"]

DAY_AT_10_S = 8640
"""Values in a day at one every 10 s: the window, so that it spans a whole daily cycle."""


def make_detector(
    *, seed: int = 7, n_trees: int = 25, height: int = 4, window_size: int = DAY_AT_10_S
) -> compose.Pipeline:
    """A new detector: a River pipeline scoring ``{"value": v}`` in [0, 1].

    The fixed ``seed`` makes two detectors fed the same values give the same scores.

    >>> list(make_detector().steps)
    ['StandardScaler', 'HalfSpaceTrees']
    >>> a, b = make_detector(window_size=10), make_detector(window_size=10)
    >>> for v in [5.0, 6.0, 5.5, 7.0] * 10:
    ...     a.learn_one({"value": v}); b.learn_one({"value": v})
    >>> a.score_one({"value": 50.0}) == b.score_one({"value": 50.0})
    True
    """
    return preprocessing.StandardScaler() | anomaly.HalfSpaceTrees(
        n_trees=n_trees,
        height=height,
        window_size=window_size,
        limits={"value": (-5.0, 5.0)},
        seed=seed,
    )


RIVER_HST = Entry(
    group="detectors",
    name="river-hst",
    factory=make_detector,
    # 219 KB measured with 25 trees of height 4 (module docstring), with headroom.
    max_bytes_per_key=256 * 1024,
    summary="River Half-Space Trees over a day's window of the standardised value",
    # 60 to 150 µs measured; a loaded worker may take several times that.
    max_seconds_per_call=0.002,
    threshold=0.8,
    warmup=DAY_AT_10_S,
)
"""The entry point ``paas_autopilot.detectors:river-hst``."""
