"""Per-tenant behaviour anomalies: sudden drops and surges of activity.

Each tenant's activity is compared with what its own hour-of-week profile
(:class:`~models.forecast.usage.UsageProfile`) expects at that time of the week. The observed
rate is an exponentially decayed count of the tenant's events (time constant ``rate_tau_s``). A
*drop* (the tenant's users cannot reach us, or its integration broke) is a rate below
``drop_ratio`` times the expected one for ``drop_for_s``; a *surge* (bots, abuse, a runaway
client) is a rate above ``surge_ratio`` times it for ``surge_for_s``. One anomaly is
reported per episode, on its rising edge; an episode ends with hysteresis (the ratio back
above twice ``drop_ratio``, or below half of ``surge_ratio``).

A tenant that falls silent sends no events, so drops are found by :meth:`TenantBehaviour.check`,
called with the event-time watermark of all tenants. Hours during an anomaly are not learned
into the profile, so an incident does not become the norm.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from models.forecast.usage import UsageProfile, hour_of_week

__all__ = ["BehaviourAnomaly", "TenantBehaviour"]

_STATE_VERSION = 1
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class BehaviourAnomaly:
    """The rising edge of a drop or a surge of one tenant's activity.

    Attributes
    ----------
    tenant
        The tenant, as given to the detector (a pseudonym).
    kind
        ``"drop"`` or ``"surge"``.
    ts
        Event time at which it was established.
    since_ts
        Event time at which the rate first crossed the threshold.
    observed_per_hour, expected_per_hour
        The tenant's current rate and the rate its profile expects now, per hour.
    threshold
        The ratio observed / expected that was crossed.
    """

    tenant: str
    kind: str
    ts: float
    since_ts: float
    observed_per_hour: float
    expected_per_hour: float
    threshold: float

    @property
    def ratio(self) -> float:
        """Observed rate relative to the expected one."""
        return self.observed_per_hour / self.expected_per_hour

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for decision evidence."""
        return {
            "kind": self.kind,
            "observed_per_hour": round(self.observed_per_hour, 3),
            "expected_per_hour": round(self.expected_per_hour, 3),
            "ratio": round(self.ratio, 4),
            "threshold": self.threshold,
            "since_ts": self.since_ts,
            "held_for_s": round(self.ts - self.since_ts, 3),
            "hour_of_week": hour_of_week(self.ts),
        }


class _Tenant:
    __slots__ = ("active", "cond", "cond_since", "count", "count_ts", "first_ts", "profile")

    def __init__(self, profile: UsageProfile, ts: float) -> None:
        self.profile = profile
        self.count = 0.0
        self.count_ts = ts
        self.first_ts = ts
        self.cond: str | None = None
        self.cond_since = ts
        self.active: str | None = None


class TenantBehaviour:
    """Detect drops and surges of each tenant's activity against its hour-of-week profile.

    Parameters
    ----------
    drop_ratio, drop_for_s
        A drop is a rate below ``drop_ratio`` times the expected rate for ``drop_for_s``.
    surge_ratio, surge_for_s
        A surge is a rate above ``surge_ratio`` times the expected rate for ``surge_for_s``.
    rate_tau_s
        Time constant of the observed rate; it is not judged before three of them.
    min_expected_per_hour
        Below this expected rate the tenant is not judged: a quiet tenant's silence is
        chance, not an incident (at 120 an hour, ten minutes without any event has odds
        of about 2e-9).
    alpha
        Learning rate of the profiles (see :class:`~models.forecast.usage.UsageProfile`).
    ttl_s
        Tenants without an event for this long (event time) are dropped by :meth:`evict_idle`.
    max_tenants
        Most tenants kept; the least recently seen is dropped beyond it.

    Notes
    -----
    Memory per tenant: one :class:`~models.forecast.usage.UsageProfile` (about 2 KiB) and seven
    numbers; at most ``max_tenants`` tenants.

    Examples
    --------
    A tenant with 600 events an hour for two weeks, then silent:

    >>> monday = 1_704_067_200.0
    >>> det = TenantBehaviour()
    >>> for i in range(14 * 24 * 600):
    ...     _ = det.learn_one(monday + i * 6.0, "t_1")
    >>> silent_from = monday + 14 * 86_400
    >>> found = []
    >>> for minute in range(1, 31):
    ...     found += det.check(silent_from + 60.0 * minute)
    >>> [(a.kind, round((a.ts - silent_from) / 60)) for a in found]
    [('drop', 10)]
    >>> round(found[0].expected_per_hour), found[0].observed_per_hour < 0.2 * 600
    (600, True)
    """

    def __init__(
        self,
        *,
        drop_ratio: float = 0.2,
        drop_for_s: float = 300.0,
        surge_ratio: float = 5.0,
        surge_for_s: float = 120.0,
        rate_tau_s: float = 180.0,
        min_expected_per_hour: float = 120.0,
        alpha: float = 0.3,
        ttl_s: float = 14 * DAY_S,
        max_tenants: int = 100_000,
    ) -> None:
        if not 0.0 < drop_ratio < 1.0 < surge_ratio:
            raise ValueError("need 0 < drop_ratio < 1 < surge_ratio")
        self.drop_ratio = drop_ratio
        self.drop_for_s = drop_for_s
        self.surge_ratio = surge_ratio
        self.surge_for_s = surge_for_s
        self.rate_tau_s = rate_tau_s
        self.min_expected_per_hour = min_expected_per_hour
        self.alpha = alpha
        self.ttl_s = ttl_s
        self.max_tenants = max_tenants
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tenants)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tenants)

    def learn_one(self, ts: float, tenant: str, weight: float = 1.0) -> BehaviourAnomaly | None:
        """Count ``weight`` events of ``tenant`` at ``ts``; return an anomaly if one starts."""
        entry = self._tenants.get(tenant)
        if entry is None:
            entry = self._tenants[tenant] = _Tenant(UsageProfile(self.alpha), ts)
            if len(self._tenants) > self.max_tenants:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(tenant)
        if ts > entry.count_ts:
            entry.count *= math.exp(-(ts - entry.count_ts) / self.rate_tau_s)
            entry.count_ts = ts
        entry.count += weight
        entry.profile.learn_one(ts, weight)
        return self._evaluate(tenant, entry, max(ts, entry.count_ts))

    def forget(self, tenant: str, seen_until: float = math.inf) -> bool:
        """Drop ``tenant``'s profile (erasure) if it was last fed no later than
        ``seen_until``; return whether it was dropped."""
        entry = self._tenants.get(tenant)
        if entry is None or entry.profile.last_ts > seen_until:
            return False
        del self._tenants[tenant]
        return True

    def check(self, now: float) -> list[BehaviourAnomaly]:
        """Judge every tenant at event time ``now`` (the watermark); return new anomalies.

        This is how silence is noticed: call it regularly, e.g. once a minute of event time.
        """
        found = []
        for tenant, entry in self._tenants.items():
            entry.profile.advance(now)
            anomaly = self._evaluate(tenant, entry, now)
            if anomaly is not None:
                found.append(anomaly)
        return found

    def observed_per_hour(self, tenant: str, now: float) -> float | None:
        """The tenant's current rate per hour (``None`` if unknown)."""
        entry = self._tenants.get(tenant)
        return None if entry is None else self._rate(entry, now) * 3600.0

    def _rate(self, entry: _Tenant, now: float) -> float:
        tau = self.rate_tau_s
        count = entry.count * math.exp(-max(now - entry.count_ts, 0.0) / tau)
        # A young count has not filled its window yet: correct for the part it has seen.
        seen = 1.0 - math.exp(-max(now - entry.first_ts, 1e-9) / tau)
        return count / (tau * seen)

    def _evaluate(self, tenant: str, entry: _Tenant, now: float) -> BehaviourAnomaly | None:
        expected = entry.profile.expected_per_hour(now)
        if (
            expected is None
            or expected < self.min_expected_per_hour
            or now - entry.first_ts < 3.0 * self.rate_tau_s
        ):
            entry.cond = entry.active = None
            return None
        observed = self._rate(entry, now) * 3600.0
        ratio = observed / expected
        cond = "drop" if ratio < self.drop_ratio else "surge" if ratio > self.surge_ratio else None
        if cond != entry.cond:
            entry.cond = cond
            entry.cond_since = now
        # Hysteresis: an episode ends well inside the normal band, so a rate hovering at
        # the threshold does not make a new episode at every crossing.
        recovered = (entry.active == "drop" and ratio >= 2.0 * self.drop_ratio) or (
            entry.active == "surge" and ratio <= 0.5 * self.surge_ratio
        )
        if recovered:
            entry.active = None
        if cond is not None or entry.active is not None:
            entry.profile.skip_hour()
        if cond is None or cond == entry.active:
            return None
        hold = self.drop_for_s if cond == "drop" else self.surge_for_s
        if now - entry.cond_since < hold:
            return None
        entry.active = cond
        return BehaviourAnomaly(
            tenant=tenant,
            kind=cond,
            ts=now,
            since_ts=entry.cond_since,
            observed_per_hour=observed,
            expected_per_hour=expected,
            threshold=self.drop_ratio if cond == "drop" else self.surge_ratio,
        )

    def evict_idle(self, now: float) -> int:
        """Drop tenants without an event for ``ttl_s``; return how many."""
        idle = [t for t, e in self._tenants.items() if now - e.profile.last_ts > self.ttl_s]
        for tenant in idle:
            del self._tenants[tenant]
        return len(idle)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every tenant."""
        return {
            "v": _STATE_VERSION,
            "tenants": [
                {
                    "tenant": t,
                    "profile": e.profile.to_state(),
                    "count": e.count,
                    "count_ts": e.count_ts,
                    "first_ts": e.first_ts,
                    "cond": e.cond,
                    "cond_since": e.cond_since,
                    "active": e.active,
                }
                for t, e in self._tenants.items()
            ],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace what is in memory with :meth:`to_state` output."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported behaviour state version {state.get('v')!r}")
        self._tenants.clear()
        for s in state["tenants"]:
            entry = _Tenant(UsageProfile.from_state(s["profile"]), s["first_ts"])
            entry.count = s["count"]
            entry.count_ts = s["count_ts"]
            entry.cond = s["cond"]
            entry.cond_since = s["cond_since"]
            entry.active = s["active"]
            self._tenants[s["tenant"]] = entry
