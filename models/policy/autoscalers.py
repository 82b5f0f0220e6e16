"""Autoscalers: one replica count per step from the metrics observed at that step.

:class:`HPAPolicy` is the Kubernetes HPA (the baseline); :class:`PredictivePolicy` is the
forecaster, capacity estimator and predictive scaler that the metrics brain runs for every
series, and that ``autopilot bench scaling`` drives over demand traces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from models.forecast.capacity import CapacityEstimator
from models.forecast.load import Forecast, LoadForecaster
from models.policy.hpa import HPAScaler
from models.policy.scaling import PredictiveScaler, ScalingRecommendation

__all__ = ["PREDICTIVE_CONFIG", "HPAPolicy", "PredictivePolicy", "ScalingPolicy", "make_policy"]

# The predictive policy the worker runs and the bench measures. The forecast is sized at
# its 60 % quantile (a 20 % central interval) because the target utilisation already holds
# ``1 / target - 1`` of headroom; the scale-down window is 60 s rather than the HPA's 300 s
# because the forecast already looks ``startup_delay_s`` ahead, so a longer hold only adds
# replica-hours.
PREDICTIVE_CONFIG = {"interval": 0.2, "scale_down_window_s": 60.0}


class ScalingPolicy(Protocol):
    """What the simulator drives: one decision per step from observed metrics."""

    name: str

    def decide(
        self, ts: float, rps: float, ready: int, requested: int, cpu_util: float
    ) -> int | None:
        """Return the new requested replica count, or ``None`` to keep it."""
        ...


class HPAPolicy:
    """The Kubernetes HPA: sees only the CPU utilisation of ready replicas."""

    name = "hpa"

    def __init__(self, hpa: HPAScaler) -> None:
        self.hpa = hpa

    def decide(
        self, ts: float, rps: float, ready: int, requested: int, cpu_util: float
    ) -> int | None:
        desired = self.hpa.recommend(ts, requested, cpu_util, ready_replicas=ready)
        return None if desired == requested else desired


class PredictivePolicy:
    """Forecaster + capacity estimator + predictive scaler, all learned online."""

    name = "predictive"

    def __init__(
        self,
        scaler: PredictiveScaler,
        forecaster: LoadForecaster | None = None,
        capacity: CapacityEstimator | None = None,
    ) -> None:
        self.scaler = scaler
        self.forecaster = forecaster if forecaster is not None else LoadForecaster()
        self.capacity = capacity if capacity is not None else CapacityEstimator()
        self.last_forecast: Forecast | None = None
        self.last_recommendation: ScalingRecommendation | None = None

    def decide(
        self, ts: float, rps: float, ready: int, requested: int, cpu_util: float
    ) -> int | None:
        self.forecaster.learn_one(ts, rps)
        self.capacity.learn_one(rps, ready, cpu_util)
        capacity = self.capacity.capacity
        self.last_forecast = self.forecaster.forecast(ts, self.scaler.horizon_s)
        if capacity is None:
            return None
        rec = self.scaler.recommend(ts, requested, rps, self.last_forecast, capacity)
        self.last_recommendation = rec
        return None if rec is None else rec.desired_replicas


def make_policy(
    name: str,
    target_utilisation: float,
    *,
    min_replicas: int = 1,
    max_replicas: int = 100,
    startup_delay_s: float = 180.0,
    prior: Sequence[float] | Callable[[float], float] | None = None,
) -> ScalingPolicy:
    """Build ``"hpa"`` (Kubernetes defaults) or ``"predictive"`` (:data:`PREDICTIVE_CONFIG`,
    package defaults otherwise)."""
    if name == "hpa":
        return HPAPolicy(
            HPAScaler(target_utilisation, min_replicas=min_replicas, max_replicas=max_replicas)
        )
    if name == "predictive":
        forecaster = LoadForecaster(interval=PREDICTIVE_CONFIG["interval"])
        if prior is not None:
            forecaster.set_prior(prior)
        scaler = PredictiveScaler(
            target_utilisation,
            horizon_s=startup_delay_s,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_down_window_s=PREDICTIVE_CONFIG["scale_down_window_s"],
        )
        return PredictivePolicy(scaler, forecaster)
    raise ValueError(f"unknown policy {name!r}")
