"""Cloud cost from replicas and a price table: month-end forecast, budgets, rightsizing, spot.

The price table (:mod:`schemas.config.prices`) lists instance types with their family
(``compute``, ``memory`` or ``general`` purpose), vCPUs, memory, hourly on-demand price and
spot discount; a price multiplier per region; the instance type each service runs on (a
default for the others); and whether a service is stateless and tolerates interruptions
(which makes it a spot candidate). Budgets (:mod:`schemas.config.budgets`) are monthly, for
the whole fleet, per service or per region.

A :class:`CostTracker` follows one (service, region) in event time: it integrates the cost
of the running replicas into the cost of the calendar month (UTC) so far, keeps a run rate
(exponentially weighted mean cost per hour), and exponentially weighted means of CPU and
memory utilisation and replicas over ``util_tau_s`` (6 h): the *sustained* utilisation
rightsizing is judged on.

Month-end forecast: the observed cost of the month, plus the run rate times the hours of the
month not observed (before the tracker started, in gaps of telemetry, and until the end of
the month). A month is priced at :data:`HOURS_PER_MONTH` (730, a twelfth of a year) hours
for savings, as cloud price lists do.

Rightsizing (:func:`rightsize`), with the replica count unchanged:

* CPU-bound (CPU high, memory low): the cheapest *compute-optimised* type that fits;
* memory-bound (memory high, CPU low): the cheapest *memory-optimised* type that fits;
* over-provisioned (both low): the cheapest smaller type of the same family that fits;

where a type fits when the CPU and memory in use would stay below ``max_cpu_util`` and
``max_mem_util`` of it (or below today's utilisation, if that is higher). It is recommended
when it saves at least ``min_saving`` of the hourly price; the monthly saving is
``(old - new hourly price) x region multiplier x replicas x 730 h``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.config.prices import InstanceType, PriceTable

__all__ = [
    "HOURS_PER_MONTH",
    "CostTracker",
    "MonthForecast",
    "RightsizeAdvice",
    "SpotAdvice",
    "budget_crossing",
    "month_bounds",
    "rightsize",
    "spot_advice",
]

HOURS_PER_MONTH = 730.0
_STATE_VERSION = 1


# --------------------------------------------------------------------- month and budget
def month_bounds(ts: float) -> tuple[float, float]:
    """Start and end (epoch seconds) of the UTC calendar month holding ``ts``.

    >>> start, end = month_bounds(1_706_745_600.0 - 1)  # 2024-01-31 23:59:59 UTC
    >>> (end - start) / 86_400, end
    (31.0, 1706745600.0)
    """
    global _last_month
    start, end = _last_month
    # Every sample asks, nearly always about the month asked last.
    if start <= ts < end:
        return _last_month
    dt = datetime.fromtimestamp(ts, UTC)
    start = datetime(dt.year, dt.month, 1, tzinfo=UTC).timestamp()
    end = datetime(dt.year + dt.month // 12, dt.month % 12 + 1, 1, tzinfo=UTC).timestamp()
    _last_month = (start, end)
    return _last_month


# The month month_bounds found last: its answer for any ts in [start, end).
_last_month = (math.inf, -math.inf)


@dataclass(frozen=True, slots=True)
class MonthForecast:
    """Cost of the month so far and at its end, for one series or a sum of them.

    Attributes
    ----------
    ts
        When the forecast was made.
    month_start, month_end
        The calendar month (UTC).
    observed_usd
        Cost integrated from telemetry this month.
    cost_now_usd
        ``observed_usd`` plus the run rate over the hours of the month so far without
        telemetry: the estimated cost of the month so far.
    run_rate_usd_per_hour
        Expected cost per hour from now on.
    forecast_usd
        Estimated cost of the whole month.
    """

    ts: float
    month_start: float
    month_end: float
    observed_usd: float
    cost_now_usd: float
    run_rate_usd_per_hour: float
    forecast_usd: float

    def __add__(self, other: MonthForecast) -> MonthForecast:
        return MonthForecast(
            ts=max(self.ts, other.ts),
            month_start=self.month_start,
            month_end=self.month_end,
            observed_usd=self.observed_usd + other.observed_usd,
            cost_now_usd=self.cost_now_usd + other.cost_now_usd,
            run_rate_usd_per_hour=self.run_rate_usd_per_hour + other.run_rate_usd_per_hour,
            forecast_usd=self.forecast_usd + other.forecast_usd,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": datetime.fromtimestamp(self.month_start, UTC).strftime("%Y-%m"),
            "observed_usd": round(self.observed_usd, 4),
            "cost_so_far_usd": round(self.cost_now_usd, 4),
            "run_rate_usd_per_hour": round(self.run_rate_usd_per_hour, 4),
            "forecast_usd": round(self.forecast_usd, 2),
            "hours_left": round((self.month_end - self.ts) / 3600.0, 3),
        }


def budget_crossing(forecast: MonthForecast, budget: float) -> float | None:
    """Event time at which the month's cost reaches ``budget``, if it does this month.

    ``forecast.ts`` when it already has; ``None`` when the forecast stays below it.

    >>> f = MonthForecast(0.0, 0.0, 100 * 3600.0, 40.0, 40.0, 1.0, 140.0)
    >>> budget_crossing(f, 100.0) / 3600, budget_crossing(f, 150.0), budget_crossing(f, 30.0)
    (60.0, None, 0.0)
    """
    if forecast.cost_now_usd >= budget:
        return forecast.ts
    if forecast.forecast_usd < budget or forecast.run_rate_usd_per_hour <= 0:
        return None
    hours = (budget - forecast.cost_now_usd) / forecast.run_rate_usd_per_hour
    return min(forecast.ts + hours * 3600.0, forecast.month_end)


# ------------------------------------------------------------------------------ tracker
def _ew(mean: float, x: float, a: float) -> float:
    return mean + a * (x - mean)


class CostTracker:
    """Cost of one (service, region) this month, its run rate, and sustained utilisation.

    Parameters
    ----------
    util_tau_s
        Time constant of the utilisation and replica means.
    run_rate_tau_s
        Time constant of the run rate (a day, so a daily cycle does not swing it).
    max_gap_s
        Longer gaps between samples are not integrated but estimated at the run rate.

    Notes
    -----
    Memory: a dozen numbers. Samples older than the latest one are ignored. Until the means
    have seen a time constant of data they are running means of what they have seen.

    Examples
    --------
    Four replicas at 0.10 USD an hour, sampled every minute for the first ten days of
    January 2024, then a forecast for the whole month:

    >>> jan = 1_704_067_200.0
    >>> t = CostTracker()
    >>> for i in range(10 * 1440 + 1):
    ...     t.learn_one(jan + 60.0 * i, 0.40, cpu_util=0.5, mem_util=0.3, replicas=4)
    >>> f = t.forecast(jan + 10 * 86_400)
    >>> round(f.observed_usd, 2), round(f.run_rate_usd_per_hour, 2), round(f.forecast_usd, 2)
    (96.0, 0.4, 297.6)
    >>> round(t.cpu_util, 2), round(t.mem_util, 2), t.replicas
    (0.5, 0.3, 4.0)
    """

    __slots__ = (
        "cpu_util",
        "first_ts",
        "last_rate",
        "last_ts",
        "max_gap_s",
        "mem_util",
        "month_start",
        "n_samples",
        "observed_s",
        "observed_usd",
        "replicas",
        "run_rate",
        "run_rate_tau_s",
        "util_tau_s",
    )

    def __init__(
        self,
        *,
        util_tau_s: float = 6 * 3600.0,
        run_rate_tau_s: float = 86_400.0,
        max_gap_s: float = 3600.0,
    ) -> None:
        self.util_tau_s = util_tau_s
        self.run_rate_tau_s = run_rate_tau_s
        self.max_gap_s = max_gap_s
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.last_rate = 0.0
        self.month_start = -math.inf
        self.observed_usd = 0.0
        self.observed_s = 0.0
        self.run_rate = 0.0
        self.cpu_util: float | None = None
        self.mem_util: float | None = None
        self.replicas = 0.0
        self.n_samples = 0

    def learn_one(
        self,
        ts: float,
        cost_per_hour: float,
        *,
        cpu_util: float | None = None,
        mem_util: float | None = None,
        replicas: float | None = None,
    ) -> None:
        """Learn one sample: the cost per hour of what runs now, and its utilisation."""
        if self.last_ts is not None and ts < self.last_ts:
            return
        start, _ = month_bounds(ts)
        if self.last_ts is None:
            self.first_ts = ts
            self.month_start = start
        else:
            # The last rate ran until this sample; the part before a month boundary belongs
            # to the previous month.
            in_month = max(0.0, min(ts - self.last_ts, self.max_gap_s, ts - start))
            if start > self.month_start:
                self.month_start = start
                self.observed_usd = 0.0
                self.observed_s = 0.0
            self.observed_usd += self.last_rate * in_month / 3600.0
            self.observed_s += in_month
        dt = 0.0 if self.last_ts is None else ts - self.last_ts
        self.n_samples += 1
        self.run_rate = _ew(self.run_rate, cost_per_hour, self._weight(dt, self.run_rate_tau_s))
        a = self._weight(dt, self.util_tau_s)
        if cpu_util is not None:
            self.cpu_util = cpu_util if self.cpu_util is None else _ew(self.cpu_util, cpu_util, a)
        if mem_util is not None:
            self.mem_util = mem_util if self.mem_util is None else _ew(self.mem_util, mem_util, a)
        if replicas is not None:
            self.replicas = _ew(self.replicas, replicas, a)
        self.last_rate = cost_per_hour
        self.last_ts = ts

    def _weight(self, dt: float, tau: float) -> float:
        # An EWMA in event time; a running mean of the first samples (weight 1 / n), so
        # that a young mean is not dominated by its starting value.
        return max(1.0 - math.exp(-dt / tau), 1.0 / self.n_samples)

    def forecast(self, now: float) -> MonthForecast:
        """Month-end forecast at ``now``; a series silent for ``max_gap_s`` costs no more."""
        start, end = month_bounds(now)
        if self.last_ts is None or start > self.month_start:
            # Nothing observed this month yet.
            observed, observed_s = 0.0, 0.0
        else:
            observed, observed_s = self.observed_usd, self.observed_s
        live = self.last_ts is not None and now - self.last_ts <= self.max_gap_s
        rate = self.run_rate if live else 0.0
        last = start if self.last_ts is None else min(max(self.last_ts, start), now)
        # Hours of the month without telemetry up to the last sample (or now, if live).
        unobserved_past = max(0.0, ((now if live else last) - start) - observed_s) / 3600.0
        cost_now = observed + self.run_rate * unobserved_past
        return MonthForecast(
            ts=now,
            month_start=start,
            month_end=end,
            observed_usd=observed,
            cost_now_usd=cost_now,
            run_rate_usd_per_hour=rate,
            forecast_usd=cost_now + rate * (end - now) / 3600.0,
        )

    _STATE = (
        "first_ts",
        "last_ts",
        "last_rate",
        "month_start",
        "observed_usd",
        "observed_s",
        "run_rate",
        "cpu_util",
        "mem_util",
        "replicas",
        "n_samples",
    )

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state (settings included)."""
        state = {k: getattr(self, k) for k in self._STATE}
        state["month_start"] = self.month_start if math.isfinite(self.month_start) else None
        state["params"] = [self.util_tau_s, self.run_rate_tau_s, self.max_gap_s]
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CostTracker:
        """Rebuild a tracker from :meth:`to_state`."""
        util_tau, run_tau, gap = state["params"]
        t = cls(util_tau_s=util_tau, run_rate_tau_s=run_tau, max_gap_s=gap)
        for k in cls._STATE:
            setattr(t, k, state[k])
        if t.month_start is None:
            t.month_start = -math.inf
        return t


# ------------------------------------------------------------------------- rightsizing
@dataclass(frozen=True, slots=True)
class RightsizeAdvice:
    """A cheaper instance type for a service's sustained utilisation.

    Attributes
    ----------
    reason
        ``cpu_bound``, ``memory_bound`` or ``over_provisioned``.
    current, target
        The instance types.
    cpu_util, mem_util, replicas
        The sustained utilisation and replica count it is based on.
    region_multiplier
        Price multiplier of the region.
    monthly_saving_usd
        ``(current - target hourly) x region_multiplier x replicas x 730``.
    """

    reason: str
    current: InstanceType
    target: InstanceType
    cpu_util: float
    mem_util: float
    replicas: float
    region_multiplier: float
    monthly_saving_usd: float

    @property
    def arithmetic(self) -> str:
        """The saving, worked out."""
        return (
            f"({self.current.hourly_usd:g} - {self.target.hourly_usd:g}) USD/h x "
            f"{self.region_multiplier:g} x {self.replicas:.4g} replicas x "
            f"{HOURS_PER_MONTH:g} h = {self.monthly_saving_usd:.2f} USD/month"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "current": self.current.to_dict(),
            "target": self.target.to_dict(),
            "cpu_util": round(self.cpu_util, 4),
            "mem_util": round(self.mem_util, 4),
            "replicas": round(self.replicas, 3),
            "region_multiplier": self.region_multiplier,
            "hours_per_month": HOURS_PER_MONTH,
            "monthly_saving_usd": round(self.monthly_saving_usd, 2),
            "arithmetic": self.arithmetic,
        }


def rightsize(
    table: PriceTable,
    current: InstanceType,
    cpu_util: float,
    mem_util: float,
    replicas: float,
    *,
    region_multiplier: float = 1.0,
    high_cpu: float = 0.5,
    high_mem: float = 0.6,
    low: float = 0.35,
    max_cpu_util: float = 0.75,
    max_mem_util: float = 0.8,
    min_saving: float = 0.05,
) -> RightsizeAdvice | None:
    """A cheaper instance type for sustained ``cpu_util`` and ``mem_util``, or ``None``.

    See the module docstring for the rule. Of the types that fit, the cheapest wins; among
    equally cheap ones, the one closest in vCPUs to the current type.

    Examples
    --------
    >>> types = {t.name: t for t in (
    ...     InstanceType("m.xlarge", "general", 4, 16, 0.192),
    ...     InstanceType("c.xlarge", "compute", 4, 8, 0.17),
    ...     InstanceType("r.large", "memory", 2, 16, 0.126))}
    >>> table = PriceTable(types, "m.xlarge")
    >>> advice = rightsize(table, types["m.xlarge"], cpu_util=0.6, mem_util=0.2, replicas=10)
    >>> advice.reason, advice.target.name, round(advice.monthly_saving_usd, 2)
    ('cpu_bound', 'c.xlarge', 160.6)
    >>> rightsize(table, types["m.xlarge"], cpu_util=0.6, mem_util=0.6, replicas=10) is None
    True
    """
    if cpu_util >= high_cpu and mem_util <= low:
        reason, family = "cpu_bound", "compute"
    elif mem_util >= high_mem and cpu_util <= low:
        reason, family = "memory_bound", "memory"
    elif cpu_util <= low and mem_util <= low:
        reason, family = "over_provisioned", current.family
    else:
        return None
    # What one replica uses now, and the share of a new type it may use: never less than
    # today's utilisation, so a move is never to a tighter fit than the current one.
    vcpu_needed = cpu_util * current.vcpu / max(max_cpu_util, cpu_util)
    mem_needed = mem_util * current.memory_gib / max(max_mem_util, mem_util)
    candidates = [
        t
        for t in table.instance_types.values()
        if t.family == family
        and t.vcpu >= vcpu_needed
        and t.memory_gib >= mem_needed
        and (
            reason != "over_provisioned"
            or (t.vcpu <= current.vcpu and t.memory_gib <= current.memory_gib and t != current)
        )
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda t: (t.hourly_usd, abs(t.vcpu - current.vcpu), t.name))
    saving = current.hourly_usd - best.hourly_usd
    if saving < min_saving * current.hourly_usd:
        return None
    return RightsizeAdvice(
        reason=reason,
        current=current,
        target=best,
        cpu_util=cpu_util,
        mem_util=mem_util,
        replicas=replicas,
        region_multiplier=region_multiplier,
        monthly_saving_usd=saving * region_multiplier * replicas * HOURS_PER_MONTH,
    )


@dataclass(frozen=True, slots=True)
class SpotAdvice:
    """Running a stateless, interruption-tolerant service on spot capacity."""

    instance: InstanceType
    replicas: float
    region_multiplier: float
    on_demand_monthly_usd: float
    monthly_saving_usd: float

    @property
    def arithmetic(self) -> str:
        return (
            f"{self.instance.hourly_usd:g} USD/h x {self.region_multiplier:g} x "
            f"{self.replicas:.4g} replicas x {HOURS_PER_MONTH:g} h x "
            f"{self.instance.spot_discount:g} discount = {self.monthly_saving_usd:.2f} USD/month"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance.to_dict(),
            "spot_discount": self.instance.spot_discount,
            "replicas": round(self.replicas, 3),
            "region_multiplier": self.region_multiplier,
            "on_demand_monthly_usd": round(self.on_demand_monthly_usd, 2),
            "monthly_saving_usd": round(self.monthly_saving_usd, 2),
            "arithmetic": self.arithmetic,
        }


def spot_advice(table: PriceTable, service: str, region: str, replicas: float) -> SpotAdvice | None:
    """Spot saving for ``service`` if it is configured stateless and interruption-tolerant.

    >>> from schemas.config.prices import ServiceCostConfig
    >>> t = PriceTable({"c": InstanceType("c", "compute", 2, 4, 0.1, spot_discount=0.6)}, "c",
    ...                services={"api": ServiceCostConfig("c", True, True)})
    >>> round(spot_advice(t, "api", "eu", replicas=5).monthly_saving_usd, 2)
    219.0
    >>> spot_advice(t, "db", "eu", replicas=5) is None
    True
    """
    config = table.service(service)
    instance = table.instance_for(service)
    if not config.spot_candidate or instance.spot_discount <= 0:
        return None
    multiplier = table.region_multiplier(region)
    on_demand = instance.hourly_usd * multiplier * replicas * HOURS_PER_MONTH
    return SpotAdvice(
        instance=instance,
        replicas=replicas,
        region_multiplier=multiplier,
        on_demand_monthly_usd=on_demand,
        monthly_saving_usd=on_demand * instance.spot_discount,
    )
