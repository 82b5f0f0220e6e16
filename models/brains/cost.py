"""The cost brain: cost per (service, region) from metric samples, and cost decisions.

Pure and synchronous, like :mod:`models.brains.metrics`: the agent feeds it metric samples
and publishes what it returns.

* a ``budget`` decision when the month-end cost forecast of a budget's scope (the whole
  fleet, a service, a region) reaches the budget, once per scope and month, with the date
  it will be crossed at the current run rate;
* a ``rightsize`` decision (action ``change_instance_type``) when a service's sustained
  utilisation fits a cheaper instance type (:func:`models.policy.cost.rightsize`), once per
  recommendation, with the monthly saving worked out;
* a ``rightsize`` decision (action ``use_spot``) once per (service, region) configured
  stateless and interruption-tolerant, with the saving of the spot discount.

Utilisation-based decisions wait for ``min_observed_s`` (6 h) of telemetry of the series.
A budget over several series is judged by a :class:`BudgetWatch` over every brain that
learns a series of its scope (the agent keeps one brain per telemetry partition);
:meth:`CostBrain.check_budgets` is the watch over one brain.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from models.policy.cost import (
    CostTracker,
    MonthForecast,
    RightsizeAdvice,
    SpotAdvice,
    budget_crossing,
    month_bounds,
    rightsize,
    spot_advice,
)
from schemas import Decision, MetricSample, decision_id_for
from schemas.config.budgets import Budgets
from schemas.config.prices import PriceTable

__all__ = ["BUDGET_MODEL_VERSION", "RIGHTSIZE_MODEL_VERSION", "BudgetWatch", "CostBrain"]

BUDGET_MODEL_VERSION = "cost-forecast/1"
RIGHTSIZE_MODEL_VERSION = "rightsize/1"
_STATE_VERSION = 1

Scope = tuple[tuple[str, str], ...]


class _Series:
    __slots__ = ("hourly", "rightsized", "spot_done", "tracker")

    def __init__(self, tracker: CostTracker) -> None:
        self.tracker = tracker
        self.rightsized: str | None = None  # target type of the last rightsize decision
        self.spot_done = False
        # The price of one replica, looked up once: the price table does not change.
        self.hourly: float | None = None


def _scope_name(scope: Scope) -> str:
    return ",".join(f"{k}={v}" for k, v in scope) or "total"


class CostBrain:
    """Cost trackers per (service, region), budgets, rightsizing and spot suitability.

    Parameters
    ----------
    prices
        The price table (:func:`schemas.config.prices.load_price_table`).
    budgets
        Monthly budgets (:func:`schemas.config.budgets.load_budgets`); none if omitted.
    util_tau_s, run_rate_tau_s, max_gap_s
        See :class:`models.policy.cost.CostTracker`.
    min_observed_s
        Event seconds of telemetry a series needs before rightsizing and spot decisions.
    budget_every_s
        Event seconds between two evaluations of the budgets.
    rightsize_settings
        Keyword arguments of :func:`models.policy.cost.rightsize` (thresholds, minimum saving).
    max_series
        Series kept; the least recently updated is dropped beyond it.
    ttl_s
        Series without a sample for this long are dropped by :meth:`evict_idle` (their
        cost so far then no longer counts in the month's forecast).

    Notes
    -----
    Memory: a :class:`~models.policy.cost.CostTracker` (a dozen numbers, about 1 KiB with its
    bookkeeping) per series, at most ``max_series``, and one entry per budget fired this
    month.

    Examples
    --------
    >>> from schemas.config.prices import InstanceType, ServiceCostConfig
    >>> types = {t.name: t for t in (InstanceType("m.xlarge", "general", 4, 16, 0.192),
    ...                              InstanceType("c.xlarge", "compute", 4, 8, 0.17))}
    >>> prices = PriceTable(types, "m.xlarge")
    >>> brain = CostBrain(prices, Budgets(total=100.0))
    >>> jan = 1_704_067_200.0
    >>> decisions = []
    >>> for i in range(8 * 60):  # a sample a minute for 8 hours
    ...     sample = MetricSample(jan + 60.0 * i, "eu-west", "api",
    ...                           {"replicas": 10, "cpu_util": 0.6, "mem_util": 0.2})
    ...     decisions += brain.observe(sample)
    >>> [(d.kind, d.action, d.params.get("to")) for d in decisions]
    [('budget', 'budget_alert', None), ('rightsize', 'change_instance_type', 'c.xlarge')]
    >>> decisions[1].evidence["arithmetic"]
    '(0.192 - 0.17) USD/h x 1 x 10 replicas x 730 h = 160.60 USD/month'
    >>> decisions[0].evidence["crossing_date"]
    '2024-01-03'
    """

    def __init__(
        self,
        prices: PriceTable,
        budgets: Budgets | None = None,
        *,
        util_tau_s: float = 6 * 3600.0,
        run_rate_tau_s: float = 86_400.0,
        max_gap_s: float = 3600.0,
        min_observed_s: float = 6 * 3600.0,
        budget_every_s: float = 300.0,
        rightsize_settings: Mapping[str, float] | None = None,
        max_series: int = 10_000,
        ttl_s: float = 2 * 86_400.0,
    ) -> None:
        self.prices = prices
        self.watch = BudgetWatch(budgets, run_rate_tau_s=run_rate_tau_s)
        self.util_tau_s = util_tau_s
        self.run_rate_tau_s = run_rate_tau_s
        self.max_gap_s = max_gap_s
        self.min_observed_s = min_observed_s
        self.budget_every_s = budget_every_s
        self.rightsize_settings = dict(rightsize_settings or {})
        self.max_series = max_series
        self.ttl_s = ttl_s
        self._series: OrderedDict[tuple[str, str], _Series] = OrderedDict()
        self._budget_ts = -math.inf
        self.watermark = -math.inf

    def __len__(self) -> int:
        return len(self._series)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._series)

    def _get(self, key: tuple[str, str]) -> _Series:
        entry = self._series.get(key)
        if entry is None:
            tracker = CostTracker(
                util_tau_s=self.util_tau_s,
                run_rate_tau_s=self.run_rate_tau_s,
                max_gap_s=self.max_gap_s,
            )
            entry = self._series[key] = _Series(tracker)
            if len(self._series) > self.max_series:
                self._series.popitem(last=False)
        else:
            self._series.move_to_end(key)
        return entry

    # ---------------------------------------------------------------------------- input
    def observe(self, sample: MetricSample) -> list[Decision]:
        """Learn from one metric sample; return the decisions it causes (usually none)."""
        metrics = sample.metrics
        replicas = metrics.get("replicas")
        if replicas is None:
            return []
        ts, service, region = sample.ts, sample.service, sample.region
        entry = self._get((service, region))
        tracker = entry.tracker
        hourly = entry.hourly
        if hourly is None:
            hourly = entry.hourly = self.prices.replica_hourly(service, region)
        tracker.learn_one(
            ts,
            replicas * hourly,
            cpu_util=metrics.get("cpu_util"),
            mem_util=metrics.get("mem_util"),
            replicas=replicas,
        )
        self.watermark = max(self.watermark, ts)
        decisions = []
        observed = ts - (tracker.first_ts if tracker.first_ts is not None else ts)
        if observed >= self.min_observed_s:
            decisions += self._rightsize(ts, service, region, entry, observed)
        if self.watermark - self._budget_ts >= self.budget_every_s:
            self._budget_ts = self.watermark
            decisions += self.check_budgets(self.watermark)
        return decisions

    def _rightsize(
        self, ts: float, service: str, region: str, entry: _Series, observed: float
    ) -> list[Decision]:
        tracker = entry.tracker
        decisions = []
        confidence = round(1.0 - math.exp(-observed / self.util_tau_s), 4)
        if tracker.cpu_util is not None and tracker.mem_util is not None:
            advice = rightsize(
                self.prices,
                self.prices.instance_for(service),
                tracker.cpu_util,
                tracker.mem_util,
                tracker.replicas,
                region_multiplier=self.prices.region_multiplier(region),
                **self.rightsize_settings,
            )
            target = None if advice is None else advice.target.name
            if advice is not None and target != entry.rightsized:
                decisions.append(_rightsize_decision(ts, service, region, advice, confidence))
            entry.rightsized = target
        if not entry.spot_done:
            spot = spot_advice(self.prices, service, region, tracker.replicas)
            entry.spot_done = True
            if spot is not None:
                decisions.append(_spot_decision(ts, service, region, spot, confidence))
        return decisions

    def check_budgets(self, now: float) -> list[Decision]:
        """Budget decisions due at ``now`` over this brain's series (see :class:`BudgetWatch`)."""
        return self.watch.check(now, [self])

    # -------------------------------------------------------------------------- queries
    def in_scope(self, scope: Scope) -> list[tuple[tuple[str, str], CostTracker]]:
        """The series of ``scope`` (e.g. ``(("service", "checkout"),)``) and their trackers."""
        wanted = dict(scope)
        return [
            ((s, r), e.tracker)
            for (s, r), e in self._series.items()
            if wanted.get("service", s) == s and wanted.get("region", r) == r
        ]

    def forecast(self, service: str, region: str, now: float | None = None) -> MonthForecast | None:
        """Month-end forecast of one series at ``now`` (default: the watermark)."""
        entry = self._series.get((service, region))
        if entry is None:
            return None
        return entry.tracker.forecast(self.watermark if now is None else now)

    def scope_forecast(self, now: float | None = None, **scope: str) -> MonthForecast | None:
        """Month-end forecast of a scope, e.g. ``scope_forecast(service="checkout")``."""
        at = self.watermark if now is None else now
        return _scope_forecast([self], tuple(scope.items()), at)[0]

    def cost_per_hour(self, service: str, region: str) -> float | None:
        """Cost per hour of the replicas of (service, region) at its latest sample."""
        entry = self._series.get((service, region))
        return None if entry is None else entry.tracker.last_rate

    # ---------------------------------------------------------------------- maintenance
    def evict_idle(self, now: float) -> int:
        """Drop series without a sample for ``ttl_s``; return how many."""
        idle = [
            k
            for k, e in self._series.items()
            if e.tracker.last_ts is None or now - e.tracker.last_ts > self.ttl_s
        ]
        for key in idle:
            del self._series[key]
        return len(idle)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every series and of the budgets fired this month."""
        return {
            "v": _STATE_VERSION,
            "series": [
                [s, r, e.tracker.to_state(), e.rightsized, e.spot_done]
                for (s, r), e in self._series.items()
            ],
            "fired": self.watch.to_state(),
            "budget_ts": self._budget_ts if math.isfinite(self._budget_ts) else None,
            "watermark": self.watermark if math.isfinite(self.watermark) else None,
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        prices: PriceTable,
        budgets: Budgets | None = None,
        **settings: Any,
    ) -> CostBrain:
        """Rebuild a brain from :meth:`to_state`; the other arguments as for the constructor."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported cost brain state version {state.get('v')!r}")
        brain = cls(prices, budgets, **settings)
        for service, region, tracker, rightsized, spot_done in state["series"]:
            entry = _Series(CostTracker.from_state(tracker))
            entry.rightsized = rightsized
            entry.spot_done = spot_done
            brain._series[(service, region)] = entry
        brain.watch.load_state(state["fired"])
        brain._budget_ts = -math.inf if state["budget_ts"] is None else state["budget_ts"]
        brain.watermark = -math.inf if state["watermark"] is None else state["watermark"]
        return brain

    # ------------------------------------------------------------------------ decisions


class BudgetWatch:
    """Monthly budgets judged over the series of one or more cost brains.

    A budget's scope (the fleet, a service, a region) can span series that different cost
    brains learn, e.g. one brain per telemetry partition: :meth:`check` sums the month-end
    forecasts of the scope's series over every brain it is given. Each scope fires at most
    once a calendar month.

    Parameters
    ----------
    budgets
        Monthly budgets (:func:`schemas.config.budgets.load_budgets`); none if omitted.
    run_rate_tau_s
        The cost trackers' run-rate time constant: a decision's confidence grows with the
        time the run rate has been learned, over this scale.

    Notes
    -----
    Memory: one entry per budget fired this month; older months are dropped.

    Examples
    --------
    >>> from schemas.config.prices import InstanceType
    >>> prices = PriceTable({"m": InstanceType("m", "general", 4, 16, 0.2)}, "m")
    >>> brains = [CostBrain(prices), CostBrain(prices)]  # e.g. two partitions
    >>> jan = 1_704_067_200.0
    >>> for i in range(60):
    ...     for brain, region in zip(brains, ("eu-west", "us-east")):
    ...         _ = brain.observe(MetricSample(jan + 60.0 * i, region, "api", {"replicas": 2}))
    >>> watch = BudgetWatch(Budgets(services={"api": 500.0}))
    >>> [d] = watch.check(jan + 3600.0, brains)  # 2 x 2 x 0.2 USD/h for 31 days: 595 USD
    >>> d.subject, d.evidence["series"], round(d.evidence["forecast_usd"])
    ({'service': 'api'}, 2, 595)
    >>> watch.check(jan + 3900.0, brains)  # once a month
    []
    >>> watch.report(jan + 3600.0, brains)
    [{'scope': 'service=api', 'budget_usd': 500.0, 'forecast_usd': 595.2, 'series': 2, \
'fired': True}]
    """

    def __init__(self, budgets: Budgets | None = None, *, run_rate_tau_s: float = 86_400.0) -> None:
        self.budgets = Budgets() if budgets is None else budgets
        self.run_rate_tau_s = run_rate_tau_s
        self._fired: set[tuple[str, float]] = set()  # (scope name, month start)

    def check(self, now: float, brains: Sequence[CostBrain]) -> list[Decision]:
        """Budget decisions due at ``now`` over the series of ``brains``."""
        month_start, _ = month_bounds(now)
        self._fired = {f for f in self._fired if f[1] == month_start}
        decisions = []
        for scope, budget in self.budgets.scopes():
            name = _scope_name(scope)
            if (name, month_start) in self._fired:
                continue
            forecast, contributors = _scope_forecast(brains, scope, now)
            if forecast is None or forecast.forecast_usd < budget:
                continue
            self._fired.add((name, month_start))
            # How long the run rate has been learned: the oldest series of the scope.
            first = min(
                (t.first_ts for b in brains for _, t in b.in_scope(scope) if t.first_ts),
                default=now,
            )
            decisions.append(
                self._budget_decision(now, scope, budget, forecast, contributors, now - first)
            )
        return decisions

    def report(self, now: float, brains: Sequence[CostBrain]) -> list[dict[str, Any]]:
        """Each budget with its scope's month-end forecast at ``now`` and whether it fired."""
        month_start, _ = month_bounds(now)
        out = []
        for scope, budget in self.budgets.scopes():
            forecast, contributors = _scope_forecast(brains, scope, now)
            name = _scope_name(scope)
            out.append(
                {
                    "scope": name,
                    "budget_usd": budget,
                    "forecast_usd": None if forecast is None else round(forecast.forecast_usd, 2),
                    "series": len(contributors),
                    "fired": (name, month_start) in self._fired,
                }
            )
        return out

    def to_state(self) -> list[list[Any]]:
        """The budgets fired this month, as ``[scope name, month start]`` pairs."""
        return sorted([name, month] for name, month in self._fired)

    def load_state(self, state: Sequence[Sequence[Any]]) -> None:
        """Replace the fired budgets with :meth:`to_state` output."""
        self._fired = {(name, month) for name, month in state}

    def _budget_decision(
        self,
        ts: float,
        scope: Scope,
        budget: float,
        forecast: MonthForecast,
        contributors: list[tuple[str, str, MonthForecast]],
        learned_s: float,
    ) -> Decision:
        subject = dict(scope)
        month = datetime.fromtimestamp(forecast.month_start, UTC).strftime("%Y-%m")
        params = {"budget_usd": budget, "month": month}
        crossing = budget_crossing(forecast, budget)
        crossing_ts = forecast.month_end if crossing is None else crossing
        when = datetime.fromtimestamp(crossing_ts, UTC)
        top = sorted(contributors, key=lambda c: -c[2].forecast_usd)[:5]
        already = forecast.cost_now_usd >= budget
        what = "the fleet" if not scope else " ".join(f"{k} {v}" for k, v in scope)
        reason = (
            f"The month-end cost forecast of {what} for {month} is "
            f"{forecast.forecast_usd:,.2f} USD, over its {budget:,.2f} USD budget; "
            + (
                f"it was reached by {when:%Y-%m-%d %H:%M} UTC."
                if already
                else f"at {forecast.run_rate_usd_per_hour:,.2f} USD/h it will be crossed on "
                f"{when:%Y-%m-%d %H:%M} UTC."
            )
        )
        return Decision(
            decision_id=decision_id_for(
                "budget", subject, "budget_alert", params, [forecast.month_start]
            ),
            kind="budget",
            ts=ts,
            subject=subject,
            action="budget_alert",
            params=params,
            mode="recommend",
            # A run rate learned over a day of the month is a forecast; after three, a habit.
            confidence=1.0
            if already
            else round(1.0 - math.exp(-learned_s / self.run_rate_tau_s), 4),
            reason=reason,
            evidence={
                **forecast.to_dict(),
                "budget_usd": budget,
                "crossing_ts": crossing_ts,
                "crossing_date": when.strftime("%Y-%m-%d"),
                "already_crossed": already,
                "series": len(contributors),
                "top_series": [
                    {"service": s, "region": r, "forecast_usd": round(f.forecast_usd, 2)}
                    for s, r, f in top
                ],
            },
            model_version=BUDGET_MODEL_VERSION,
        )


def _scope_forecast(
    brains: Sequence[CostBrain], scope: Scope, now: float
) -> tuple[MonthForecast | None, list[tuple[str, str, MonthForecast]]]:
    """The month-end forecast of ``scope`` summed over ``brains``, and each series'."""
    parts = [(s, r, t.forecast(now)) for b in brains for (s, r), t in b.in_scope(scope)]
    if not parts:
        return None, []
    total = parts[0][2]
    for _, _, f in parts[1:]:
        total = total + f
    return total, parts


def _rightsize_decision(
    ts: float, service: str, region: str, advice: RightsizeAdvice, confidence: float
) -> Decision:
    subject = {"service": service, "region": region}
    params = {"from": advice.current.name, "to": advice.target.name}
    why = {
        "cpu_bound": "CPU-bound",
        "memory_bound": "memory-bound",
        "over_provisioned": "over-provisioned",
    }[advice.reason]
    reason = (
        f"{service} in {region} is {why} (CPU {advice.cpu_util:.0%}, memory "
        f"{advice.mem_util:.0%} sustained): {advice.target.name} ({advice.target.family}) "
        f"instead of {advice.current.name} saves {advice.monthly_saving_usd:,.2f} USD a month."
    )
    return Decision(
        decision_id=decision_id_for("rightsize", subject, "change_instance_type", params, [ts]),
        kind="rightsize",
        ts=ts,
        subject=subject,
        action="change_instance_type",
        params=params,
        mode="recommend",
        confidence=confidence,
        reason=reason,
        evidence=advice.to_dict(),
        model_version=RIGHTSIZE_MODEL_VERSION,
    )


def _spot_decision(
    ts: float, service: str, region: str, spot: SpotAdvice, confidence: float
) -> Decision:
    subject = {"service": service, "region": region}
    params = {"instance_type": spot.instance.name, "spot_discount": spot.instance.spot_discount}
    reason = (
        f"{service} is configured stateless and interruption-tolerant: running its "
        f"{spot.replicas:.3g} {spot.instance.name} replicas in {region} on spot capacity saves "
        f"about {spot.monthly_saving_usd:,.2f} USD a month."
    )
    return Decision(
        decision_id=decision_id_for("rightsize", subject, "use_spot", params, [ts]),
        kind="rightsize",
        ts=ts,
        subject=subject,
        action="use_spot",
        params=params,
        mode="recommend",
        confidence=confidence,
        reason=reason,
        evidence=spot.to_dict(),
        model_version=RIGHTSIZE_MODEL_VERSION,
    )
