"""The Wilson score interval of a binomial proportion, for judging ratios of few events.

A ratio of a handful of requests says little: one failure in 87 is a 1.1 % error ratio, yet
a service meeting a 99.9 % objective fails one request in 87 about once in twelve windows.
The interval's bounds shrink towards the observed ratio as events accumulate, so a health
score built on them stays calm on a quiet window and follows the ratio on a busy one.
"""

from __future__ import annotations

import math

__all__ = ["wilson_lower", "wilson_upper"]


def wilson_upper(successes: float, total: float, z: float) -> float:
    """Upper bound of the Wilson score interval of ``successes / total`` at ``z``.

    >>> round(wilson_upper(86, 87, 3.0), 4)
    0.9989
    >>> round(wilson_upper(8600, 8700, 3.0), 4)
    0.9915
    """
    p = successes / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return min(1.0, (centre + spread) / (1 + z2 / total))


def wilson_lower(successes: float, total: float, z: float) -> float:
    """Lower bound of the Wilson score interval of ``successes / total`` at ``z``.

    >>> round(wilson_lower(1, 87, 3.0), 4)
    0.0011
    >>> round(wilson_lower(100, 8700, 3.0), 4)
    0.0085
    """
    return 1.0 - wilson_upper(total - successes, total, z)
