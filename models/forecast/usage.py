"""Usage patterns: hour-of-week activity profiles, learned online, and the peaks they predict.

A :class:`UsageProfile` counts events per hour of event time and learns, for each of the
168 hours of the week (index ``weekday * 24 + hour``, Monday 0, UTC), an exponentially
weighted mean of the count of that hour over the weeks. :class:`UsageModel` keeps one per
(tenant, service) (:meth:`UsageModel.learn_tenant`), to announce each tenant's learned peaks
ahead of time, and one per (service, region) (:meth:`UsageModel.learn_series`), whose
normalised form is the seasonal prior of the load forecaster
(:meth:`models.forecast.load.LoadForecaster.set_prior`). The two are learned apart, from streams
keyed differently: by tenant (:mod:`models.brains.tenants`) and by (service, region)
(:mod:`models.brains.interactions`).

A *peak* is a run of at least ``min_hours`` consecutive hours whose learned count exceeds
``ratio`` times the median hour of the week; a quiet day (a weekend, when the weekly pattern
says so) has no such hour and so no peak.
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HOURS_PER_WEEK",
    "Peak",
    "ScheduledPeak",
    "UsageModel",
    "UsageProfile",
    "hour_of_week",
]

HOURS_PER_WEEK = 168
DAY_S = 86_400.0
_STATE_VERSION = 1
# 1970-01-01 was a Thursday: hour 0 of the epoch is hour 72 of a Monday-based week.
_EPOCH_HOUR_OF_WEEK = 72


def hour_of_week(ts: float) -> int:
    """Hour of the week of an epoch timestamp, Monday 00:00 UTC being 0.

    >>> hour_of_week(1_704_067_200.0)  # Monday 2024-01-01 00:00 UTC
    0
    >>> hour_of_week(1_704_067_200.0 + 6 * 86_400 + 23 * 3600)  # Sunday 23:00
    167
    """
    return (math.floor(ts / 3600.0) + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK


@dataclass(frozen=True, slots=True)
class Peak:
    """A learned peak of activity ahead of some moment.

    Attributes
    ----------
    start_ts, end_ts
        Event time the peak hours start and end (hour boundaries).
    peak_ts
        Middle of the busiest hour of the peak.
    expected_per_hour
        Learned count of that hour.
    baseline_per_hour
        Median learned count over the week.
    threshold_per_hour
        Count above which an hour belongs to a peak.
    """

    start_ts: float
    end_ts: float
    peak_ts: float
    expected_per_hour: float
    baseline_per_hour: float
    threshold_per_hour: float

    @property
    def magnitude(self) -> float:
        """Busiest hour of the peak relative to the median hour."""
        return self.expected_per_hour / self.baseline_per_hour

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for decision evidence."""
        return {
            "peak_start_ts": self.start_ts,
            "peak_ts": self.peak_ts,
            "peak_end_ts": self.end_ts,
            "expected_per_hour": round(self.expected_per_hour, 3),
            "baseline_per_hour": round(self.baseline_per_hour, 3),
            "threshold_per_hour": round(self.threshold_per_hour, 3),
            "magnitude": round(self.magnitude, 3),
        }


class UsageProfile:
    """Hour-of-week activity of one key: 168 exponentially weighted hourly counts.

    Parameters
    ----------
    alpha
        Weight of a new week's count of an hour; the first visits of an hour are averaged
        (weight ``1 / visits``) so a young profile learns at once.

    Notes
    -----
    Memory is constant: 168 doubles and 168 visit counts (about 2 KiB) and the running count
    of the current hour. The first hour a profile sees is usually partial and is not learned;
    hours without events are learned as zeros when a later event (or :meth:`advance`) moves
    past them, at most one week of them. A late event counts in the current hour.

    Examples
    --------
    Two weeks of 100 events an hour, 300 from 09:00 to 12:00 on weekdays:

    >>> monday = 1_704_067_200.0
    >>> p = UsageProfile()
    >>> for h in range(14 * 24 + 1):
    ...     busy = (h // 24) % 7 < 5 and 9 <= h % 24 < 12
    ...     p.learn_one(monday + h * 3600.0, 300.0 if busy else 100.0)
    >>> p.complete, p.expected_per_hour(monday + 10.5 * 3600), p.baseline()
    (True, 300.0, 100.0)
    >>> peak = p.next_peak(monday + 7 * 86_400 + 8.5 * 3600, lead_min_s=900, lead_max_s=3600)
    >>> (peak.start_ts - monday) / 3600 - 7 * 24, peak.magnitude
    (9.0, 3.0)
    >>> p.next_peak(monday + 12 * 86_400 + 8.5 * 3600, lead_min_s=900, lead_max_s=3600) is None
    True
    """

    __slots__ = (
        "_memo",
        "alpha",
        "counts",
        "current",
        "first_hour",
        "hour",
        "last_ts",
        "skip",
        "visits",
    )

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.counts = array("d", bytes(8 * HOURS_PER_WEEK))
        self.visits = array("l", bytes(array("l").itemsize * HOURS_PER_WEEK))
        self.hour: int | None = None  # absolute hour number being counted
        self.first_hour: int | None = None
        self.current = 0.0
        self.skip = False
        self.last_ts = -math.inf
        # The last peak search: its arguments (with the current hour, as the counts change
        # only when an hour is learned) and its result, so that it runs once an hour.
        self._memo: tuple[tuple, Peak | None] | None = None

    # ------------------------------------------------------------------------ learning
    def learn_one(self, ts: float, weight: float = 1.0) -> None:
        """Count ``weight`` events at event time ``ts``."""
        self.advance(ts)
        self.current += weight
        self.last_ts = max(self.last_ts, ts)

    def advance(self, ts: float) -> None:
        """Move to the hour of ``ts``, learning the hours before it (zeros if eventless)."""
        hour = math.floor(ts / 3600.0)
        if self.hour is None:
            self.hour = self.first_hour = hour
            return
        if hour <= self.hour:
            return
        self._commit(self.hour, self.current)
        for h in range(max(self.hour + 1, hour - HOURS_PER_WEEK), hour):
            self._commit(h, 0.0)
        self.hour = hour
        self.current = 0.0
        self.skip = False

    def skip_hour(self) -> None:
        """Do not learn the current hour (it is anomalous, not a usage pattern)."""
        self.skip = True

    def _commit(self, hour: int, count: float) -> None:
        if hour == self.first_hour or (hour == self.hour and self.skip):
            return
        i = (hour + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK
        k = self.visits[i] + 1
        self.counts[i] += max(self.alpha, 1.0 / k) * (count - self.counts[i])
        self.visits[i] = k

    # -------------------------------------------------------------------------- queries
    @property
    def coverage(self) -> float:
        """Share of the week's hours learned at least once."""
        return sum(1 for v in self.visits if v) / HOURS_PER_WEEK

    @property
    def complete(self) -> bool:
        """Whether every hour of the week has been learned."""
        return all(self.visits)

    def expected_per_hour(self, ts: float) -> float | None:
        """Learned count per hour at ``ts``, interpolated between hour centres.

        ``None`` while either neighbouring hour is unlearned.
        """
        pos = ts / 3600.0 - 0.5
        h0 = math.floor(pos)
        frac = pos - h0
        i0 = (h0 + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK
        i1 = (i0 + 1) % HOURS_PER_WEEK
        if not (self.visits[i0] and self.visits[i1]):
            return None
        return self.counts[i0] * (1.0 - frac) + self.counts[i1] * frac

    def baseline(self) -> float:
        """Median learned hourly count (the mean if the median is zero)."""
        med = statistics.median(self.counts)
        return med if med > 0 else sum(self.counts) / HOURS_PER_WEEK

    def normalised(self) -> list[float] | None:
        """The 168 hourly counts rescaled to mean 1, or ``None`` until complete and nonzero."""
        if not self.complete:
            return None
        mean = sum(self.counts) / HOURS_PER_WEEK
        return None if mean <= 0 else [c / mean for c in self.counts]

    def next_peak(
        self,
        ts: float,
        *,
        lead_min_s: float = 900.0,
        lead_max_s: float = 3600.0,
        ratio: float = 1.4,
        min_hours: int = 2,
        min_per_hour: float = 0.0,
    ) -> Peak | None:
        """The learned peak starting between ``lead_min_s`` and ``lead_max_s`` after ``ts``.

        Peaks start on hour boundaries; ``None`` when none starts in that span, the profile
        is incomplete, or the busiest hour of the peak is below ``min_per_hour``.
        """
        start_hour = math.ceil((ts + lead_min_s) / 3600.0)
        if start_hour * 3600.0 - ts > lead_max_s:
            return None
        args = (start_hour, self.hour, ratio, min_hours, min_per_hour)
        if self._memo is None or self._memo[0] != args:
            self._memo = (args, self._peak_from(start_hour, ratio, min_hours, min_per_hour))
        return self._memo[1]

    def _peak_from(
        self, start_hour: int, ratio: float, min_hours: int, min_per_hour: float
    ) -> Peak | None:
        if not self.complete:
            return None
        baseline = self.baseline()
        if baseline <= 0:
            return None
        threshold = ratio * baseline
        counts = self.counts

        def at(h: int) -> float:
            return counts[(h + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK]

        if at(start_hour) <= threshold or at(start_hour - 1) > threshold:
            return None
        end_hour = start_hour
        while at(end_hour) > threshold and end_hour - start_hour < HOURS_PER_WEEK:
            end_hour += 1
        if end_hour - start_hour < min_hours:
            return None
        busiest = max(range(start_hour, end_hour), key=at)
        if at(busiest) < min_per_hour:
            return None
        return Peak(
            start_ts=start_hour * 3600.0,
            end_ts=end_hour * 3600.0,
            peak_ts=busiest * 3600.0 + 1800.0,
            expected_per_hour=at(busiest),
            baseline_per_hour=baseline,
            threshold_per_hour=threshold,
        )

    # ---------------------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state."""
        return {
            "alpha": self.alpha,
            "counts": self.counts.tolist(),
            "visits": self.visits.tolist(),
            "hour": self.hour,
            "first_hour": self.first_hour,
            "current": self.current,
            "skip": self.skip,
            "last_ts": self.last_ts if math.isfinite(self.last_ts) else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> UsageProfile:
        """Rebuild a profile from :meth:`to_state`."""
        p = cls(state["alpha"])
        p.counts = array("d", state["counts"])
        p.visits = array("l", state["visits"])
        p.hour = state["hour"]
        p.first_hour = state["first_hour"]
        p.current = state["current"]
        p.skip = state["skip"]
        p.last_ts = -math.inf if state["last_ts"] is None else state["last_ts"]
        return p


@dataclass(frozen=True, slots=True)
class ScheduledPeak:
    """A learned peak of one tenant's use of one service, announced ahead of time."""

    tenant: str
    service: str
    region: str
    ts: float
    peak: Peak


class _TenantUsage:
    __slots__ = ("announced", "profile", "region")

    def __init__(self, profile: UsageProfile, region: str) -> None:
        self.profile = profile
        self.region = region
        self.announced = -math.inf  # start of the last peak announced


class UsageModel:
    """Usage profiles per (tenant, service) and per (service, region), and peak announcements.

    Parameters
    ----------
    alpha
        See :class:`UsageProfile`.
    peak_ratio
        An hour is part of a peak when its learned count exceeds this many times the median
        hour of the week.
    min_peak_hours
        Consecutive peak hours that make a peak.
    min_peak_per_hour
        Events in the busiest hour a (tenant, service) peak needs to be announced, so that
        the noise of a quiet tenant does not make peaks.
    lead_min_s, lead_max_s
        A peak is announced by the first event between ``lead_max_s`` and ``lead_min_s``
        before it starts; once per peak.
    ttl_s
        Keys without an event for this long (event time) are dropped by :meth:`evict_idle`.
    max_keys
        Most (tenant, service) keys, and most (service, region) keys, kept; the least
        recently seen is dropped beyond it.

    Notes
    -----
    Memory is about 2 KiB per key (:class:`UsageProfile`), for at most ``2 * max_keys`` keys.
    Tenant names are used as given: pass pseudonyms.

    Examples
    --------
    >>> monday = 1_704_067_200.0
    >>> m = UsageModel(min_peak_per_hour=0)
    >>> announced = []
    >>> for i in range(15 * 24 * 12):  # every 5 minutes for 15 days
    ...     ts = monday + i * 300.0
    ...     busy = (i // 288) % 7 < 5 and 9 <= (i // 12) % 24 < 12
    ...     m.learn_series(ts, "api", "eu-west", 3.0 if busy else 1.0)
    ...     if (p := m.learn_tenant(ts, "t_1", "api", "eu-west", 3.0 if busy else 1.0)):
    ...         announced.append(p)
    >>> [int((p.ts - monday) // 86_400) for p in announced]  # weekdays from the second week
    [7, 8, 9, 10, 11, 14]
    >>> {((p.ts - monday) / 3600 % 24, (p.peak.start_ts - p.ts) / 60) for p in announced}
    {(8.0, 60.0)}
    >>> len(m.prior_for("api", "eu-west")), round(max(m.prior_for("api")), 2)
    (168, 2.55)
    """

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        peak_ratio: float = 1.4,
        min_peak_hours: int = 2,
        min_peak_per_hour: float = 60.0,
        lead_min_s: float = 900.0,
        lead_max_s: float = 3600.0,
        ttl_s: float = 14 * DAY_S,
        max_keys: int = 100_000,
    ) -> None:
        if not 0 <= lead_min_s < lead_max_s:
            raise ValueError("need 0 <= lead_min_s < lead_max_s")
        self.alpha = alpha
        self.peak_ratio = peak_ratio
        self.min_peak_hours = min_peak_hours
        self.min_peak_per_hour = min_peak_per_hour
        self.lead_min_s = lead_min_s
        self.lead_max_s = lead_max_s
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._tenants: OrderedDict[tuple[str, str], _TenantUsage] = OrderedDict()
        self._series: OrderedDict[tuple[str, str], UsageProfile] = OrderedDict()

    def __len__(self) -> int:
        """Number of (tenant, service) keys."""
        return len(self._tenants)

    def tenants(self) -> Iterator[tuple[str, str]]:
        """The (tenant, service) keys."""
        return iter(self._tenants)

    def series(self) -> Iterator[tuple[str, str]]:
        """The (service, region) keys."""
        return iter(self._series)

    def learn_series(self, ts: float, service: str, region: str, weight: float = 1.0) -> None:
        """Count ``weight`` events of (service, region), for :meth:`prior_for`."""
        key = (service, region)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = UsageProfile(self.alpha)
            if len(self._series) > self.max_keys:
                self._series.popitem(last=False)
        else:
            self._series.move_to_end(key)
        series.learn_one(ts, weight)

    def learn_tenant(
        self, ts: float, tenant: str, service: str, region: str, weight: float = 1.0
    ) -> ScheduledPeak | None:
        """Count ``weight`` events of (tenant, service); return a peak to announce, if due.

        ``region`` is where the tenant uses the service (its latest), named in the
        announcement.
        """
        key = (tenant, service)
        entry = self._tenants.get(key)
        if entry is None:
            entry = self._tenants[key] = _TenantUsage(UsageProfile(self.alpha), region)
            if len(self._tenants) > self.max_keys:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(key)
            entry.region = region
        entry.profile.learn_one(ts, weight)

        peak = entry.profile.next_peak(
            ts,
            lead_min_s=self.lead_min_s,
            lead_max_s=self.lead_max_s,
            ratio=self.peak_ratio,
            min_hours=self.min_peak_hours,
            min_per_hour=self.min_peak_per_hour,
        )
        if peak is None or peak.start_ts <= entry.announced:
            return None
        entry.announced = peak.start_ts
        return ScheduledPeak(tenant, service, region, ts, peak)

    def profile(self, tenant: str, service: str) -> UsageProfile | None:
        """The profile of (tenant, service), if known."""
        entry = self._tenants.get((tenant, service))
        return None if entry is None else entry.profile

    def series_profile(self, service: str, region: str) -> UsageProfile | None:
        """The profile of (service, region) over all tenants, if known."""
        return self._series.get((service, region))

    def prior_for(self, service: str, region: str | None = None) -> list[float] | None:
        """Hour-of-week prior for the load forecaster of ``service`` (in ``region``).

        The 168 values (index ``weekday * 24 + hour``, Monday 0, UTC) are the learned
        counts summed over tenants (and over regions when ``region`` is ``None``), rescaled
        to mean 1; ``None`` until a whole week has been learned. Regions peak at different
        UTC hours, so a per-region prior is the better one for a per-region forecaster.
        """
        if region is not None:
            # Asked for every tracked series at each metrics checkpoint: one lookup, not a
            # scan of every (service, region).
            one = self._series.get((service, region))
            profiles = [] if one is None else [one]
        else:
            profiles = [p for (s, _), p in self._series.items() if s == service]
        profiles = [p for p in profiles if p.complete]
        if not profiles:
            return None
        total = [sum(p.counts[i] for p in profiles) for i in range(HOURS_PER_WEEK)]
        mean = sum(total) / HOURS_PER_WEEK
        return None if mean <= 0 else [c / mean for c in total]

    def forget_tenant(self, tenant: str, seen_until: float = math.inf) -> int:
        """Drop every (``tenant``, service) profile (erasure) last fed no later than
        ``seen_until``; return how many. The (service, region) profiles are sums over
        all tenants and stay.

        >>> m = UsageModel()
        >>> _ = m.learn_tenant(100.0, "t_1", "api", "eu-west")
        >>> _ = m.learn_tenant(100.0, "t_1", "web", "eu-west")
        >>> m.forget_tenant("t_1"), len(m)
        (2, 0)
        """
        keys = [
            k
            for k, v in self._tenants.items()
            if k[0] == tenant and v.profile.last_ts <= seen_until
        ]
        for key in keys:
            del self._tenants[key]
        return len(keys)

    def evict_idle(self, now: float) -> int:
        """Drop keys without an event for ``ttl_s``; return how many."""
        dropped = 0
        for table in (self._tenants, self._series):
            idle = [
                k
                for k, v in table.items()
                if now - (v.profile if isinstance(v, _TenantUsage) else v).last_ts > self.ttl_s
            ]
            for key in idle:
                del table[key]
            dropped += len(idle)
        return dropped

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every profile."""
        return {
            "v": _STATE_VERSION,
            "tenants": [
                [
                    t,
                    s,
                    e.region,
                    e.announced if math.isfinite(e.announced) else None,
                    e.profile.to_state(),
                ]
                for (t, s), e in self._tenants.items()
            ],
            "series": [[s, r, p.to_state()] for (s, r), p in self._series.items()],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace what is in memory with :meth:`to_state` output."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported usage model state version {state.get('v')!r}")
        self._tenants.clear()
        self._series.clear()
        for tenant, service, region, announced, profile in state["tenants"]:
            entry = _TenantUsage(UsageProfile.from_state(profile), region)
            entry.announced = -math.inf if announced is None else announced
            self._tenants[(tenant, service)] = entry
        for service, region, profile in state["series"]:
            self._series[(service, region)] = UsageProfile.from_state(profile)
