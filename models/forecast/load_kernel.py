"""The state and arithmetic of :class:`models.forecast.load.LoadForecaster`, and its forecast.

Kept apart from River's base class so that :mod:`models.native` can compile it with mypyc
(a class with River's metaclass cannot be compiled): every sample of every series goes
through :meth:`LoadForecasterKernel.update` and :meth:`LoadForecasterKernel.forecast_at`.
The same source runs as plain Python when no compiled build of it is installed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

__all__ = ["DAY_S", "EXPERTS", "HOURS_PER_WEEK", "WEEK_S", "Forecast", "LoadForecasterKernel"]

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
HOURS_PER_WEEK = 168
# 1970-01-01 was a Thursday; shifting by 3 days makes Monday day 0 of the week.
_EPOCH_WEEKDAY = 3
# Distinct horizons whose nearest tracked horizon a forecaster remembers.
_NEAREST_CACHED = 8
# Weight of each new interval between samples in the typical sampling interval, as in
# :class:`models.detect.anomaly.SeriesDetector`: a hundred intervals make the estimate.
_STEP_RATE = 0.01


@dataclass(frozen=True, slots=True)
class Forecast:
    """Demand expected ``horizon_s`` seconds ahead, with a prediction interval."""

    mean: float
    lower: float
    upper: float
    horizon_s: float

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled (models.native), a frozen dataclass cannot be unpickled field by field.
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)


def _weekday(ts: float) -> int:
    return (int(ts // DAY_S) + _EPOCH_WEEKDAY) % 7


class _EWHistogram:
    """Exponentially time-weighted histogram of log residuals, queried for quantiles.

    Weights grow with time instead of old counts decaying, so an update touches one bin;
    everything is rescaled before the weights overflow.

    Hand-written rather than from :mod:`river.stats` (#16), measured with river 0.26.1:
    ``Quantile`` (P², 0.2 µs an update against 1.5 µs here) never forgets and tracks one
    quantile chosen in advance, where callers choose the coverage per forecast (the
    predictive policy asks for two); ``RollingQuantile`` forgets by count, not by time.
    Their quantiles differ from these, so a swap would change decisions.
    """

    __slots__ = ("_quantiles", "counts", "half_width", "n_bins", "t0", "tau_s", "total", "width")

    def __init__(self, half_width: float, n_bins: int, tau_s: float) -> None:
        self.half_width = half_width
        self.n_bins = n_bins
        self.width = 2.0 * half_width / n_bins
        self.tau_s = tau_s
        self.counts = [0.0] * n_bins
        self.total = 0.0
        self.t0: float | None = None
        # Quantiles asked since the last change: a forecast asks the same two per sample, and
        # the histogram changes only when a forecast is scored.
        self._quantiles: dict[float, float] = {}

    def add(self, ts: float, r: float) -> None:
        self._quantiles.clear()
        if self.t0 is None:
            self.t0 = ts
        age = (ts - self.t0) / self.tau_s
        if age > 50.0:
            scale = math.exp(-age)
            self.counts = [c * scale for c in self.counts]
            self.total *= scale
            self.t0 = ts
            age = 0.0
        w = math.exp(age)
        i = int((r + self.half_width) / self.width)
        self.counts[min(max(i, 0), self.n_bins - 1)] += w
        self.total += w

    def effective_count(self, ts: float) -> float:
        if self.t0 is None:
            return 0.0
        return self.total * math.exp(-(ts - self.t0) / self.tau_s)

    def quantile(self, q: float) -> float:
        value = self._quantiles.get(q)
        if value is None:
            value = self._quantiles[q] = self._quantile(q)
        return value

    def _quantile(self, q: float) -> float:
        target = q * self.total
        acc = 0.0
        for i, c in enumerate(self.counts):
            if c > 0.0 and acc + c >= target:
                return -self.half_width + (i + (target - acc) / c) * self.width
            acc += c
        return self.half_width

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled through its state: compiled (models.native), it has no constructor without
        # arguments for pickle's default to call.
        return _EWHistogram, (self.half_width, self.n_bins, self.tau_s), self.to_state()

    def __setstate__(self, state: dict) -> None:
        self.load_state(state)

    def to_state(self) -> dict:
        return {"counts": self.counts, "total": self.total, "t0": self.t0}

    def load_state(self, state: dict) -> None:
        self._quantiles.clear()
        self.counts = list(state["counts"])
        self.total = state["total"]
        self.t0 = state["t0"]


EXPERTS = ("recent", "smooth", "seasonal")


def _event_time(x: dict | None) -> float:
    """The event time ``x["ts"]`` that River's verbs of a forecaster need.

    >>> _event_time({"ts": 60.0})
    60.0
    >>> _event_time(None)
    Traceback (most recent call last):
    ...
    ValueError: a forecaster of event-time series needs x = {"ts": event time in epoch seconds}
    """
    if x is None or "ts" not in x:
        raise ValueError(
            'a forecaster of event-time series needs x = {"ts": event time in epoch seconds}'
        )
    return float(x["ts"])


@mypyc_attr(allow_interpreted_subclasses=True)
class LoadForecasterKernel:
    """The state and arithmetic of :class:`models.forecast.load.LoadForecaster`, which adds
    River's base class: compiled by :mod:`models.native`, which a class with River's
    metaclass cannot be."""

    # Bins of 0.1 in log units, an odd count so that a zero residual sits mid-bin.
    residual_bins = 101
    pending_per_horizon = 12

    def __init__(
        self,
        *,
        slot_s: float = 300.0,
        season_alpha: float = 0.3,
        week_alpha: float = 0.2,
        level_tau_s: float = 120.0,
        trend_tau_s: float = 60.0,
        trend_damp_s: float = 300.0,
        smooth_tau_s: float = 1800.0,
        base_tau_s: float = DAY_S,
        horizons_s: Sequence[float] = (60.0, 180.0, 300.0, 600.0, 900.0, 1800.0),
        interval: float = 0.8,
        residual_tau_s: float = DAY_S,
        ensemble_tau_s: float = 6 * 3600.0,
        ensemble_eta: float = 20.0,
        initial_spread: float = 0.5,
        residual_offset: float = 0.25,
        prior_visits: float = 3.0,
    ) -> None:
        if DAY_S % slot_s:
            raise ValueError("slot_s must divide a day")
        if not 0.0 < interval < 1.0:
            raise ValueError("interval must be in (0, 1)")
        self.slot_s = float(slot_s)
        self.n_slots = int(DAY_S // slot_s)
        self.season_alpha = season_alpha
        self.week_alpha = week_alpha
        self.level_tau_s = level_tau_s
        self.trend_tau_s = trend_tau_s
        self.trend_damp_s = trend_damp_s
        self.smooth_tau_s = smooth_tau_s
        self.base_tau_s = base_tau_s
        self.horizons_s = tuple(sorted(float(h) for h in horizons_s))
        self.interval = interval
        self.residual_tau_s = residual_tau_s
        self.ensemble_tau_s = ensemble_tau_s
        self.ensemble_eta = ensemble_eta
        self.initial_spread = initial_spread
        self.residual_offset = residual_offset
        self.prior_visits = prior_visits

        self.daily = [1.0] * self.n_slots
        self.daily_visits = [0] * self.n_slots
        self.weekly = [1.0] * 7
        self.weekly_visits = [0] * 7
        self.base: float | None = None  # one-day level of y / s
        self.level = 0.0  # fast level of y
        self.trend = 0.0  # per second
        self.smooth = 0.0  # slow level of y
        self.season_level = 0.0  # slow level of y / s
        self.last_ts: float | None = None
        # Typical interval between samples (0.0 until two were seen): a River step.
        self.step_s = 0.0
        self.n_seen = 0
        self.days_seen = 0
        # Running visits of the current slot (index, sum of ratios, count) and day
        # (day number, weekday, sum of ratios, count).
        self._slot_visit: list = [-1, 0.0, 0]
        self._day_visit: list = [-1, 0, 0.0, 0]
        n_h = len(self.horizons_s)
        self._residuals = [
            _EWHistogram(0.05 * self.residual_bins, self.residual_bins, residual_tau_s)
            for _ in range(n_h)
        ]
        # Time-weighted sums of absolute log errors per horizon and expert, and their weight.
        self._loss = [[0.0] * len(EXPERTS) for _ in range(n_h)]
        self._loss_weight = [0.0] * n_h
        self._loss_ts = [0.0] * n_h
        # The experts' weights per horizon, recomputed only after a loss changes.
        self._weight_cache: list[tuple[float, ...] | None] = [None] * n_h
        # Horizon -> index of the nearest tracked horizon, for the few horizons callers ask.
        self._nearest: dict[float, int] = {}
        self._pending: list[deque[tuple[float, ...]]] = [
            deque(maxlen=self.pending_per_horizon) for _ in range(n_h)
        ]
        # How late a pending forecast may still be scored, per horizon.
        self._max_lags = tuple(max(300.0, 0.25 * h) for h in self.horizons_s)
        self._prior: list[float] | Callable[[float], float] | None = None
        # (ts_now, horizon_s, mean) of the last forecast until the state changes: the
        # predictive policy asks twice a sample, for its forecast and for its band.
        self._mean_memo: tuple[float, float, float] | None = None

    # ----------------------------------------------------------------------------- prior
    def set_prior(self, profile: Sequence[float] | Callable[[float], float] | None) -> None:
        """Attach a seasonal prior, or remove it with ``None``.

        ``profile`` is either 168 hour-of-week values (index ``weekday * 24 + hour``, Monday
        0, UTC; rescaled to mean 1) or a callable mapping an epoch timestamp to the relative
        demand at that time (mean about 1). A sequence is part of :meth:`to_state`; a
        callable is not and must be set again after a restore.
        """
        self._mean_memo = None
        if profile is None or callable(profile):
            self._prior = profile
            return
        values = [float(v) for v in profile]
        if len(values) != HOURS_PER_WEEK:
            raise ValueError(f"an hour-of-week prior needs {HOURS_PER_WEEK} values")
        mean = sum(values) / HOURS_PER_WEEK
        if mean <= 0 or min(values) < 0:
            raise ValueError("prior values must be non-negative with a positive mean")
        self._prior = [v / mean for v in values]

    def _prior_factor(self, ts: float) -> float:
        prior = self._prior
        if callable(prior):
            return max(float(prior(ts)), 0.0)
        assert prior is not None  # asked only when a prior is set (_with_prior)
        # Linear interpolation between hour centres, wrapping around the week.
        pos = (ts % WEEK_S) / 3600.0 - 0.5 + _EPOCH_WEEKDAY * 24
        i0 = math.floor(pos)
        frac = pos - i0
        return prior[i0 % 168] * (1.0 - frac) + prior[(i0 + 1) % 168] * frac

    # ---------------------------------------------------------------------- seasonality
    def _own_factors(self, ts: float) -> tuple[float, float, int]:
        """Interpolated daily factor, day-of-week factor, visits of the nearest slot."""
        pos = (ts % DAY_S) / self.slot_s - 0.5
        i0 = math.floor(pos)
        frac = pos - i0
        a, b = i0 % self.n_slots, (i0 + 1) % self.n_slots
        daily = self.daily[a] * (1.0 - frac) + self.daily[b] * frac
        visits = self.daily_visits[a if frac < 0.5 else b]
        return daily, self.weekly[_weekday(ts)], visits

    def seasonal_factor(self, ts: float) -> float:
        """Relative demand expected at ``ts`` (mean about 1), prior included."""
        return self._with_prior(ts, *self._own_factors(ts))

    def _with_prior(self, ts: float, d: float, w: float, visits: int) -> float:
        """The seasonal factor at ``ts`` from :meth:`_own_factors` at ``ts``."""
        own = d * w
        if self._prior is None:
            return own
        weight = self.prior_visits / (self.prior_visits + visits)
        return weight * self._prior_factor(ts) + (1.0 - weight) * own

    def _commit_slot(self) -> None:
        slot, total, n = self._slot_visit
        if n:
            k = self.daily_visits[slot] + 1
            alpha = max(self.season_alpha, 1.0 / k)
            self.daily[slot] += alpha * (total / n - self.daily[slot])
            self.daily_visits[slot] = k

    def _commit_day(self) -> None:
        _, weekday, total, n = self._day_visit
        # The first day is skipped: it is often partial, and the base level it is measured
        # against is still a running mean of a few hours.
        if n and self.days_seen > 1:
            k = self.weekly_visits[weekday] + 1
            alpha = max(self.week_alpha, 1.0 / k)
            self.weekly[weekday] += alpha * (total / n - self.weekly[weekday])
            self.weekly_visits[weekday] = k
        # Keep the learned factors at mean 1 so that the levels carry the scale; factors
        # not learned yet stay at 1.
        factor = 1.0
        for profile, visits in ((self.daily, self.daily_visits), (self.weekly, self.weekly_visits)):
            seen = [v for v, c in zip(profile, visits, strict=True) if c]
            m = sum(seen) / len(seen) if seen else 0.0
            if m > 0:
                profile[:] = [v / m if c else v for v, c in zip(profile, visits, strict=True)]
                factor *= m
        if self.base is not None:
            self.base *= factor
            self.season_level *= factor

    # -------------------------------------------------------------------------- learning
    def learn_one(self, y: float, x: dict | None = None) -> None:
        """River's verb: learn the demand ``y`` observed at event time ``x["ts"]``, as
        :meth:`update`; ``x`` without ``"ts"`` raises ``ValueError``."""
        self.update(_event_time(x), y)

    def update(self, ts: float, y: float) -> None:
        """Learn the demand ``y`` observed at event time ``ts`` (epoch seconds).

        Samples older than the last one are ignored.
        """
        if self.last_ts is not None and ts < self.last_ts:
            return
        self._mean_memo = None
        y = max(float(y), 0.0)
        self._score_pending(ts, y)

        slot = int((ts % DAY_S) // self.slot_s)
        if slot != self._slot_visit[0]:
            self._commit_slot()
            self._slot_visit = [slot, 0.0, 0]
        day = int(ts // DAY_S)
        if day != self._day_visit[0]:
            self._commit_day()
            self.days_seen += 1
            self._day_visit = [day, _weekday(ts), 0.0, 0]

        # The profiles do not change from here to the end of the update: one lookup serves both.
        d, w, visits = self._own_factors(ts)
        z = y / max(self._with_prior(ts, d, w, visits), 1e-9)
        self.n_seen += 1
        if self.base is None or self.last_ts is None:
            self.base = self.season_level = z
            self.level = self.smooth = y
        else:
            dt = ts - self.last_ts
            if dt > 0:
                step = self.step_s
                self.step_s = float(dt) if step == 0.0 else step + _STEP_RATE * (dt - step)
            # While young the slow levels are running means, then EWMAs in time. Inline rather
            # than river.stats.EWMean (#16): its fading factor is fixed, these rates depend on
            # the time since the last sample; even at a fixed rate it differs in the last bits
            # (98 % of 100 000 means, up to 3e-15 relative), and costs 0.15 µs an update (plus
            # 0.12 to read) against 0.10 µs inline, measured with river 0.26.1.
            young = 1.0 / self.n_seen
            self.base += max(1.0 - math.exp(-dt / self.base_tau_s), young) * (z - self.base)
            a_smooth = max(1.0 - math.exp(-dt / self.smooth_tau_s), young)
            self.season_level += a_smooth * (z - self.season_level)
            self.smooth += a_smooth * (y - self.smooth)
            if dt > 0:
                predicted = self.level + self.trend * dt
                a_level = 1.0 - math.exp(-dt / self.level_tau_s)
                new_level = predicted + a_level * (y - predicted)
                a_trend = 1.0 - math.exp(-dt / self.trend_tau_s)
                self.trend += a_trend * ((new_level - self.level) / dt - self.trend)
                self.level = new_level
            else:
                self.level += 0.5 * (y - self.level)

        # A factor learned as 0 (a slot or weekday idle when first seen, e.g. a service
        # unused at night) says nothing about the other profile: the sample teaches it
        # nothing rather than dividing by zero.
        if self.base > 0 and w > 0:
            self._slot_visit[1] += y / (self.base * w)
            self._slot_visit[2] += 1
        if self.base > 0 and d > 0:
            self._day_visit[2] += y / (self.base * d)
            self._day_visit[3] += 1
        self.last_ts = ts
        self._record_pending(ts)

    def _record_pending(self, ts: float) -> None:
        for i, h in enumerate(self.horizons_s):
            pending = self._pending[i]
            # Space the kept forecasts so that about ten are pending per horizon.
            if pending and ts + h - pending[-1][0] < h / 10.0:
                continue
            experts = self._experts(ts, h)
            pending.append((ts + h, self._combine(i, experts), *experts))

    def _score_pending(self, ts: float, y: float) -> None:
        a = target_log = 0.0
        scored = False
        for i, max_lag in enumerate(self._max_lags):
            pending = self._pending[i]
            while pending and pending[0][0] <= ts:
                if not scored:
                    # A sample that scores nothing needs neither log.
                    scored = True
                    a = self._offset()
                    target_log = math.log(y + a)
                target, combined, *experts = pending.popleft()
                if ts - target > max_lag:
                    continue
                self._residuals[i].add(ts, target_log - math.log(combined + a))
                decay = math.exp(-max(ts - self._loss_ts[i], 0.0) / self.ensemble_tau_s)
                self._loss_ts[i] = ts
                self._loss_weight[i] = self._loss_weight[i] * decay + 1.0
                self._weight_cache[i] = None
                losses = self._loss[i]
                for k, m in enumerate(experts):
                    losses[k] = losses[k] * decay + abs(target_log - math.log(m + a))

    def _offset(self) -> float:
        return self.residual_offset * max(self.base or 0.0, 1e-9)

    # ------------------------------------------------------------------------- forecast
    def _experts(self, ts_now: float, horizon_s: float) -> tuple[float, float, float]:
        h = max(horizon_s, 0.0)
        last = self.last_ts if self.last_ts is not None else ts_now
        ahead = h + max(ts_now - last, 0.0)
        drift = self.trend * self.trend_damp_s * (1.0 - math.exp(-ahead / self.trend_damp_s))
        recent = max(self.level + drift, 0.0)
        seasonal = self.season_level * self.seasonal_factor(ts_now + h)
        return recent, self.smooth, seasonal

    def expert_weights(self, horizon_s: float) -> tuple[float, ...]:
        """Weights of the ``recent``, ``smooth`` and ``seasonal`` forecasts at a horizon."""
        return self._weights(self._horizon_index(horizon_s))

    def _weights(self, i: int) -> tuple[float, ...]:
        weights = self._weight_cache[i]
        if weights is None:
            weights = self._weight_cache[i] = self._compute_weights(i)
        return weights

    def _compute_weights(self, i: int) -> tuple[float, ...]:
        if self._loss_weight[i] <= 0.0:
            return tuple(1.0 / len(EXPERTS) for _ in EXPERTS)
        mean_losses = [loss / self._loss_weight[i] for loss in self._loss[i]]
        best = min(mean_losses)
        raw = [math.exp(-self.ensemble_eta * (m - best)) for m in mean_losses]
        total = sum(raw)
        return tuple(r / total for r in raw)

    def _combine(self, i: int, experts: Sequence[float]) -> float:
        return sum(w * m for w, m in zip(self._weights(i), experts, strict=True))

    def _horizon_index(self, horizon_s: float) -> int:
        index = self._nearest.get(horizon_s)
        if index is None:
            hs = self.horizons_s
            index = min(range(len(hs)), key=lambda i: abs(hs[i] - horizon_s))
            if len(self._nearest) < _NEAREST_CACHED:
                self._nearest[horizon_s] = index
        return index

    def _spread(self, ts_now: float, i: int, interval: float) -> tuple[float, float]:
        hist = self._residuals[i]
        if hist.effective_count(ts_now) < 20.0:
            return -self.initial_spread, self.initial_spread
        lo_q = (1.0 - interval) / 2.0
        return hist.quantile(lo_q), hist.quantile(1.0 - lo_q)

    def forecast(self, horizon: int, xs: Sequence[dict] | None = None) -> list[float]:
        """River's verb: the mean demand at each of ``horizon`` steps after the last sample.

        Step ``i`` is at ``xs[i]["ts"]`` if ``xs`` is given, else ``i + 1`` times
        :attr:`step_s` after :attr:`last_ts`. Before any sample the forecast is all zeros.
        """
        if xs is not None and len(xs) != horizon:
            raise ValueError(f"xs has {len(xs)} steps for a horizon of {horizon}")
        if self.last_ts is None:
            return [0.0] * horizon
        now = self.last_ts
        ahead = (
            [_event_time(x) - now for x in xs]
            if xs is not None
            else [(i + 1) * self.step_s for i in range(horizon)]
        )
        return [self.forecast_at(now, h).mean for h in ahead]

    def forecast_at(
        self, ts_now: float, horizon_s: float, interval: float | None = None
    ) -> Forecast:
        """Forecast the demand at ``ts_now + horizon_s`` (horizons up to 30 minutes).

        ``interval`` overrides the coverage of the prediction interval for this forecast
        (e.g. a wider band to tell a surge from noise). Before any sample the forecast is
        all zeros.
        """
        if self.base is None:
            return Forecast(0.0, 0.0, 0.0, float(horizon_s))
        i = self._horizon_index(horizon_s)
        memo = self._mean_memo
        if memo is not None and memo[0] == ts_now and memo[1] == horizon_s:
            mean = memo[2]
        else:
            mean = self._combine(i, self._experts(ts_now, horizon_s))
            self._mean_memo = (ts_now, horizon_s, mean)
        lo, hi = self._spread(ts_now, i, self.interval if interval is None else interval)
        a = self._offset()
        return Forecast(
            mean=mean,
            lower=max((mean + a) * math.exp(min(lo, 0.0)) - a, 0.0),
            upper=(mean + a) * math.exp(max(hi, 0.0)) - a,
            horizon_s=float(horizon_s),
        )

    # ---------------------------------------------------------------------------- state
    _PARAMS: ClassVar[tuple[str, ...]] = (
        "slot_s",
        "season_alpha",
        "week_alpha",
        "level_tau_s",
        "trend_tau_s",
        "trend_damp_s",
        "smooth_tau_s",
        "base_tau_s",
        "horizons_s",
        "interval",
        "residual_tau_s",
        "ensemble_tau_s",
        "ensemble_eta",
        "initial_spread",
        "residual_offset",
        "prior_visits",
    )
    _STATE: ClassVar[tuple[str, ...]] = (
        "daily",
        "daily_visits",
        "weekly",
        "weekly_visits",
        "base",
        "level",
        "trend",
        "smooth",
        "season_level",
        "last_ts",
        "n_seen",
        "days_seen",
        "_slot_visit",
        "_day_visit",
        "_loss",
        "_loss_weight",
        "_loss_ts",
    )

    def to_state(self) -> dict:
        """JSON-friendly state (hyper-parameters included) for checkpointing."""
        state = {k: getattr(self, k) for k in self._STATE}
        state["params"] = {k: getattr(self, k) for k in self._PARAMS}
        state["residuals"] = [h.to_state() for h in self._residuals]
        state["pending"] = [[list(p) for p in pending] for pending in self._pending]
        state["prior"] = self._prior if isinstance(self._prior, list) else None
        state["step_s"] = self.step_s
        return state

    @classmethod
    def from_state(cls, state: dict) -> LoadForecasterKernel:
        """Rebuild a forecaster from :meth:`to_state`."""
        f = cls(**state["params"])
        for k in cls._STATE:
            value = state[k]
            if isinstance(value, list):
                value = [list(v) if isinstance(v, list) else v for v in value]
            setattr(f, k, value)
        for hist, s in zip(f._residuals, state["residuals"], strict=True):
            hist.load_state(s)
        for pending, items in zip(f._pending, state["pending"], strict=True):
            pending.extend(tuple(float(x) for x in item) for item in items)
        if state["prior"] is not None:
            f._prior = list(state["prior"])
        # Checkpoints older than River's verbs have no step: it is learned again.
        f.step_s = state.get("step_s", 0.0)
        return f
