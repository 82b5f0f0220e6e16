"""Predictive scaling: size a service for the demand forecast when new replicas are ready."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields
from typing import Any

from models.forecast.load_kernel import Forecast

__all__ = ["PredictiveScaler", "ScalingRecommendation"]


@dataclass(frozen=True, slots=True)
class ScalingRecommendation:
    """A change of replica count, with the evidence behind it.

    ``rule`` names the rule that set the count: ``forecast`` (sized for the forecast upper
    bound), ``surge`` (observed demand above that bound, sized for where its trend leads),
    ``trend`` (observed demand within the bound but rising fast enough to leave it),
    ``fall`` (demand falling below the forecast band, sized for its lower bound),
    ``stabilised`` (a scale-down held at the highest recommendation of the window),
    ``step_limit``, ``min_replicas`` or ``max_replicas``; and, set by
    :class:`~models.policy.autoscalers.PredictivePolicy`, ``surge_memory`` (sized for what
    followed the series' past jumps like the one under way). ``demand`` is the demand sized
    for.
    """

    ts: float
    current_replicas: int
    desired_replicas: int
    rule: str
    reason: str
    observed_rps: float
    forecast_mean: float
    forecast_lower: float
    forecast_upper: float
    horizon_s: float
    capacity_per_replica: float
    utilisation: float
    target_utilisation: float
    demand: float = 0.0

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled (models.native), a frozen dataclass cannot be unpickled field by field.
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)


class PredictiveScaler:
    """Replica count from a demand forecast, the capacity of a replica and a target utilisation.

    ``desired = ceil(demand / (capacity * target_utilisation))`` where ``demand`` is the
    forecast upper bound at ``horizon_s`` (the time a new replica needs to become ready;
    the forecast's upper bound is the quantile to size for, chosen by the caller), unless
    the observed demand says otherwise:

    * **leaving the band upwards** (rules ``surge`` and ``trend``): the observed demand
      plus its current rise over the horizon, ``observed + slope * horizon_s``, when that
      is above the upper bound of ``band`` (a wider interval of the same forecast, so that
      noise stays inside it; ``forecast`` itself if not given). A burst is sized for where
      it is heading, not where it is, since replicas asked now serve only ``horizon_s``
      later. The extrapolation is capped at the
      highest demand of about the last day (``peak_tau_s``), or the observed demand if
      higher: a rise is not assumed to go beyond what the service has seen. The scale-up
      step bound does not apply: it damps forecast errors, not measured load;
    * **falling below the band** (rule ``fall``): observed demand under the band's lower
      bound and falling is sized for the forecast's lower bound, so that a scale-in
      follows the data at once instead of the forecast's lag.

    Then, as the Kubernetes HPA does:

    * no change while the demand sized for is within ``1 ± tolerance`` of what the current
      replicas serve at the target (so noise at a replica boundary does not flap the count);
    * scale-down is stabilised: the count is never set below the highest recommendation of
      the last ``scale_down_window_s`` seconds;
    * each decision moves by at most ``max_step_up`` / ``max_step_down`` replicas
      (``None``: unbounded);
    * the count stays within ``[min_replicas, max_replicas]``.

    Parameters
    ----------
    target_utilisation
        Utilisation the service should run at (0.6 means 60 % of a replica's capacity).
    horizon_s
        Time for a requested replica to become ready; the forecast to pass is for this
        horizon.
    min_replicas, max_replicas
        Bounds of the replica count.
    scale_down_window_s
        Stabilisation window for scale-down.
    max_step_up, max_step_down
        Largest change of one decision.
    tolerance
        Relative band around the target within which the count is kept.
    peak_tau_s
        Time constant of the decaying peak that caps the trend extrapolation.

    Notes
    -----
    Memory is bounded: the stabilisation window keeps at most ``window_entries``
    recommendations (one per decision, older ones dropped; when decisions come faster
    than ``scale_down_window_s / window_entries`` the oldest fall out early), plus the last
    observation, its slope and the decaying peak (four floats).

    Examples
    --------
    >>> from models.forecast.load import Forecast
    >>> scaler = PredictiveScaler(target_utilisation=0.5, max_replicas=50)
    >>> fc = Forecast(mean=900.0, lower=800.0, upper=1000.0, horizon_s=180.0)
    >>> rec = scaler.recommend(0.0, current_replicas=4, observed_rps=700.0, forecast=fc,
    ...                        capacity=100.0)
    >>> rec.desired_replicas, rec.rule
    (20, 'forecast')
    >>> scaler.recommend(15.0, 20, observed_rps=750.0, forecast=fc, capacity=100.0) is None
    True
    """

    window_entries = 256

    def __init__(
        self,
        target_utilisation: float = 0.6,
        *,
        horizon_s: float = 180.0,
        min_replicas: int = 1,
        max_replicas: int = 100,
        scale_down_window_s: float = 300.0,
        max_step_up: int | None = None,
        max_step_down: int | None = None,
        tolerance: float = 0.1,
        peak_tau_s: float = 86_400.0,
    ) -> None:
        if not 0.0 < target_utilisation <= 1.0:
            raise ValueError("target_utilisation must be in (0, 1]")
        if not 1 <= min_replicas <= max_replicas:
            raise ValueError("need 1 <= min_replicas <= max_replicas")
        self.target_utilisation = target_utilisation
        self.horizon_s = horizon_s
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.scale_down_window_s = scale_down_window_s
        self.max_step_up = max_step_up
        self.max_step_down = max_step_down
        self.tolerance = tolerance
        self.peak_tau_s = peak_tau_s
        self._window: deque[tuple[float, int]] = deque(maxlen=self.window_entries)
        self._last: tuple[float, float] | None = None
        self._slope = 0.0
        self._peak = 0.0

    def to_state(self) -> dict:
        """The stabilisation window and the demand's trend, JSON-friendly (hyper-parameters
        and ``horizon_s`` stay as built)."""
        return {
            "window": [list(entry) for entry in self._window],
            "last": None if self._last is None else list(self._last),
            "slope": self._slope,
            "peak": self._peak,
        }

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`to_state` returned."""
        self._window = deque(
            ((float(ts), int(r)) for ts, r in state["window"]), maxlen=self.window_entries
        )
        # States written before the trend was kept start it afresh.
        last = state.get("last")
        self._last = None if last is None else (float(last[0]), float(last[1]))
        self._slope = float(state.get("slope", 0.0))
        self._peak = float(state.get("peak", 0.0))

    def _observe(self, ts: float, rps: float) -> float:
        """Learn one observation; the demand's slope (rps per second) since the last one."""
        last = self._last
        if last is not None and ts <= last[0]:
            return self._slope
        self._last = (ts, rps)
        if last is None:
            self._peak = rps
            return self._slope
        dt = ts - last[0]
        self._peak = max(rps, self._peak * math.exp(-dt / self.peak_tau_s))
        self._slope = (rps - last[1]) / dt
        return self._slope

    def replicas_for(self, demand: float, capacity: float) -> int:
        """Replicas that serve ``demand`` rps at the target utilisation, ``capacity`` rps
        each at 100 % (before the replica bounds)."""
        # The small epsilon keeps an exact multiple from rounding up on float noise.
        return math.ceil(demand / (capacity * self.target_utilisation) - 1e-9)

    def recommend(
        self,
        ts: float,
        current_replicas: int,
        observed_rps: float,
        forecast: Forecast,
        capacity: float,
        band: Forecast | None = None,
    ) -> ScalingRecommendation | None:
        """Decide the replica count at ``ts``; ``None`` when it stays ``current_replicas``.

        ``capacity`` is the rps one replica serves at 100 % utilisation, ``forecast``
        the demand forecast for ``horizon_s`` ahead, and ``band`` the same forecast with a
        wider interval (``forecast`` if ``None``). Each call also learns ``observed_rps``
        for the trend.
        """
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        per_replica = capacity * self.target_utilisation
        slope = self._observe(ts, observed_rps)
        ahead = observed_rps + max(slope, 0.0) * self.horizon_s
        ahead = min(ahead, max(self._peak, observed_rps))
        band = forecast if band is None else band
        surge = ahead > max(band.upper, forecast.upper)
        if surge:
            demand = ahead
            rule = "surge" if observed_rps > band.upper else "trend"
        elif observed_rps < band.lower and slope < 0.0:
            demand = max(band.lower, min(forecast.lower, forecast.upper))
            rule = "fall"
        else:
            demand = forecast.upper
            rule = "forecast"
        raw = self.replicas_for(demand, capacity)
        if current_replicas > 0:
            # As the HPA's tolerance: no change for a near-target load, so that noise
            # around a replica boundary does not flap the count.
            ratio = demand / (current_replicas * per_replica)
            if abs(ratio - 1.0) <= self.tolerance:
                raw = current_replicas
        raw = min(max(raw, self.min_replicas), self.max_replicas)

        while self._window and self._window[0][0] <= ts - self.scale_down_window_s:
            self._window.popleft()
        held = max((r for _, r in self._window), default=raw)
        self._window.append((ts, raw))

        desired = raw
        if desired < current_replicas and held > desired:
            desired = min(held, current_replicas)
            rule = "stabilised"
        if (
            desired > current_replicas
            and not surge
            and self.max_step_up is not None
            and desired - current_replicas > self.max_step_up
        ):
            desired = current_replicas + self.max_step_up
            rule = "step_limit"
        if (
            desired < current_replicas
            and self.max_step_down is not None
            and current_replicas - desired > self.max_step_down
        ):
            desired = current_replicas - self.max_step_down
            rule = "step_limit"
        if desired <= self.min_replicas < current_replicas and raw <= self.min_replicas:
            rule = "min_replicas"
        if desired >= self.max_replicas > current_replicas and raw >= self.max_replicas:
            rule = "max_replicas"
        if desired == current_replicas:
            return None

        utilisation = observed_rps / (current_replicas * capacity) if current_replicas else math.inf
        return ScalingRecommendation(
            ts=ts,
            current_replicas=current_replicas,
            desired_replicas=desired,
            rule=rule,
            reason=self._reason(rule, current_replicas, desired, observed_rps, forecast, demand),
            observed_rps=observed_rps,
            forecast_mean=forecast.mean,
            forecast_lower=forecast.lower,
            forecast_upper=forecast.upper,
            horizon_s=forecast.horizon_s,
            capacity_per_replica=capacity,
            utilisation=utilisation,
            target_utilisation=self.target_utilisation,
            demand=demand,
        )

    def _reason(
        self,
        rule: str,
        current: int,
        desired: int,
        observed: float,
        forecast: Forecast,
        demand: float,
    ) -> str:
        verb = "Scale up" if desired > current else "Scale down"
        target = f"{self.target_utilisation:.0%}"
        h = f"{forecast.horizon_s:.0f} s"
        if rule == "surge":
            return (
                f"{verb} from {current} to {desired}: observed demand {observed:.4g} rps "
                f"exceeds the forecast upper bound {forecast.upper:.4g} and is heading for "
                f"{demand:.4g} in {h}, sized for that at {target}."
            )
        if rule == "trend":
            return (
                f"{verb} from {current} to {desired}: observed demand {observed:.4g} rps is "
                f"rising to {demand:.4g} in {h}, above the forecast upper bound "
                f"{forecast.upper:.4g}; sized for it at {target}."
            )
        if rule == "fall":
            return (
                f"{verb} from {current} to {desired}: observed demand {observed:.4g} rps is "
                f"falling below the forecast band; sized for its lower bound "
                f"{forecast.lower:.4g} at {target}."
            )
        if rule == "stabilised":
            return (
                f"{verb} from {current} to {desired} only: the highest recommendation of the "
                f"last {self.scale_down_window_s:.0f} s holds the rest."
            )
        if rule == "step_limit":
            return f"{verb} from {current} to {desired}: the step per decision is bounded."
        if rule in ("min_replicas", "max_replicas"):
            bound = self.min_replicas if rule == "min_replicas" else self.max_replicas
            return f"{verb} from {current} to {desired}: clamped to {rule} = {bound}."
        return (
            f"{verb} from {current} to {desired}: demand up to {forecast.upper:.4g} rps is "
            f"forecast in {h} (mean {forecast.mean:.4g}), sized for {target} utilisation."
        )
