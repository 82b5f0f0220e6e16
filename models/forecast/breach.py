"""Time to breach of a saturating metric: an event-time trend with the probability of a breach.

Memory leaks, filling disks, exhausted connection pools and a burning error budget are
incidents a forecast can prevent. A :class:`BreachForecaster` fits an exponentially weighted
least-squares line to one metric series in event time, forecasts it ``horizon_s`` ahead with
the line's own uncertainty, and gives the probability that it is past ``limit`` by then. A
*risk episode* opens when that probability exceeds :data:`OPEN_PROBABILITY` (0.7) and closes
when it falls below :data:`CLOSE_PROBABILITY` (0.3), e.g. once the trend has recovered or the
service was restarted: the caller publishes one decision per episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

__all__ = [
    "CLOSE_PROBABILITY",
    "DEFAULT_LIMITS",
    "OPEN_PROBABILITY",
    "BreachForecaster",
    "BreachLimit",
    "BreachRisk",
]

OPEN_PROBABILITY = 0.7
"""A risk episode opens when P(breach within the horizon) exceeds this."""
CLOSE_PROBABILITY = 0.3
"""An open risk episode closes when P(breach within the horizon) falls below this."""
# The residuals of a metric around its local trend are autocorrelated (a leak has steps, a
# disk fills in bursts), so a least-squares standard error is too small; this widens it.
_SE_INFLATION = 3.0
# Half-lives of the two fits, in units of the limit's ``halflife_s``.
_SCALES = (1.0, 3.0)
# An episode opens only while the slow fit's slope is at least this share of the fast one's.
_AGREEMENT = 0.5
# A fit is trusted once the mean age of its values reaches this many of its half-lives. At
# steady state it is 1/ln 2 = 1.44; before it reaches 1.2 (about four half-lives of history)
# the fit is a shorter window than it is meant to be, and its slope as steep as a fast one's:
# a load surge in a series' first hours then passed the slow fit's agreement as a trend.
_TRUSTED_MEAN_AGE = 1.2
_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class BreachLimit:
    """What a breach of one metric is, how far ahead to look, and what to do about it.

    Parameters
    ----------
    limit
        A value at or above it is a breach.
    horizon_s
        How far ahead a breach is worth a warning, in seconds.
    halflife_s
        Half-life of the trend fit, in event seconds: long enough to see through noise, short
        enough to follow a leak that starts.
    action
        The suggested action of a risk decision.
    min_samples
        Samples a fit needs before it may open an episode; each of its two fits also needs
        about four of its half-lives of event time (so a new series is watched for about
        twelve ``halflife_s`` before its first warning).
    """

    limit: float
    horizon_s: float
    halflife_s: float
    action: str
    min_samples: int = 10

    def __post_init__(self) -> None:
        if not (math.isfinite(self.limit) and self.horizon_s > 0 and self.halflife_s > 0):
            raise ValueError("limit must be finite, horizon_s and halflife_s > 0")
        if self.min_samples < 3:
            raise ValueError("min_samples must be >= 3")

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled (models.native), a frozen dataclass cannot be unpickled field by field.
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)


DEFAULT_LIMITS: dict[str, BreachLimit] = {
    "mem_util": BreachLimit(0.95, 2 * 3600.0, 1800.0, "restart_before_oom"),
    "disk_util": BreachLimit(0.95, 4 * 3600.0, 3600.0, "expand_volume"),
    "conn_pool_util": BreachLimit(1.0, 3600.0, 900.0, "scale_out"),
    "error_budget_used": BreachLimit(1.0, 6 * 3600.0, 3600.0, "freeze_releases"),
}
"""Saturating metrics watched by default: memory and disk (fractions of their allocation, a
breach at 95 %), connection-pool utilisation (exhausted at 1) and the share of the SLO's
error budget used (exhausted at 1)."""


class BreachRisk(NamedTuple):
    """Outcome of :meth:`BreachForecaster.update`."""

    probability: float
    """P(the series is at or past the limit ``horizon_s`` from now); 0.0 while warming up."""
    level: float
    """The fitted level now."""
    trend_per_s: float
    """The fitted slope, in units per second."""
    time_to_breach_s: float
    """When the fitted line reaches the limit, in seconds from now (``inf`` if never)."""
    opens: bool
    """Whether this value opens a risk episode: the one to publish a decision for."""
    in_episode: bool
    """Whether a risk episode is open after this value."""


class BreachForecaster:
    """Event-time trend of one series and the probability of a breach within the horizon.

    Two least-squares lines are fitted, weighted by ``0.5 ** (age / h)`` with ``h`` the
    limit's ``halflife_s`` and three times that, each kept as seven running sums re-centred on
    the latest value, so the cost per value is constant and the state is 16 floats and a flag
    (about 0.7 KiB with the object). Each line's forecast at the horizon is normal, with the
    line's standard error (widened by 3 for autocorrelated residuals); its probability of a
    breach is ``Phi((forecast - limit) / se)``, and the risk is the smaller of the two: a
    trend must show at both time scales, so a step is not extrapolated into a breach. An
    episode also opens only while the slow slope is at least half the fast one: a leak climbs
    at the same rate at both scales, the ramp of a surge is much steeper at the fast one.
    Neither fit is trusted before it has about four of its half-lives of history, so a new
    series gets its first warning after about twelve ``halflife_s`` (3 h for a connection
    pool, 6 h for memory, 12 h for disk and error budget with :data:`DEFAULT_LIMITS`). An
    episode cannot open on a value already past the limit: that is an incident, not a risk; the
    episode is then held open until the probability falls, so no warning arrives afterwards.

    Values with an older timestamp than the latest count as simultaneous with it. Non-finite
    values raise ``ValueError``.

    Parameters
    ----------
    limit
        The metric's :class:`BreachLimit`.

    Examples
    --------

    A leak of 6 % an hour towards a 95 % limit is a risk half an hour before the breach; a
    flat series at 90 % is not.

    >>> from models.forecast.breach import BreachForecaster, BreachLimit
    >>> limit = BreachLimit(0.95, 1800.0, 900.0, "restart_before_oom")
    >>> leak, flat = BreachForecaster(limit), BreachForecaster(limit)
    >>> opened = []
    >>> for i in range(600):
    ...     ts = i * 30.0
    ...     risk = leak.update(ts, 0.70 + 0.06 * ts / 3600 + 0.005 * (-1) ** i)
    ...     if risk.opens:
    ...         opened.append(round(risk.time_to_breach_s / 60))
    ...     quiet = flat.update(ts, 0.90 + 0.005 * (-1) ** i)
    >>> opened  # once, 28 minutes before the breach
    [28]
    >>> quiet.probability < 0.01, quiet.in_episode
    (True, False)

    """

    __slots__ = ("_fits", "_in_episode", "_last_ts", "_limit", "_n")

    def __init__(self, limit: BreachLimit) -> None:
        self._limit = limit
        self._n = 0
        self._last_ts = 0.0
        # Per time scale, weighted sums of 1, t, t^2, x, t*x, x^2 (t relative to the latest
        # value) and of the squared weights (for the effective number of values).
        self._fits = [[0.0] * 7 for _ in _SCALES]
        self._in_episode = False

    @property
    def limit(self) -> BreachLimit:
        return self._limit

    @property
    def in_episode(self) -> bool:
        return self._in_episode

    def update(self, ts: float, x: float) -> BreachRisk:
        """Learn value ``x`` at event time ``ts`` (seconds); return the risk it leaves."""
        if not (math.isfinite(ts) and math.isfinite(x)):
            raise ValueError(f"ts and x must be finite, got ts={ts!r}, x={x!r}")
        dt = ts - self._last_ts if self._n else 0.0
        if dt > 0.0 or self._n == 0:
            self._last_ts = ts
        halflife = self._limit.halflife_s
        xx = x * x
        for scale, fit in zip(_SCALES, self._fits, strict=True):
            s, st, stt, sx, stx, sxx, sw2 = fit
            if dt > 0.0:
                # Re-centre on the new value (t -> t - dt), then age every weight by dt.
                d = 0.5 ** (dt / (scale * halflife))
                fit[0] = s * d + 1.0
                fit[1] = (st - dt * s) * d
                fit[2] = (stt - 2.0 * dt * st + dt * dt * s) * d
                fit[3] = sx * d + x
                fit[4] = (stx - dt * sx) * d
                fit[5] = sxx * d + xx
                fit[6] = sw2 * d * d + 1.0
            else:
                fit[0] = s + 1.0
                fit[3] = sx + x
                fit[5] = sxx + xx
                fit[6] = sw2 + 1.0
        self._n += 1
        return self._risk(x)

    def _line(self, fit: list[float], scale: float) -> tuple[float, float, float] | None:
        """Level now, slope and P(breach at the horizon) of one fit; None while too young."""
        cfg = self._limit
        s, st, stt, sx, stx, sxx, sw2 = fit
        mean_t = st / s
        mean_x = sx / s
        var_t = stt / s - mean_t * mean_t
        if -mean_t < _TRUSTED_MEAN_AGE * scale * cfg.halflife_s or not var_t > 0.0:
            return None
        cov = stx / s - mean_t * mean_x
        slope = cov / var_t
        level = mean_x - slope * mean_t
        resid_var = sxx / s - mean_x * mean_x - slope * cov
        if not resid_var > 0.0:
            resid_var = 0.0
        horizon = cfg.horizon_s
        # Variance of the fitted line at the horizon: the mean's, and the slope's lever arm.
        se = _SE_INFLATION * math.sqrt(
            resid_var * sw2 / (s * s) * (1.0 + (horizon - mean_t) ** 2 / var_t)
        )
        gap = level + slope * horizon - cfg.limit
        if se > 0.0:
            probability = 0.5 * math.erfc(-gap / (se * math.sqrt(2.0)))
        else:
            probability = 1.0 if gap >= 0.0 else 0.0
        return level, slope, probability

    def _risk(self, x: float) -> BreachRisk:
        cfg = self._limit
        lines = [self._line(fit, scale) for scale, fit in zip(_SCALES, self._fits, strict=True)]
        if self._n < cfg.min_samples or None in lines:
            return BreachRisk(0.0, x, 0.0, math.inf, False, self._in_episode)
        # The fast fit tells where the series is going; a trend is a risk only if the slow
        # one agrees, so that a step (a load surge) is not extrapolated into a breach.
        (level, slope, p_fast), (_, slow_slope, p_slow) = lines  # type: ignore[misc]
        probability = p_fast if p_fast < p_slow else p_slow
        # A ramp that is not a trend (a surge) is much steeper at the fast scale than at the
        # slow one; a leak climbs at the same rate at both.
        steady = slow_slope >= _AGREEMENT * slope
        if level >= cfg.limit:
            time_to_breach = 0.0
        elif slope > 0.0:
            time_to_breach = (cfg.limit - level) / slope
        else:
            time_to_breach = math.inf
        opens = False
        if self._in_episode:
            if probability < CLOSE_PROBABILITY:
                self._in_episode = False
        elif probability > OPEN_PROBABILITY and steady:
            self._in_episode = True
            opens = level < cfg.limit and x < cfg.limit
        return BreachRisk(probability, level, slope, time_to_breach, opens, self._in_episode)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled through its state: compiled (models.native), it has no constructor without
        # the limit for pickle's default to call.
        return BreachForecaster.from_state, (self.to_state(), self._limit)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot of the fit and the episode (the limit is not included)."""
        return {
            "v": _STATE_VERSION,
            "fits": [list(fit) for fit in self._fits],
            "in_episode": self._in_episode,
            "last_ts": self._last_ts,
            "n": self._n,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], limit: BreachLimit) -> BreachForecaster:
        """Rebuild a forecaster from :meth:`to_state` with the same ``limit``."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported breach state version {state.get('v')!r}")
        forecaster = cls(limit)
        fits = [[float(v) for v in fit] for fit in state["fits"]]
        if len(fits) != len(_SCALES) or any(len(fit) != 7 for fit in fits):
            raise ValueError("breach state has fits of another shape")
        forecaster._fits = fits
        forecaster._in_episode = bool(state["in_episode"])
        forecaster._last_ts = float(state["last_ts"])
        forecaster._n = int(state["n"])
        return forecaster
