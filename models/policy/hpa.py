"""Kubernetes Horizontal Pod Autoscaler, reimplemented as a baseline.

The algorithm follows the Kubernetes documentation, "Horizontal Pod Autoscaling"
(https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/), sections
"Algorithm details" and "Default behavior", and the controller it describes:

* every sync period (``--horizontal-pod-autoscaler-sync-period``, 15 s) the desired count is
  ``ceil(currentReplicas * currentMetricValue / desiredMetricValue)``, where the metric is
  the mean CPU utilisation of the ready pods;
* no change when the ratio is within ``1 ± tolerance`` (0.1);
* not-yet-ready pods are set aside; when the ratio asks to scale up they are counted as
  using 0 % of the target, and no action is taken if that reverses the direction or falls
  within the tolerance;
* scale-down is stabilised: the controller uses the highest recommendation of the last
  300 s;
* rate limits (the default ``behavior``): scale-up by at most ``max(100 %, 4 pods)`` per 15 s,
  scale-down by at most 100 % per 15 s, both counted from the replicas at the start of the
  policy period;
* finally the count is clamped to ``[minReplicas, maxReplicas]``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["DEFAULT_SCALE_DOWN_POLICIES", "DEFAULT_SCALE_UP_POLICIES", "HPAScaler", "Policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    """One ``HPAScalingPolicy``: change by ``value`` pods or percent per ``period_s``."""

    kind: str
    value: int
    period_s: float

    def __post_init__(self) -> None:
        if self.kind not in ("Pods", "Percent"):
            raise ValueError(f"policy kind must be 'Pods' or 'Percent', got {self.kind!r}")


DEFAULT_SCALE_UP_POLICIES = (Policy("Percent", 100, 15.0), Policy("Pods", 4, 15.0))
DEFAULT_SCALE_DOWN_POLICIES = (Policy("Percent", 100, 15.0),)


class HPAScaler:
    """The HPA control loop for one workload, driven by CPU utilisation.

    Parameters
    ----------
    target_utilisation
        Target mean CPU utilisation of the ready pods, as a fraction (0.6 means 60 %).
    min_replicas, max_replicas
        Bounds of the replica count.
    tolerance
        Ratios within ``1 ± tolerance`` cause no change.
    scale_down_window_s, scale_up_window_s
        Stabilisation windows (defaults 300 s and 0 s).
    scale_up_policies, scale_down_policies
        Rate limits; the most permissive one applies (``selectPolicy: Max``).
    sync_period_s
        Calls closer together than this are ignored, as the controller only runs once per
        period.

    Notes
    -----
    Memory is bounded: the recommendation history holds at most one entry per sync period
    of the longest window, and the scale events at most one per sync period of the longest
    policy period.

    Examples
    --------
    >>> hpa = HPAScaler(target_utilisation=0.5, max_replicas=20)
    >>> hpa.recommend(0.0, current_replicas=2, utilisation=1.0)
    4
    >>> hpa.recommend(15.0, current_replicas=4, utilisation=0.52)  # within tolerance
    4
    >>> hpa.recommend(30.0, current_replicas=4, utilisation=0.1)  # stabilised: keeps 4
    4
    """

    def __init__(
        self,
        target_utilisation: float = 0.6,
        *,
        min_replicas: int = 1,
        max_replicas: int = 100,
        tolerance: float = 0.1,
        scale_down_window_s: float = 300.0,
        scale_up_window_s: float = 0.0,
        scale_up_policies: tuple[Policy, ...] = DEFAULT_SCALE_UP_POLICIES,
        scale_down_policies: tuple[Policy, ...] = DEFAULT_SCALE_DOWN_POLICIES,
        sync_period_s: float = 15.0,
    ) -> None:
        if not target_utilisation > 0.0:
            raise ValueError("target_utilisation must be positive")
        if not 1 <= min_replicas <= max_replicas:
            raise ValueError("need 1 <= min_replicas <= max_replicas")
        self.target_utilisation = target_utilisation
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.tolerance = tolerance
        self.scale_down_window_s = scale_down_window_s
        self.scale_up_window_s = scale_up_window_s
        self.scale_up_policies = scale_up_policies
        self.scale_down_policies = scale_down_policies
        self.sync_period_s = sync_period_s
        window = max(scale_down_window_s, scale_up_window_s)
        period = max(p.period_s for p in (*scale_up_policies, *scale_down_policies))
        self._recommendations: deque[tuple[float, int]] = deque(
            maxlen=int(window / sync_period_s) + 2
        )
        self._up_events: deque[tuple[float, int]] = deque(maxlen=int(period / sync_period_s) + 2)
        self._down_events: deque[tuple[float, int]] = deque(maxlen=int(period / sync_period_s) + 2)
        self._last_sync: float | None = None

    def raw_recommendation(
        self, current_replicas: int, utilisation: float, ready_replicas: int | None = None
    ) -> int:
        """Replica count from the metric alone, before stabilisation and rate limits.

        ``utilisation`` is the mean CPU utilisation of the ready pods; ``ready_replicas``
        defaults to ``current_replicas`` (no pod starting).
        """
        ready = (
            current_replicas if ready_replicas is None else min(ready_replicas, current_replicas)
        )
        unready = current_replicas - ready
        if ready <= 0:
            # The controller has no metrics to act on and leaves the scale alone.
            return current_replicas
        ratio = utilisation / self.target_utilisation
        if not (unready > 0 and ratio > 1.0):
            if abs(1.0 - ratio) <= self.tolerance:
                return current_replicas
            return math.ceil(ratio * ready)
        # Scale-up with pods still starting: they count as using 0 % of the target,
        # which damps the scale-up (the documented "not-yet-ready" rule).
        new_ratio = ratio * ready / current_replicas
        if abs(1.0 - new_ratio) <= self.tolerance or new_ratio < 1.0:
            return current_replicas
        desired = math.ceil(new_ratio * current_replicas)
        return max(desired, current_replicas)

    def recommend(
        self,
        ts: float,
        current_replicas: int,
        utilisation: float,
        *,
        ready_replicas: int | None = None,
    ) -> int:
        """Run one sync and return the replica count to set.

        The caller is expected to apply the returned count: a change is recorded as a
        scale event for the rate limits. Calls less than ``sync_period_s`` after the last
        sync return ``current_replicas`` unchanged.
        """
        if self._last_sync is not None and ts - self._last_sync < self.sync_period_s:
            return current_replicas
        self._last_sync = ts
        if current_replicas > self.max_replicas:
            desired = self.max_replicas
        elif current_replicas < self.min_replicas:
            desired = self.min_replicas
        else:
            raw = self.raw_recommendation(current_replicas, utilisation, ready_replicas)
            raw = min(max(raw, self.min_replicas), self.max_replicas)
            stabilised = self._stabilise(ts, current_replicas, raw)
            desired = self._rate_limit(ts, current_replicas, stabilised)
        if desired > current_replicas:
            self._up_events.append((ts, desired - current_replicas))
        elif desired < current_replicas:
            self._down_events.append((ts, current_replicas - desired))
        return desired

    def _stabilise(self, ts: float, current: int, raw: int) -> int:
        up_limit = raw
        down_limit = raw
        for rec_ts, rec in self._recommendations:
            if rec_ts > ts - self.scale_up_window_s:
                up_limit = min(up_limit, rec)
            if rec_ts > ts - self.scale_down_window_s:
                down_limit = max(down_limit, rec)
        self._recommendations.append((ts, raw))
        return min(max(current, up_limit), down_limit)

    @staticmethod
    def _changed_within(events: deque[tuple[float, int]], ts: float, period_s: float) -> int:
        return sum(change for ev_ts, change in events if ev_ts > ts - period_s)

    def _period_start(self, ts: float, current: int, period_s: float) -> int:
        added = self._changed_within(self._up_events, ts, period_s)
        deleted = self._changed_within(self._down_events, ts, period_s)
        return current - added + deleted

    def _rate_limit(self, ts: float, current: int, desired: int) -> int:
        if desired > current:
            limit = -math.inf
            for p in self.scale_up_policies:
                start = self._period_start(ts, current, p.period_s)
                if p.kind == "Pods":
                    proposed = start + p.value
                else:
                    proposed = math.ceil(start * (1 + p.value / 100))
                limit = max(limit, proposed)
            return min(desired, max(int(limit), current), self.max_replicas)
        if desired < current:
            limit = math.inf
            for p in self.scale_down_policies:
                start = self._period_start(ts, current, p.period_s)
                proposed = start - p.value if p.kind == "Pods" else int(start * (1 - p.value / 100))
                limit = min(limit, proposed)
            return max(desired, min(int(limit), current), self.min_replicas)
        return desired
