"""The metrics brain: per (service, region), anomaly detection, breach risk and scaling.

It turns metric samples into decisions: an ``anomaly`` decision when a metric
series starts an anomalous episode, a ``risk`` decision when a saturating metric
(memory, disk, connection pool, error budget) starts a risk episode, i.e. is likely
to breach its limit within its horizon, and a ``scaling`` decision when the desired
replica count changes. It is pure and synchronous; the metrics agent feeds it
and publishes what it returns.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.detect.anomaly import DEFAULT_DETECTOR_CONFIG, AnomalyScore, SeriesDetector
from models.detect.bank import deep_sizeof
from models.forecast.breach import (
    DEFAULT_LIMITS,
    OPEN_PROBABILITY,
    BreachForecaster,
    BreachLimit,
    BreachRisk,
)
from models.forecast.capacity import CapacityEstimator
from models.forecast.load import Forecast, LoadForecaster
from models.plugins.detectors import BoundDetector, DetectorPlugins
from models.plugins.forecasters import BoundForecaster, ForecasterPlugins
from models.plugins.policies import BoundPolicy, PolicyPlugins
from models.policy.autoscalers import PredictivePolicy, make_policy
from models.policy.scaling import ScalingRecommendation
from schemas import Decision, decision_id_for

__all__ = [
    "ANOMALY_MODEL_VERSION",
    "RISK_MODEL_VERSION",
    "SCALING_MODEL_VERSION",
    "MetricsBrain",
    "SeriesBrain",
]

ANOMALY_MODEL_VERSION = "anomaly-detector/2"
RISK_MODEL_VERSION = "breach-forecaster/1"
SCALING_MODEL_VERSION = "predictive-scaler/2"

# Replicas and cost are what the scaler controls, not symptoms: a scale-out
# must not look like an anomaly.
NOT_DETECTED = frozenset({"replicas", "cost_per_hour"})
# Utilisation steps whenever the replica count changes, so its anomalies are not
# published as decisions unless asked for (and, unpublished, not scored at all).
NOT_PUBLISHED = frozenset({"cpu_util", "mem_util"})
# For these, only a value above what was expected is news: latency falling after a
# scale-out, or as load ebbs in the evening, is not an incident.
LOWER_IS_BETTER = frozenset({"latency_p50_ms", "latency_p99_ms", "error_rate", "queue_depth"})
_STATE_VERSION = 1


@dataclass
class SeriesBrain:
    """Everything learned about one (service, region).

    Memory: one detector (about 2 KiB) per detected metric, at most
    ``max_metrics`` of them, one breach forecaster (about 0.5 KiB) per watched
    saturating metric, plus one predictive policy (about 12 KiB, and up to 80 KiB more
    of surge profiles for a series with recurring jumps of demand). ``quiet`` holds each
    detected metric's episode counters: (unflagged samples since the last flag,
    consecutive flags).
    """

    detectors: dict[str, SeriesDetector] = field(default_factory=dict)
    risks: dict[str, BreachForecaster] = field(default_factory=dict)
    quiet: dict[str, tuple[int, int]] = field(default_factory=dict)
    plugin_detectors: dict[str, BoundDetector] = field(default_factory=dict)
    policy: PredictivePolicy | None = None
    plugin_policy: BoundPolicy | None = None
    last_desired: int | None = None
    first_ts: float = math.nan
    last_ts: float = math.nan


class MetricsBrain:
    """Anomaly detectors per (service, region, metric) and a scaler per (service, region).

    Parameters
    ----------
    target_utilisation
        Utilisation the predictive scaler sizes for.
    startup_delay_s
        Time a new replica needs to become ready: the forecast horizon.
    min_replicas, max_replicas
        Bounds of every scaling decision.
    scaling_warmup_s
        Event seconds of data a series needs before it may get a scaling decision.
    episode_quiet
        Unflagged samples that end an anomalous episode; a new episode after it
        gets a new decision, samples inside one do not.
    min_flagged
        Consecutive flagged samples that make an episode, so a lone blip is not news.
    published_exclude
        Metrics whose anomalies are not published as decisions. Nothing else reads an
        anomaly score, so they get no detector either: a third of the work per sample.
    lower_is_better
        Metrics whose anomalies below the expected value start no episode.
    breach_limits
        Saturating metrics watched for a coming breach, with their limit, horizon
        and suggested action (:data:`models.forecast.breach.DEFAULT_LIMITS`).
    max_metrics
        Metrics per series that get a detector; further names are not detected.
    max_series
        Series kept in memory; the least recently updated one is evicted first.
    ttl_s
        Event seconds after which an idle series is evicted by :meth:`evict_idle`.
    plugins
        Detector plugins and the metrics they are bound to (:mod:`models.plugins.detectors`);
        ``None``: the built-in detector everywhere. A decision a plugin made names it in its
        evidence (``detector``).
    forecasters
        Forecaster plugins and the services they are bound to
        (:mod:`models.plugins.forecasters`); ``None``: the built-in forecaster everywhere. A
        scaling decision sized on a plugin's forecast names it in its evidence
        (``forecaster``).
    policies
        Scaling policies bound to services (:mod:`models.plugins.policies`), built with
        this brain's scaling parameters under their binding's configuration; ``None``: the
        built-in predictive policy everywhere. A scaling decision of a bound policy names
        it in its evidence (``policy``).

    Notes
    -----
    Memory is bounded by ``max_series * (max_metrics * 2 KiB + 92 KiB)``; with the
    nine well-known metrics a series holds about 30 KiB, unless its demand has recurring
    jumps (:class:`~models.forecast.surges.SurgeMemory`, at most 80 KiB more). Each
    metric bound to a plugin adds the plugin's declared bytes per key, as do a forecaster
    and a policy bound to its service.

    A sample no newer than its series' latest is not learned (:attr:`replayed` counts it):
    it is a replay, as after a restart from a checkpoint written after the last offset
    commit, or a duplicate. Learned twice, it would shift every model of the series, and
    the decisions replayed after it would no longer be the ones first published.

    Examples
    --------
    >>> brain = MetricsBrain(scaling_warmup_s=60)
    >>> for i in range(40):
    ...     sample = {"rps": 100.0, "replicas": 4, "cpu_util": 0.45}
    ...     decisions = brain.observe(1_700_000_000 + 5 * i, "api", "eu-west", sample)
    >>> len(brain), ("api", "eu-west") in brain
    (1, True)
    """

    def __init__(
        self,
        *,
        target_utilisation: float = 0.6,
        startup_delay_s: float = 180.0,
        min_replicas: int = 1,
        max_replicas: int = 100,
        scaling_warmup_s: float = 600.0,
        episode_quiet: int = 12,
        min_flagged: int = 2,
        published_exclude: frozenset[str] = NOT_PUBLISHED,
        lower_is_better: frozenset[str] = LOWER_IS_BETTER,
        breach_limits: Mapping[str, BreachLimit] = DEFAULT_LIMITS,
        max_metrics: int = 32,
        max_series: int = 10_000,
        ttl_s: float = 6 * 3600.0,
        plugins: DetectorPlugins | None = None,
        forecasters: ForecasterPlugins | None = None,
        policies: PolicyPlugins | None = None,
    ) -> None:
        self.target_utilisation = target_utilisation
        self.startup_delay_s = startup_delay_s
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.scaling_warmup_s = scaling_warmup_s
        self.episode_quiet = episode_quiet
        self.min_flagged = min_flagged
        self.published_exclude = published_exclude
        self.lower_is_better = lower_is_better
        self.breach_limits = dict(breach_limits)
        self.max_metrics = max_metrics
        self.max_series = max_series
        self.ttl_s = ttl_s
        self.plugins = plugins
        self.forecasters = forecasters
        self.policies = policies
        self._policy_config = {
            "target_utilisation": target_utilisation,
            "startup_delay_s": startup_delay_s,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
        }
        # Metrics that never get a detector.
        self._unscored = NOT_DETECTED | published_exclude
        self._series: OrderedDict[tuple[str, str], SeriesBrain] = OrderedDict()
        self.replayed = 0
        """Samples not learned: no newer than their series' latest."""

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, key: object) -> bool:
        return key in self._series

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._series)

    def _new_policy(self) -> PredictivePolicy:
        policy = make_policy("predictive", **self._policy_config)
        assert isinstance(policy, PredictivePolicy)
        return policy

    def _get(self, key: tuple[str, str]) -> SeriesBrain:
        brain = self._series.get(key)
        if brain is None:
            brain = self._series[key] = SeriesBrain(policy=self._new_policy())
            if len(self._series) > self.max_series:
                self._series.popitem(last=False)
        else:
            self._series.move_to_end(key)
        return brain

    def observe(
        self, ts: float, service: str, region: str, metrics: Mapping[str, float]
    ) -> list[Decision]:
        """Learn from one sample; return the decisions it causes (usually none)."""
        brain = self._get((service, region))
        if ts <= brain.last_ts:
            self.replayed += 1
            return []
        if math.isnan(brain.first_ts):
            brain.first_ts = ts
        brain.last_ts = ts
        decisions = []
        detectors, quiet_of, unscored = brain.detectors, brain.quiet, self._unscored
        plugins = (
            self.plugins if self.plugins is not None and self.plugins.serves(service) else None
        )
        served_by = None
        lower_is_better = self.lower_is_better
        for metric, value in metrics.items():
            limit = self.breach_limits.get(metric)
            if limit is not None:
                forecaster = brain.risks.get(metric)
                if forecaster is None:
                    forecaster = brain.risks[metric] = BreachForecaster(limit)
                risk = forecaster.update(ts, float(value))
                if risk.opens:
                    decisions.append(
                        _risk_decision(ts, service, region, metric, float(value), risk, limit)
                    )
            if metric in unscored:
                continue
            detector = detectors.get(metric)
            if detector is None:
                if len(detectors) >= self.max_metrics:
                    continue
                detector = detectors[metric] = SeriesDetector(DEFAULT_DETECTOR_CONFIG)
            result = detector.update(ts, float(value))
            if plugins is not None:
                result, served_by = plugins.score(
                    brain.plugin_detectors, service, metric, ts, float(value), result
                )
            # Episode bookkeeping, inlined: quiet counts unflagged samples since the last
            # flag, run consecutive flags. An episode starts when a run reaches
            # min_flagged after a quiet spell.
            quiet, run = quiet_of.get(metric, (self.episode_quiet, 0))
            if not (
                result.is_anomaly and (metric not in lower_is_better or value > result.expected)
            ):
                quiet_of[metric] = (quiet + 1, 0)
                continue
            run += 1
            quiet_of[metric] = (0 if run >= self.min_flagged else quiet, run)
            if run == self.min_flagged and quiet >= self.episode_quiet:
                decisions.append(
                    _anomaly_decision(ts, service, region, metric, value, result, served_by)
                )
        scaling = self._scale(brain, service, ts, metrics)
        if scaling is not None:
            decisions.append(_scaling_decision(service, region, *scaling))
        return decisions

    def _scale(
        self, brain: SeriesBrain, service: str, ts: float, metrics: Mapping[str, float]
    ) -> tuple[ScalingRecommendation, dict[str, str]] | None:
        """The recommendation to publish for this sample, if any, and the evidence naming
        the bound policy that made it (``policy``) or the forecaster plugin whose forecast it
        was sized on (``forecaster``); empty for the built-ins'."""
        rps, replicas, cpu = metrics.get("rps"), metrics.get("replicas"), metrics.get("cpu_util")
        policy = brain.policy
        if rps is None or replicas is None or cpu is None or policy is None:
            return None
        if self.forecasters is not None:
            # At every sample, so that a binding changed at run time takes effect at once.
            policy.forecaster = self.forecasters.serve(policy.forecaster, service)
        current = round(replicas)
        policy.decide(ts, rps, current, current, cpu)
        rec = policy.last_recommendation
        bound_policy = None
        if self.policies is not None:
            # The built-in decided above all the same: it serves whenever the bound one fails.
            brain.plugin_policy = self.policies.bound(
                brain.plugin_policy, service, self._policy_config
            )
            if brain.plugin_policy is not None:
                rec, bound_policy = self.policies.decide(
                    brain.plugin_policy, ts, rps, current, cpu, rec
                )
        if ts - brain.first_ts < self.scaling_warmup_s:
            return None
        # Only a change of the desired count is news: the same count as the last
        # decision, or a count the platform already runs (no recommendation), is not.
        if rec is None or rec.desired_replicas == brain.last_desired:
            return None
        brain.last_desired = rec.desired_replicas
        if bound_policy is not None:
            return rec, {"policy": bound_policy}
        forecaster = policy.forecaster
        if isinstance(forecaster, BoundForecaster) and forecaster.served_by is not None:
            return rec, {"forecaster": forecaster.served_by}
        return rec, {}

    def samples(self, key: tuple[str, str]) -> int:
        """Samples the series' capacity estimator has learned from (0 if unknown)."""
        brain = self._series.get(key)
        return 0 if brain is None or brain.policy is None else brain.policy.capacity.n_samples

    def last_forecast(self, service: str, region: str) -> Forecast | None:
        """The forecast the scaler last sized for (at the start-up horizon), if any."""
        brain = self._series.get((service, region))
        return None if brain is None or brain.policy is None else brain.policy.last_forecast

    def forecast(self, service: str, region: str, horizon_s: float) -> Forecast | None:
        """Demand forecast of a tracked series, ``horizon_s`` after its last sample."""
        brain = self._series.get((service, region))
        if brain is None or brain.policy is None:
            return None
        return brain.policy.forecaster.forecast_at(brain.last_ts, horizon_s)

    def set_prior(self, service: str, region: str, profile: Sequence[float] | None) -> bool:
        """Give the load forecaster of a tracked series a seasonal prior (``None`` removes it).

        ``profile`` holds 168 hour-of-week values, e.g. the usage profile learned from the
        series' interactions (:meth:`models.forecast.usage.UsageModel.prior_for`); see
        :meth:`models.forecast.load.LoadForecaster.set_prior`. It is part of the series' state.
        Returns whether the series is tracked.

        >>> brain = MetricsBrain()
        >>> brain.set_prior("api", "eu-west", [1.0] * 168)
        False
        >>> _ = brain.observe(1_700_000_000, "api", "eu-west", {"rps": 100.0, "replicas": 4})
        >>> brain.set_prior("api", "eu-west", [2.0] * 84 + [0.0] * 84)
        True
        """
        brain = self._series.get((service, region))
        if brain is None or brain.policy is None:
            return False
        _builtin_forecaster(brain.policy).set_prior(profile)
        return True

    def forget(self, key: tuple[str, str]) -> bool:
        """Drop a series (e.g. its partition moved to another worker); return whether it was
        held. It is new again, or restored, the next time it is seen."""
        return self._series.pop(key, None) is not None

    def evict_idle(self, now: float) -> int:
        """Drop series idle for more than ``ttl_s`` event seconds; return how many."""
        idle = [k for k, b in self._series.items() if now - b.last_ts > self.ttl_s]
        for key in idle:
            del self._series[key]
        return len(idle)

    @property
    def watermark(self) -> float:
        """Latest event time seen on any series (``-inf`` before the first sample)."""
        return max((b.last_ts for b in self._series.values()), default=-math.inf)

    def approx_bytes(self, sample: int = 16) -> int:
        """Approximate bytes of model state held in memory.

        Measures up to ``sample`` series and extrapolates, so it stays cheap with
        many series.
        """
        if not self._series:
            return 0
        measured = list(itertools.islice(self._series.values(), sample))
        return deep_sizeof(measured) * len(self._series) // len(measured)

    def state_of(self, key: tuple[str, str]) -> dict[str, Any] | None:
        """JSON-friendly state of one series, for a checkpoint."""
        brain = self._series.get(key)
        if brain is None or brain.policy is None:
            return None
        policy = brain.policy
        return {
            "v": _STATE_VERSION,
            "detectors": {m: d.to_state() for m, d in brain.detectors.items()},
            "risks": {m: f.to_state() for m, f in brain.risks.items()},
            "quiet": dict(brain.quiet),
            "forecaster": _builtin_forecaster(policy).to_state(),
            "capacity": policy.capacity.to_state(),
            "scaler": policy.scaler.to_state(),
            "startup": policy.startup.to_state(),
            **({"surges": policy.surges.to_state()} if policy.surges is not None else {}),
            "last_desired": brain.last_desired,
            "first_ts": brain.first_ts,
            "last_ts": brain.last_ts,
            # Only with plugins bound, so the built-ins' checkpoints are as they were.
            **(
                {"plugins": DetectorPlugins.state_of(brain.plugin_detectors)}
                if brain.plugin_detectors
                else {}
            ),
            **(
                {"plugin_forecaster": policy.forecaster.plugin_state()}
                if isinstance(policy.forecaster, BoundForecaster)
                else {}
            ),
            **(
                {"plugin_policy": brain.plugin_policy.state()}
                if brain.plugin_policy is not None
                else {}
            ),
        }

    def restore(self, key: tuple[str, str], state: Mapping[str, Any]) -> None:
        """Load a series from :meth:`state_of` output (replacing what is in memory)."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported metrics brain state version {state.get('v')!r}")
        policy = self._new_policy()
        builtin = LoadForecaster.from_state(state["forecaster"])
        policy.forecaster = (
            self.forecasters.restore(builtin, key[0], state["plugin_forecaster"])
            if self.forecasters is not None and "plugin_forecaster" in state
            else builtin
        )
        policy.capacity = CapacityEstimator()
        policy.capacity.load_state(state["capacity"])
        policy.scaler.load_state(state["scaler"])
        # Checkpoints written before the start-up delay was learned keep the configured one.
        if "startup" in state:
            policy.startup.load_state(state["startup"])
        # Checkpoints written before surges were learned start the memory afresh.
        if policy.surges is not None and "surges" in state:
            policy.surges.load_state(state["surges"])
        self._series[key] = SeriesBrain(
            # An older checkpoint may score metrics no longer scored: they are dropped.
            detectors={
                m: SeriesDetector.from_state(s, DEFAULT_DETECTOR_CONFIG)
                for m, s in state["detectors"].items()
                if m not in self._unscored
            },
            # A checkpoint from before breach forecasting has none: they start afresh.
            risks={
                m: BreachForecaster.from_state(s, self.breach_limits[m])
                for m, s in state.get("risks", {}).items()
                if m in self.breach_limits
            },
            quiet={m: (q, r) for m, (q, r) in state["quiet"].items() if m not in self._unscored},
            plugin_detectors=(
                self.plugins.restore(key[0], state["plugins"])
                if self.plugins is not None and "plugins" in state
                else {}
            ),
            policy=policy,
            plugin_policy=(
                self.policies.restore(key[0], state["plugin_policy"])
                if self.policies is not None and "plugin_policy" in state
                else None
            ),
            last_desired=state["last_desired"],
            first_ts=state["first_ts"],
            last_ts=state["last_ts"],
        )
        self._series.move_to_end(key)
        if len(self._series) > self.max_series:
            self._series.popitem(last=False)


def _builtin_forecaster(policy: PredictivePolicy) -> LoadForecaster:
    """The policy's built-in forecaster, whether or not a plugin runs beside it."""
    forecaster = policy.forecaster
    if isinstance(forecaster, BoundForecaster):
        return forecaster.builtin
    assert isinstance(forecaster, LoadForecaster)
    return forecaster


def _anomaly_decision(
    ts: float,
    service: str,
    region: str,
    metric: str,
    value: float,
    result: AnomalyScore,
    detector: str | None = None,
) -> Decision:
    subject = {"service": service, "region": region}
    params = {"metric": metric, "anomaly_kind": result.kind}
    # The built-in's decisions stay as they were; a plugin's name its plugin.
    named = {} if detector is None else {"detector": detector}
    by = "" if detector is None else f", detector {detector}"
    return Decision(
        decision_id=decision_id_for("anomaly", subject, "investigate", params, [ts, value]),
        kind="anomaly",
        ts=ts,
        subject=subject,
        action="investigate",
        params=params,
        mode="recommend",
        confidence=round(result.score, 4),
        reason=(
            f"{metric} of {service} in {region} is {value:.4g}, expected "
            f"{result.expected:.4g} ± {result.spread:.2g} ({result.kind.replace('_', ' ')}, "
            f"score {result.score:.2f} >= {result.threshold:.2f}{by})."
        ),
        evidence={
            "value": value,
            "expected": result.expected,
            "deviation": result.deviation,
            "spread": result.spread,
            "score": result.score,
            "threshold": result.threshold,
            "anomaly_kind": result.kind,
            **named,
        },
        model_version=ANOMALY_MODEL_VERSION,
    )


def _risk_decision(
    ts: float,
    service: str,
    region: str,
    metric: str,
    value: float,
    risk: BreachRisk,
    limit: BreachLimit,
) -> Decision:
    subject = {"service": service, "region": region}
    params = {"metric": metric, "limit": limit.limit}
    minutes = risk.time_to_breach_s / 60.0
    return Decision(
        decision_id=decision_id_for("risk", subject, limit.action, params, [ts, value]),
        kind="risk",
        ts=ts,
        subject=subject,
        action=limit.action,
        params=params,
        mode="recommend",
        confidence=round(risk.probability, 4),
        reason=(
            f"{metric} of {service} in {region} is at {risk.level:.4g} and rising "
            f"{risk.trend_per_s * 3600:.3g}/h: it reaches its limit {limit.limit:g} in about "
            f"{minutes:.0f} min (P = {risk.probability:.2f} within "
            f"{limit.horizon_s / 60:.0f} min); suggested: {limit.action.replace('_', ' ')}."
        ),
        evidence={
            "value": value,
            "level": risk.level,
            "trend_per_s": risk.trend_per_s,
            "limit": limit.limit,
            "horizon_s": limit.horizon_s,
            "probability": risk.probability,
            "threshold": OPEN_PROBABILITY,
            "time_to_breach_s": risk.time_to_breach_s,
        },
        model_version=RISK_MODEL_VERSION,
    )


def _scaling_decision(
    service: str, region: str, rec: ScalingRecommendation, named: Mapping[str, str]
) -> Decision:
    subject = {"service": service, "region": region}
    action = "scale_out" if rec.desired_replicas > rec.current_replicas else "scale_in"
    params = {"desired_replicas": rec.desired_replicas, "current_replicas": rec.current_replicas}
    # Narrow intervals relative to the forecast mean mean a confident forecast.
    width = (rec.forecast_upper - rec.forecast_lower) / max(rec.forecast_mean, 1e-9)
    return Decision(
        decision_id=decision_id_for("scaling", subject, action, params, [rec.ts]),
        kind="scaling",
        ts=rec.ts,
        subject=subject,
        action=action,
        params=params,
        mode="auto",
        confidence=round(1.0 / (1.0 + width), 4),
        reason=rec.reason,
        evidence={
            "rule": rec.rule,
            "observed_rps": rec.observed_rps,
            "forecast": {
                "mean": rec.forecast_mean,
                "lower": rec.forecast_lower,
                "upper": rec.forecast_upper,
                "horizon_s": rec.horizon_s,
            },
            "capacity_per_replica": rec.capacity_per_replica,
            "utilisation": rec.utilisation,
            "target_utilisation": rec.target_utilisation,
            # Empty for the built-ins, so that their decisions stay as they were.
            **named,
        },
        model_version=SCALING_MODEL_VERSION,
    )
