"""Health of a region, learned online from its telemetry, and silence as a failure signal.

A :class:`RegionHealth` turns what a region reports into a score in [0, 1]. Each signal gives a
*severity*, 1.0 at its alarm threshold, and a component score ``1 / (1 + s ** p)`` (0.5 at the
threshold, ``p = severity_power``); the region's score is the product of its components, so
independent pieces of evidence add up, and the region is healthy while the score is at least
``threshold``. The components:

``metrics``
    Per service, the error rate (and ``1 - availability`` when reported) above its learned
    normal, and the p99 latency as a ratio to its learned normal; the service's severity is the
    worst of these, and the region's is the *median* over its services, so one bad deploy of one
    service is a remediation matter, not a regional failure.
``interactions``
    The success rate of user interactions (last ``interaction_halflife_s``) below its learned
    normal, judged on its Wilson upper bound so that a handful of failures in a quiet region
    is no evidence.
``anomaly``
    The median of the services' latest anomaly scores (:mod:`models.detect.anomaly`), damped by
    ``anomaly_weight``: anomalies corroborate, they do not fail a region on their own.
``slo_burn``
    The median of the services' latest error-budget burn rates, against ``slo_burn_limit``
    (one burning service is a remediation matter, not a regional failure); the region's own
    latest burn when no service reported one.
``silence``
    Time since the region's last telemetry of any kind, against the *global* event-time
    watermark (the latest event time seen from any region): after ``grace_s`` of producer lag
    the component falls, and a region silent for more than ``grace_s + silence_tolerance_s``
    is unhealthy whatever else it said before. A stall of the whole pipeline stops the
    watermark too, so it does not make every region look failed.

Normals are exponentially weighted means and variances in event time (``baseline_halflife_s``),
one per service and metric, so a region whose services are normally slower is not unhealthy.
A deviation is judged against ``max(z_tolerance * sd, floor)``. Values at or beyond the alarm
threshold are not learned (nor are interaction successes while their window alarms), so an
incident never becomes the norm, however long it lasts; values below it are learned clipped
to the band, so a drift below the threshold is followed.

:class:`RegionHealthBank` keeps one :class:`RegionHealth` per region, tracks the watermark,
and evaluates every region at once (the Faust agent does so from an ``@app.timer``).
"""

from __future__ import annotations

import math
import statistics
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from models.health.wilson import wilson_upper

__all__ = [
    "COMPONENTS",
    "DEFAULT_HEALTH_CONFIG",
    "HealthConfig",
    "HealthReport",
    "RegionHealth",
    "RegionHealthBank",
]

COMPONENTS = ("metrics", "interactions", "anomaly", "slo_burn", "silence")
"""Names of the components of a :class:`HealthReport`."""

_STATE_VERSION = 1
# Severities are capped so that s ** p stays finite.
_MAX_SEVERITY = 1e3


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Settings of :class:`RegionHealth`; one instance is shared by every region.

    Parameters
    ----------
    grace_s
        Silence tolerated as producer lag, in event seconds, before health falls.
    silence_tolerance_s
        Further silence at which the silence component reaches its alarm threshold.
    threshold
        Score at or above which a region is healthy.
    severity_power
        ``p`` of the component score ``1 / (1 + s ** p)``.
    baseline_halflife_s
        Half-life, in event seconds, of the learned normals.
    warmup
        Samples a normal learns before its spread counts (until then only the floors do).
    error_tolerance
        Error rate (or unavailability) above normal that is an alarm, at least.
    latency_tolerance
        Ratio of p99 latency to normal that is an alarm, at least.
    z_tolerance
        Deviation in standard deviations of the normal that is an alarm, at least.
    interaction_halflife_s
        Half-life, in event seconds, of the current interaction success counts.
    success_tolerance
        Drop of the success rate's upper confidence bound below normal that is an alarm.
    success_z
        Standard normal quantile of that bound (3: about 99.9 %).
    min_interactions
        Interactions the normal success rate needs before it is used.
    anomaly_weight
        Multiplies the anomaly severity.
    slo_burn_limit
        Burn rate that is an alarm (14.4: a 30-day budget gone in two days).
    fresh_s
        A service's signals count while they are at most this much older than the region's
        latest telemetry.
    service_ttl_s
        Event seconds after which a silent service is forgotten.
    max_services
        Services remembered per region, least recently seen dropped first. It must exceed
        the services a region runs: when they report in turn, a service dropped before it
        reports again never has a normal to be judged against.

    Examples
    --------
    >>> HealthConfig(grace_s=5.0).grace_s
    5.0
    >>> HealthConfig(threshold=1.5)
    Traceback (most recent call last):
    ...
    ValueError: threshold must be in (0, 1)

    """

    grace_s: float = 10.0
    silence_tolerance_s: float = 2.5
    threshold: float = 0.5
    severity_power: float = 4.0
    baseline_halflife_s: float = 3600.0
    warmup: int = 12
    error_tolerance: float = 0.05
    latency_tolerance: float = 2.0
    z_tolerance: float = 5.0
    interaction_halflife_s: float = 15.0
    success_tolerance: float = 0.05
    success_z: float = 3.0
    min_interactions: float = 20.0
    anomaly_weight: float = 0.5
    slo_burn_limit: float = 14.4
    fresh_s: float = 60.0
    service_ttl_s: float = 3600.0
    max_services: int = 4096

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        if self.latency_tolerance <= 1.0:
            raise ValueError("latency_tolerance must be > 1 (a ratio to normal)")
        positive = (
            "silence_tolerance_s",
            "severity_power",
            "baseline_halflife_s",
            "error_tolerance",
            "z_tolerance",
            "interaction_halflife_s",
            "success_tolerance",
            "slo_burn_limit",
            "fresh_s",
            "service_ttl_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.grace_s < 0 or self.max_services < 1 or self.warmup < 0:
            raise ValueError("need grace_s >= 0, max_services >= 1 and warmup >= 0")


DEFAULT_HEALTH_CONFIG = HealthConfig()
"""The settings used when none are given."""


def _component(severity: float, power: float) -> float:
    return 1.0 / (1.0 + min(severity, _MAX_SEVERITY) ** power)


def _decay(dt: float, halflife: float) -> float:
    """Weight left to the past after ``dt`` event seconds (1.0 for a step back in time)."""
    return 0.5 ** (max(dt, 0.0) / halflife)


class _Normal:
    """Exponentially weighted mean and variance of one metric, in event time.

    Deviations above the mean are judged against ``max(z * sd, floor)``; values beyond that
    band above the mean are not learned, others are learned clipped to it.
    """

    __slots__ = ("floor", "mean", "n", "ts", "var")

    def __init__(self, floor: float) -> None:
        self.floor = floor
        self.mean = 0.0
        self.var = 0.0
        self.n = 0
        self.ts = 0.0

    def observe(self, ts: float, x: float, config: HealthConfig) -> float:
        """The severity of ``x`` against the normal so far; then learn ``x`` unless it is
        alarming (severity 1 or more), clipped to the band.

        The band is computed once for both: the region evaluator does this for every health
        metric of every sample, and judging and learning apart computed it four times.
        """
        n = self.n
        if n == 0:
            self.mean, self.n, self.ts = x, 1, ts
            return 0.0
        band = (
            self.floor
            if n < config.warmup
            else max(config.z_tolerance * math.sqrt(self.var), self.floor)
        )
        deviation = x - self.mean
        severity = max(0.0, deviation) / band
        if severity >= 1.0:
            # An alarming value is evidence of an incident, not of what is normal.
            return severity
        # A running mean until the half-life takes over, so early samples are not overweighted.
        alpha = max(1.0 / (n + 1), 1.0 - _decay(ts - self.ts, config.baseline_halflife_s))
        r = min(max(deviation, -band), band)
        self.mean += alpha * r
        self.var = (1.0 - alpha) * (self.var + alpha * r * r)
        self.n = n + 1
        self.ts = max(self.ts, ts)
        return severity

    def to_list(self) -> list[float]:
        return [self.mean, self.var, self.n, self.ts]

    @classmethod
    def from_list(cls, floor: float, values: list[float]) -> _Normal:
        normal = cls(floor)
        normal.mean, normal.var, normal.ts = values[0], values[1], values[3]
        normal.n = int(values[2])
        return normal


class _Service:
    """What one service of the region reported last, and its normals."""

    __slots__ = (
        "anomaly",
        "anomaly_ts",
        "burn",
        "burn_ts",
        "error",
        "last_ts",
        "latency",
        "severity",
        "signals",
        "unavailable",
    )

    def __init__(self, config: HealthConfig) -> None:
        self.error = _Normal(config.error_tolerance)
        self.latency = _Normal(math.log(config.latency_tolerance))
        self.unavailable: _Normal | None = None
        self.last_ts = -math.inf
        self.severity = 0.0
        self.signals: dict[str, float] = {}
        self.anomaly = 0.0
        self.anomaly_ts = -math.inf
        self.burn = 0.0
        self.burn_ts = -math.inf


def _record_anomaly(entry: _Service, ts: float, score: float) -> None:
    """Record one anomaly score of ``entry``'s service (ignored unless finite)."""
    if not math.isfinite(score):
        return
    score = min(max(float(score), 0.0), 1.0)
    # Several series of a service report in turn; within a moment the worst one counts.
    if ts - entry.anomaly_ts > 1.0 or score > entry.anomaly:
        entry.anomaly = score
    entry.anomaly_ts = max(entry.anomaly_ts, ts)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A region's health at one event time, with the evidence behind it.

    Attributes
    ----------
    region
        The region.
    ts
        Event time of the evaluation (the watermark).
    score
        Product of the component scores, in [0, 1].
    healthy
        Whether ``score`` reaches the configured threshold.
    components
        Component name (:data:`COMPONENTS`) -> score in [0, 1]; 1.0 is no evidence of trouble.
    silent_for_s
        Event seconds since the region's latest telemetry.
    signals
        The inputs behind the components (median error rate and its normal, p99 ratio to
        normal, success rate and its normal, ...), ``None`` where unknown.

    Examples
    --------
    >>> r = HealthReport("eu-west", 100.0, 0.9, True, {"silence": 1.0}, 2.0, {})
    >>> r.to_dict()["components"]
    {'silence': 1.0}

    """

    region: str
    ts: float
    score: float
    healthy: bool
    components: Mapping[str, float]
    silent_for_s: float
    signals: Mapping[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for decision evidence."""

        def rounded(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "region": self.region,
            "ts": self.ts,
            "score": round(self.score, 4),
            "healthy": self.healthy,
            "components": {k: round(v, 4) for k, v in self.components.items()},
            "silent_for_s": round(self.silent_for_s, 3),
            "signals": {k: rounded(v) for k, v in self.signals.items()},
        }


class RegionHealth:
    """Online health score of one region from its metrics, interactions and silence.

    See the module docstring for the components. Feed it with the ``observe_*`` methods in
    any order (each takes the event time of the observation) and call :meth:`evaluate` with
    the global event-time watermark.

    **Memory** is bounded: per service three normals and the latest signals, about 1 KiB, for
    at most ``max_services`` services (silent ones forgotten after ``service_ttl_s``); the
    interaction, burn and silence state is a few floats.

    Parameters
    ----------
    region
        The region's name, copied into reports.
    config
        Settings, shared by reference; :data:`DEFAULT_HEALTH_CONFIG` if omitted.
    since
        Event time from which a region that has not reported yet counts as silent; by
        default the first :meth:`evaluate`.

    Examples
    --------
    Two minutes of normal telemetry, then silence:

    >>> health = RegionHealth("eu-west")
    >>> for i in range(24):
    ...     ts = 5.0 * i
    ...     health.observe_metrics(ts, "api", {"error_rate": 0.002, "latency_p99_ms": 120.0})
    ...     health.observe_interactions(ts, successes=10, total=10)
    >>> report = health.evaluate(now=115.0)
    >>> report.healthy, report.silent_for_s
    (True, 0.0)
    >>> report = health.evaluate(now=140.0)
    >>> report.healthy, report.silent_for_s, report.components["silence"] < 0.5
    (False, 25.0, True)

    A brown-out: errors and latency well above this region's normal:

    >>> health.observe_metrics(120.0, "api", {"error_rate": 0.2, "latency_p99_ms": 600.0})
    >>> report = health.evaluate(now=120.0)
    >>> report.healthy, round(report.signals["p99_ratio"], 1)
    (False, 5.0)

    """

    __slots__ = (
        "_base_n",
        "_base_s",
        "_base_ts",
        "_burn",
        "_burn_ts",
        "_config",
        "_last_ts",
        "_services",
        "_since",
        "_win_n",
        "_win_s",
        "_win_ts",
        "region",
    )

    def __init__(
        self, region: str, config: HealthConfig | None = None, *, since: float | None = None
    ) -> None:
        self.region = region
        self._config = DEFAULT_HEALTH_CONFIG if config is None else config
        self._since = since
        self._last_ts: float | None = None
        self._services: OrderedDict[str, _Service] = OrderedDict()
        self._win_s = 0.0
        self._win_n = 0.0
        self._win_ts = 0.0
        self._base_s = 0.0
        self._base_n = 0.0
        self._base_ts = 0.0
        self._burn = 0.0
        self._burn_ts = -math.inf

    @property
    def config(self) -> HealthConfig:
        return self._config

    @property
    def last_ts(self) -> float | None:
        """Event time of the region's latest telemetry of any kind (``None`` before any)."""
        return self._last_ts

    def __len__(self) -> int:
        """Number of services remembered."""
        return len(self._services)

    def _seen(self, ts: float) -> None:
        if self._last_ts is None or ts > self._last_ts:
            self._last_ts = ts

    def _service(self, service: str) -> _Service:
        entry = self._services.get(service)
        if entry is None:
            entry = self._services[service] = _Service(self._config)
            if len(self._services) > self._config.max_services:
                self._services.popitem(last=False)
        else:
            self._services.move_to_end(service)
        return entry

    def observe_metrics(
        self,
        ts: float,
        service: str,
        metrics: Mapping[str, float],
        anomaly: float | None = None,
    ) -> None:
        """Learn one metrics sample of ``service``; uses ``error_rate``, ``latency_p99_ms``
        and ``availability`` (a fraction) when present, ignores the rest. ``anomaly``, if
        given, is then recorded as :meth:`observe_anomaly` would: the region evaluator gives
        the service's held score with every sample, and one call finds the service once."""
        config = self._config
        self._seen(ts)
        entry = self._service(service)
        severity = 0.0
        signals: dict[str, float] = {}
        error = metrics.get("error_rate")
        if error is not None and math.isfinite(error):
            error = min(max(float(error), 0.0), 1.0)
            normal = entry.error
            signals["error_rate"] = error
            signals["error_rate_normal"] = normal.mean if normal.n else error
            severity = max(severity, normal.observe(ts, error, config))
        p99 = metrics.get("latency_p99_ms")
        if p99 is not None and math.isfinite(p99) and p99 > 0:
            log_p99 = math.log(p99)
            normal = entry.latency
            signals["p99_ratio"] = math.exp(log_p99 - (normal.mean if normal.n else log_p99))
            severity = max(severity, normal.observe(ts, log_p99, config))
        availability = metrics.get("availability")
        if availability is not None and math.isfinite(availability):
            unavailable = 1.0 - min(max(float(availability), 0.0), 1.0)
            if entry.unavailable is None:
                entry.unavailable = _Normal(config.error_tolerance)
            signals["availability"] = 1.0 - unavailable
            severity = max(severity, entry.unavailable.observe(ts, unavailable, config))
        if signals and ts >= entry.last_ts:
            entry.severity = severity
            entry.signals = signals
            entry.last_ts = ts
        if anomaly is not None:
            _record_anomaly(entry, ts, anomaly)

    def observe_anomaly(self, ts: float, service: str, score: float) -> None:
        """Record the latest anomaly score in [0, 1] of one of ``service``'s series."""
        self._seen(ts)
        _record_anomaly(self._service(service), ts, score)

    def observe_interactions(self, ts: float, successes: int, total: int) -> None:
        """Learn ``total`` user interactions at ``ts``, of which ``successes`` succeeded."""
        if total <= 0:
            return
        config = self._config
        self._seen(ts)
        successes = min(max(successes, 0), total)
        keep = _decay(ts - self._win_ts, config.interaction_halflife_s)
        self._win_s = self._win_s * keep + successes
        self._win_n = self._win_n * keep + total
        self._win_ts = max(self._win_ts, ts)
        # The normal learns only while the current window is not alarming, so an incident
        # does not become the norm.
        if self._success_severity() < 1.0:
            keep = _decay(ts - self._base_ts, config.baseline_halflife_s)
            self._base_s = self._base_s * keep + successes
            self._base_n = self._base_n * keep + total
            self._base_ts = max(self._base_ts, ts)

    def observe_slo_burn(self, ts: float, burn: float, service: str | None = None) -> None:
        """Record the latest error-budget burn rate (1.0: spending it exactly) of ``service``,
        or of the region as a whole if ``None``."""
        self._seen(ts)
        if service is None:
            if math.isfinite(burn) and ts >= self._burn_ts:
                self._burn = max(0.0, float(burn))
                self._burn_ts = ts
            return
        entry = self._service(service)
        if math.isfinite(burn) and ts >= entry.burn_ts:
            entry.burn = max(0.0, float(burn))
            entry.burn_ts = ts

    def _success_severity(self, now: float | None = None) -> float:
        config = self._config
        if self._base_n < config.min_interactions:
            return 0.0
        n = self._win_n
        s = self._win_s
        if now is not None:
            keep = _decay(now - self._win_ts, config.interaction_halflife_s)
            n, s = n * keep, s * keep
        if n <= 0.0:
            return 0.0
        upper = wilson_upper(s, n, config.success_z)
        return max(0.0, self._base_s / self._base_n - upper) / config.success_tolerance

    def evaluate(self, now: float) -> HealthReport:
        """Score the region at event time ``now``, the global watermark; learns nothing."""
        config = self._config
        last = self._last_ts
        if last is None:
            if self._since is None:
                self._since = now
            last = self._since
        silent_for = max(0.0, now - last)
        fresh_after = last - config.fresh_s
        services = [e for e in self._services.values() if e.last_ts >= fresh_after]
        anomalies = [e.anomaly for e in self._services.values() if e.anomaly_ts >= fresh_after]

        power = config.severity_power
        sev_metrics = statistics.median(e.severity for e in services) if services else 0.0
        sev_success = self._success_severity(now)
        sev_anomaly = 0.0
        anomaly = statistics.median(anomalies) if anomalies else None
        if anomaly is not None:
            odds = _MAX_SEVERITY if anomaly >= 1.0 else anomaly / (1.0 - anomaly)
            # Inverse of the s**4 / (1 + s**4) squashing of models.detect.anomaly scores.
            sev_anomaly = config.anomaly_weight * odds**0.25
        burns = [e.burn for e in self._services.values() if e.burn_ts >= fresh_after]
        if burns:
            burn: float | None = statistics.median(burns)
        else:
            burn = self._burn if self._burn_ts >= fresh_after else None
        sev_burn = 0.0 if burn is None else burn / config.slo_burn_limit
        sev_silence = max(0.0, silent_for - config.grace_s) / config.silence_tolerance_s
        components = {
            "metrics": _component(sev_metrics, power),
            "interactions": _component(sev_success, power),
            "anomaly": _component(sev_anomaly, power),
            "slo_burn": _component(sev_burn, power),
            "silence": _component(sev_silence, power),
        }
        score = math.prod(components.values())

        def median_signal(name: str) -> float | None:
            values = [e.signals[name] for e in services if name in e.signals]
            return statistics.median(values) if values else None

        keep = _decay(now - self._win_ts, config.interaction_halflife_s)
        signals = {
            "error_rate": median_signal("error_rate"),
            "error_rate_normal": median_signal("error_rate_normal"),
            "p99_ratio": median_signal("p99_ratio"),
            "availability": median_signal("availability"),
            "success_rate": self._win_s / self._win_n if self._win_n > 0 else None,
            "success_rate_normal": self._base_s / self._base_n if self._base_n > 0 else None,
            "interactions": self._win_n * keep,
            "anomaly": anomaly,
            "slo_burn": burn,
            "services": float(len(services)),
        }
        return HealthReport(
            region=self.region,
            ts=now,
            score=score,
            healthy=score >= config.threshold,
            components=components,
            silent_for_s=silent_for,
            signals=signals,
        )

    def evict_idle(self, now: float) -> int:
        """Forget services silent for more than ``service_ttl_s`` at ``now``; return how many."""
        cutoff = now - self._config.service_ttl_s
        idle = [
            name
            for name, e in self._services.items()
            if max(e.last_ts, e.anomaly_ts, e.burn_ts) < cutoff
        ]
        for name in idle:
            del self._services[name]
        return len(idle)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot of what was learned (config not included)."""
        services = {}
        for name, e in self._services.items():
            services[name] = {
                "error": e.error.to_list(),
                "latency": e.latency.to_list(),
                "unavailable": None if e.unavailable is None else e.unavailable.to_list(),
                "last_ts": e.last_ts if math.isfinite(e.last_ts) else None,
                "severity": e.severity,
                "signals": e.signals,
                "anomaly": e.anomaly,
                "anomaly_ts": e.anomaly_ts if math.isfinite(e.anomaly_ts) else None,
                "burn": [e.burn, e.burn_ts if math.isfinite(e.burn_ts) else None],
            }
        return {
            "v": _STATE_VERSION,
            "region": self.region,
            "since": self._since,
            "last_ts": self._last_ts,
            "window": [self._win_s, self._win_n, self._win_ts],
            "normal": [self._base_s, self._base_n, self._base_ts],
            "burn": [self._burn, self._burn_ts if math.isfinite(self._burn_ts) else None],
            "services": services,
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], config: HealthConfig | None = None
    ) -> RegionHealth:
        """Rebuild from :meth:`to_state`; ``config`` should be the original's."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported region health state version {state.get('v')!r}")
        health = cls(state["region"], config, since=state["since"])
        config = health._config
        health._last_ts = state["last_ts"]
        health._win_s, health._win_n, health._win_ts = state["window"]
        health._base_s, health._base_n, health._base_ts = state["normal"]
        burn, burn_ts = state["burn"]
        health._burn = burn
        health._burn_ts = -math.inf if burn_ts is None else burn_ts
        for name, s in state["services"].items():
            entry = _Service(config)
            entry.error = _Normal.from_list(config.error_tolerance, s["error"])
            entry.latency = _Normal.from_list(math.log(config.latency_tolerance), s["latency"])
            if s["unavailable"] is not None:
                entry.unavailable = _Normal.from_list(config.error_tolerance, s["unavailable"])
            entry.last_ts = -math.inf if s["last_ts"] is None else s["last_ts"]
            entry.severity = s["severity"]
            entry.signals = dict(s["signals"])
            entry.anomaly = s["anomaly"]
            entry.anomaly_ts = -math.inf if s["anomaly_ts"] is None else s["anomaly_ts"]
            # (A state written before services had burns has none.)
            burn, burn_ts = s.get("burn") or (0.0, None)
            entry.burn = burn
            entry.burn_ts = -math.inf if burn_ts is None else burn_ts
            health._services[name] = entry
        return health


class RegionHealthBank:
    """One :class:`RegionHealth` per region, the global watermark, and idle-region eviction.

    Configured regions are tracked from the first telemetry of any region: one that never
    reports is silent from then on, and so fails. Other regions are tracked from their first
    telemetry and forgotten after ``ttl_s`` of event time without any (configured ones are
    kept: their silence is the evidence of an outage).

    Parameters
    ----------
    regions
        The configured regions, e.g. ``RegionConfig.names``.
    config
        Shared by every region; :data:`DEFAULT_HEALTH_CONFIG` if omitted.
    ttl_s
        Idle time after which an unconfigured region is dropped by :meth:`evict_idle`.
    max_regions
        Cap on unconfigured regions (least recently seen dropped first), so that stray
        region names cannot grow the state without bound.

    Examples
    --------
    >>> bank = RegionHealthBank(["us-east", "eu-west"])
    >>> for i in range(12):
    ...     bank.observe_metrics(5.0 * i, "us-east", "api", {"error_rate": 0.001})
    >>> reports = bank.evaluate()
    >>> bank.watermark, reports["us-east"].healthy, reports["eu-west"].healthy
    (55.0, True, False)
    >>> reports["eu-west"].silent_for_s
    55.0

    """

    def __init__(
        self,
        regions: Iterable[str] = (),
        config: HealthConfig | None = None,
        *,
        ttl_s: float = 86_400.0,
        max_regions: int = 64,
    ) -> None:
        self._config = DEFAULT_HEALTH_CONFIG if config is None else config
        self._configured = tuple(dict.fromkeys(regions))
        self._regions: dict[str, RegionHealth] = {}
        # Unconfigured regions, least recently seen first.
        self._extra: OrderedDict[str, RegionHealth] = OrderedDict()
        self.ttl_s = ttl_s
        self.max_regions = max_regions
        self._watermark: float | None = None

    @property
    def watermark(self) -> float | None:
        """Latest event time seen from any region (``None`` before any telemetry)."""
        return self._watermark

    def __contains__(self, region: str) -> bool:
        return region in self._regions or region in self._extra

    def __len__(self) -> int:
        return len(self._regions) + len(self._extra)

    def get(self, region: str) -> RegionHealth | None:
        """The region's health tracker, if it has one."""
        return self._regions.get(region) or self._extra.get(region)

    def _region(self, ts: float, region: str) -> RegionHealth:
        if self._watermark is None:
            for name in self._configured:
                self._regions[name] = RegionHealth(name, self._config, since=ts)
        if self._watermark is None or ts > self._watermark:
            self._watermark = ts
        health = self._regions.get(region)
        if health is not None:
            return health
        health = self._extra.get(region)
        if health is None:
            health = self._extra[region] = RegionHealth(region, self._config, since=ts)
            if len(self._extra) > self.max_regions:
                self._extra.popitem(last=False)
        else:
            self._extra.move_to_end(region)
        return health

    def observe_metrics(
        self,
        ts: float,
        region: str,
        service: str,
        metrics: Mapping[str, float],
        anomaly: float | None = None,
    ) -> None:
        """See :meth:`RegionHealth.observe_metrics`."""
        self._region(ts, region).observe_metrics(ts, service, metrics, anomaly)

    def observe_anomaly(self, ts: float, region: str, service: str, score: float) -> None:
        """See :meth:`RegionHealth.observe_anomaly`."""
        self._region(ts, region).observe_anomaly(ts, service, score)

    def observe_interactions(self, ts: float, region: str, successes: int, total: int) -> None:
        """See :meth:`RegionHealth.observe_interactions`."""
        self._region(ts, region).observe_interactions(ts, successes, total)

    def observe_slo_burn(
        self, ts: float, region: str, burn: float, service: str | None = None
    ) -> None:
        """See :meth:`RegionHealth.observe_slo_burn`."""
        self._region(ts, region).observe_slo_burn(ts, burn, service)

    def evaluate(self, now: float | None = None) -> dict[str, HealthReport]:
        """Every region's report at ``now`` (default: the watermark); empty before telemetry."""
        if now is None:
            now = self._watermark
        if now is None:
            return {}
        healths = [*self._regions.values(), *self._extra.values()]
        return {h.region: h.evaluate(now) for h in healths}

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot: the watermark and every region's state."""
        healths = [*self._regions.values(), *self._extra.values()]
        return {
            "v": _STATE_VERSION,
            "watermark": self._watermark,
            "regions": {h.region: h.to_state() for h in healths},
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        regions: Iterable[str] = (),
        config: HealthConfig | None = None,
        **settings: Any,
    ) -> RegionHealthBank:
        """Rebuild from :meth:`to_state`; the other arguments as for the constructor."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported region health state version {state.get('v')!r}")
        bank = cls(regions, config, **settings)
        bank._watermark = state["watermark"]
        for name, region_state in state["regions"].items():
            health = RegionHealth.from_state(region_state, bank._config)
            if name in bank._configured:
                bank._regions[name] = health
            else:
                bank._extra[name] = health
        if bank._watermark is not None:
            # Configured regions new to this state start their silence clock now.
            for name in bank._configured:
                if name not in bank._regions:
                    bank._regions[name] = RegionHealth(name, bank._config, since=bank._watermark)
        return bank

    def evict_idle(self, now: float | None = None) -> int:
        """Drop unconfigured regions idle for ``ttl_s`` and forget idle services everywhere.

        Returns the number of regions dropped.
        """
        now = self._watermark if now is None else now
        if now is None:
            return 0
        idle = [
            name
            for name, h in self._extra.items()
            if h.last_ts is None or h.last_ts < now - self.ttl_s
        ]
        for name in idle:
            del self._extra[name]
        for health in [*self._regions.values(), *self._extra.values()]:
            health.evict_idle(now)
        return len(idle)
