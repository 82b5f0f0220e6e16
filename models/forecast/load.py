"""Online demand forecasting with daily and weekly cycles, for one (service, region).

The forecaster's state and arithmetic are :mod:`models.forecast.load_kernel`'s, compiled
when a build is installed (:mod:`models.native`).
"""

from __future__ import annotations

from river import time_series

from models.forecast.load_kernel import (
    DAY_S,
    EXPERTS,
    HOURS_PER_WEEK,
    WEEK_S,
    Forecast,
    LoadForecasterKernel,
)

__all__ = ["DAY_S", "EXPERTS", "HOURS_PER_WEEK", "WEEK_S", "Forecast", "LoadForecaster"]


class LoadForecaster(LoadForecasterKernel, time_series.base.Forecaster):
    """Forecast demand (e.g. rps) up to 30 minutes ahead from an irregular event-time stream.

    It is a River :class:`~river.time_series.base.Forecaster`: ``learn_one(y, x)`` learns
    ``y`` at event time ``x["ts"]`` and ``forecast(horizon, xs)`` gives the mean demand at
    ``horizon`` steps, so it can be used in River pipelines and any River forecaster in its
    place (:class:`models.forecast.river_forecaster.RiverForecaster`). The brain calls the
    native verbs :meth:`update` and :meth:`forecast_at`, which take event times and give the
    prediction interval too.

    Three forecasts ("experts") are combined, each good at a different kind of load:

    * ``recent``: a fast level with a damped trend (Holt's method for irregular spacing),
      for ramps and short horizons;
    * ``smooth``: a slow level, for noisy load without a usable cycle;
    * ``seasonal``: a deseasonalised level times the seasonal factor at the target time,
      ``s(t) = D[time-of-day slot] * W[day-of-week]``, for daily and weekly cycles. The daily
      profile has ``86400 / slot_s`` slots (interpolated between slot centres), the week seven
      day factors; both are learned by EWMA of ``y / base`` (``base``: a one-day level), each
      slot (day) updated once per *visit* with the visit mean, so the learning rate does not
      depend on how often samples arrive.

    The combination is an exponentially weighted average forecaster: at each horizon of
    ``horizons_s``, expert ``k`` gets weight ``exp(-ensemble_eta * loss_k)`` where ``loss_k``
    is its time-weighted mean absolute log error at that horizon. Forecasts are kept until
    their target time passes to measure those errors, and the residuals of the combination
    fill an exponentially time-weighted histogram per horizon, whose quantiles give the
    prediction interval. Errors and residuals are taken on ``log(y + a)`` with ``a =
    residual_offset * base``, so that they are relative for busy services and additive
    near zero demand. Other horizons use the nearest tracked ones.

    An optional seasonal prior (:meth:`set_prior`), e.g. an hour-of-week profile from the
    usage-pattern learner, is blended into ``s`` with weight ``prior_visits / (prior_visits
    + visits of the slot)``, so it dominates while the forecaster's own profile is young.

    Time slots use UTC event time (seconds since the epoch). A River step is the series'
    typical sampling interval :attr:`step_s` (an exponentially weighted mean of the intervals
    between samples, each weighing 1 %), unless ``xs`` gives each step's time.

    Parameters
    ----------
    slot_s
        Width of a time-of-day slot; must divide a day.
    season_alpha, week_alpha
        EWMA weight of one visit of a time-of-day slot (a day of the week). The first visits
        are averaged (weight ``1 / visits``) so a young profile learns at once.
    level_tau_s, trend_tau_s, trend_damp_s
        Time constants of the fast level and its trend, and of the trend damping (a trend
        adds at most ``trend * trend_damp_s``).
    smooth_tau_s
        Time constant of the slow level, and of the seasonal expert's deseasonalised level.
    base_tau_s
        Time constant of the one-day base level the profiles are learned against.
    horizons_s
        Horizons at which errors and residuals are tracked.
    interval
        Coverage of the prediction interval (0.8 gives the 10 % and 90 % quantiles).
    residual_tau_s
        Memory of the residual histograms.
    ensemble_tau_s, ensemble_eta
        Memory of the experts' losses, and how sharply the lowest loss wins.
    initial_spread
        Half-width, in log units, of the interval before residuals are known.
    residual_offset
        ``a / base`` in the error measure above.
    prior_visits
        Strength of the seasonal prior, in slot visits.

    Notes
    -----
    Memory per key is bounded and independent of the stream length: ``2 * 86400 / slot_s``
    floats for the daily profile and its visit counts (576 with the default 5-minute
    slots), 14 for the week, and per horizon 101 histogram bins, 3 losses and at most 12
    pending forecasts of 5 floats: about 1 400 floats in all, some 33 KiB as Python floats
    in lists (48 KiB declared in :mod:`models.registry`, checked by ``tests/conformance``),
    plus a 168-float prior when one is set. Idle keys are evicted by the owner (see
    ``last_ts``).

    Examples
    --------
    A demand with a daily cycle between 50 and 150, sampled every 5 minutes for four days:

    >>> import math
    >>> f = LoadForecaster()
    >>> def demand(ts):
    ...     return 100 + 50 * math.sin(2 * math.pi * ts / 86_400)
    >>> for ts in range(0, 4 * 86_400, 300):
    ...     f.update(ts, demand(ts))
    >>> now = 4 * 86_400 - 300
    >>> fc = f.forecast_at(now, horizon_s=1800)
    >>> abs(fc.mean - demand(now + 1800)) < 5
    True
    >>> fc.lower <= demand(now + 1800) <= fc.upper
    True

    River's verbs: the next six 5-minute steps are those 30 minutes.

    >>> f.step_s
    300.0
    >>> means = f.forecast(horizon=6)
    >>> means[-1] == fc.mean
    True
    >>> f.learn_one(demand(now + 300), x={"ts": now + 300})
    >>> f.last_ts == now + 300
    True
    """
