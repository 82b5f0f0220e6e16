"""Prometheus metrics of one worker, served on the worker's own web port at ``/metrics``.

Most label values come from closed sets (logical topic names, DLQ reason codes,
decision kinds/actions/modes, outcomes); those known up front get their children
at import, at 0, so dashboards show 0 rather than no data. The per-series
families (anomaly scores, region health, demand, forecast, replicas, cost) carry
service, region and metric names from the telemetry: each holds at most
``AUTOPILOT_METRICS_SERIES_CAP`` label sets, refuses the rest and counts them in
``autopilot_metrics_series_dropped_total{family}``, so the number of series
stays bounded whatever producers send.

Each worker exports only what it did itself and only the partitions and series
it currently owns, so Prometheus sums across workers without double counting.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from aiokafka.errors import KafkaError
from faust.exceptions import ConsumerNotStarted
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from models.plugins.guard import SECONDS_BUCKETS, PluginStats
from models.text.redact import PII_CLASSES
from schemas import REASONS
from schemas.decision import DECISION_KINDS
from schemas.topics import TopicNames
from streams.runtime.app import app, topic_names
from streams.runtime.settings import SettingsError

__all__ = [
    "ACTION_CALLS",
    "ANOMALY_SCORE",
    "CONSUMER_LAG",
    "COST_PER_HOUR",
    "DECISIONS",
    "DECISION_LAG",
    "DECISION_LATENCY",
    "DEMAND_RPS",
    "DESIRED_REPLICAS",
    "DLQ",
    "EVENTS_CONSUMED",
    "EVENTS_PROCESSED",
    "FORECAST_RPS",
    "HANDLING_SECONDS",
    "MODEL_BYTES",
    "PII_DETECTED",
    "REGION_HEALTH",
    "REMEDIATION_OUTCOMES",
    "REPLICAS",
    "SERIES_DROPPED",
    "SERIES_TRACKED",
    "WORKER_UP",
    "CappedGauge",
    "HandlingTime",
    "PluginCollector",
    "record_action_call",
    "record_anomaly_score",
    "record_cost",
    "record_remediation_outcome",
    "record_scaling",
    "series_cap",
    "set_region_health",
]

log = logging.getLogger(__name__)

SERIES_CAP_ENV = "AUTOPILOT_METRICS_SERIES_CAP"
DEFAULT_SERIES_CAP = 500
# A label set not updated for this long is removed: its series was evicted, or
# its partition moved to another worker, which now exports it; keeping the old
# value would show a stale series twice.
SERIES_IDLE_S = 600.0
LAG_INTERVAL_S = 5.0
# agents.runtime.edge.PROCESSING_ERROR and UNKNOWN_DECISION: the DLQ reasons besides
# schemas.REASONS. The edge imports this module, so they are repeated here.
_EDGE_REASONS = ("processing_error", "unknown_decision")
_LOGICAL_TOPICS = TopicNames()
# Prefixed name -> logical name, for the topics the worker's consumer group reads.
_LOGICAL_BY_TOPIC = dict(zip(topic_names.all(), _LOGICAL_TOPICS.all(), strict=True))


def series_cap(env: Mapping[str, str] | None = None) -> int:
    """Label sets each per-series family may hold, from ``AUTOPILOT_METRICS_SERIES_CAP``.

    >>> series_cap({}), series_cap({"AUTOPILOT_METRICS_SERIES_CAP": "50"})
    (500, 50)
    >>> series_cap({"AUTOPILOT_METRICS_SERIES_CAP": "0"})
    Traceback (most recent call last):
    ...
    streams.runtime.settings.SettingsError: AUTOPILOT_METRICS_SERIES_CAP=0 \
is out of range [1, 100000]
    """
    env = os.environ if env is None else env
    raw = env.get(SERIES_CAP_ENV) or str(DEFAULT_SERIES_CAP)
    try:
        cap = int(raw)
    except ValueError:
        raise SettingsError(f"{SERIES_CAP_ENV}={raw!r} is not an integer") from None
    if not 1 <= cap <= 100_000:
        raise SettingsError(f"{SERIES_CAP_ENV}={cap} is out of range [1, 100000]")
    return cap


# The *_created series double the exposition for no operational use.
disable_created_metrics()

EVENTS_CONSUMED = Counter(
    "autopilot_events_consumed",
    "Messages read from a telemetry topic (consumed = processed + dead-lettered).",
    ["topic"],
)
EVENTS_PROCESSED = Counter(
    "autopilot_events_processed",
    "Valid messages fully handled by an agent.",
    ["topic"],
)
DLQ = Counter(
    "autopilot_dlq",
    "Messages sent to the dead-letter topic, by source topic and reason code.",
    ["topic", "reason"],
)
DECISIONS = Counter(
    "autopilot_decisions",
    "Decisions published, by kind, action and mode.",
    ["kind", "action", "mode"],
)
DECISION_LATENCY = Histogram(
    "autopilot_decision_latency_seconds",
    "Time from the triggering event's timestamp to the decision being published.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DECISION_LAG = Gauge(
    "autopilot_decision_lag_seconds",
    "How far this worker's decisions trail the telemetry they are made on: wall seconds "
    "from a record's produce time (its Kafka timestamp) to the end of its handling, the "
    "most over the last second, per topic (0 when nothing was handled).",
    ["topic"],
)
SERIES_TRACKED = Gauge(
    "autopilot_series_tracked",
    "Keys currently held in memory by a model.",
    ["model"],
)
MODEL_BYTES = Gauge(
    "autopilot_model_bytes",
    "Approximate bytes of model state held in memory.",
    ["model"],
)
CONSUMER_LAG = Gauge(
    "autopilot_consumer_lag",
    "Messages in a partition assigned to this worker that it has not fetched yet.",
    ["topic", "partition"],
)
REMEDIATION_OUTCOMES = Counter(
    "autopilot_remediation_outcomes",
    "Remediation outcomes reported on feedback.remediation, by outcome.",
    ["outcome"],
)
SERIES_DROPPED = Counter(
    "autopilot_metrics_series_dropped",
    f"Updates refused because their family already holds {SERIES_CAP_ENV} label sets.",
    ["family"],
)
PII_DETECTED = Counter(
    "autopilot_pii_detected",
    "Personal data and secrets found (and redacted) in free-text fields, by class.",
    ["class"],
)
ACTION_CALLS = Counter(
    "autopilot_action_calls",
    "Calls of action plugins with a decision, by plugin (a registered name, bound in the "
    "plugins file) and outcome (success, failure: an error result, an exception or a timeout).",
    ["plugin", "outcome"],
)
WORKER_UP = Gauge(
    "autopilot_worker_up",
    "1 while this worker runs; sum() counts the workers Prometheus reaches.",
)
WORKER_UP.set(1)


class CappedGauge(Collector):
    """A labelled gauge that holds at most ``cap`` label sets.

    A new label set beyond the cap is refused and counted in ``dropped`` (by
    default ``autopilot_metrics_series_dropped_total{family}``): folding it into
    a catch-all series would give that series a meaningless value. It is set for
    every sample, so setting is a dict write and nothing else: the values become a
    gauge family only when the registry is collected (a scrape).

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> dropped = Counter("example_dropped", "doc", ["family"], registry=registry)
    >>> capped = CappedGauge("example_score", "doc", ["service"], 2, dropped, registry)
    >>> for service in ("a", "b", "c", "a"):
    ...     capped.set((service,), 0.5)
    >>> len(capped), registry.get_sample_value("example_dropped_total", {"family": "example_score"})
    (2, 1.0)
    >>> registry.get_sample_value("example_score", {"service": "a"})
    0.5
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        cap: int,
        dropped: Counter = SERIES_DROPPED,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.family = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.cap = cap
        self._dropped = dropped.labels(name)
        self._clock = clock
        self._values: dict[tuple[str, ...], float] = {}
        self._touched: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def __len__(self) -> int:
        return len(self._values)

    def set(self, labels: tuple[str, ...], value: float) -> None:
        """Set the series of ``labels`` to ``value``, unless the family is full."""
        values = self._values
        if labels not in values and len(values) >= self.cap:
            self._dropped.inc()
            return
        values[labels] = value
        self._touched[labels] = self._clock()

    def expire(self, now: float | None = None, idle_s: float = SERIES_IDLE_S) -> int:
        """Remove the label sets not set for ``idle_s`` seconds; return how many."""
        now = self._clock() if now is None else now
        idle = [labels for labels, ts in self._touched.items() if now - ts > idle_s]
        for labels in idle:
            del self._values[labels], self._touched[labels]
        return len(idle)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.family, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.family, self.documentation, labels=self.labelnames)
        for labels, value in list(self._values.items()):
            family.add_metric(labels, float(value))
        yield family


class HandlingTime(Collector):
    """Seconds spent in each part of handling records, a counter family by ``part``.

    Added to for every record, so adding is a dict update and nothing else (a
    :class:`~prometheus_client.Counter` takes a lock at each increment); the family is
    built at a scrape. The parts are a closed set: those given, and one per edge.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> spent = HandlingTime("example_handling_seconds", "doc", ["brain"], registry)
    >>> spent.seconds["brain"] += 0.25
    >>> spent.seconds["brain"] += 0.5
    >>> registry.get_sample_value("example_handling_seconds_total", {"part": "brain"})
    0.75
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        parts: Sequence[str] = (),
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.seconds: dict[str, float] = dict.fromkeys(parts, 0.0)
        """Seconds spent so far, by part: add to it, once a part is done with a record."""
        registry.register(self)

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=["part"])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=["part"])
        for part, seconds in list(self.seconds.items()):
            family.add_metric([part], seconds)
        yield family


class PluginCollector(Collector):
    """What the plugins' calls did, per plugin, read from their guard at each scrape.

    ``autopilot_plugin_calls_total{plugin}``, ``autopilot_plugin_errors_total{plugin,
    reason}`` (``raised`` or ``overrun``), ``autopilot_plugin_seconds{plugin}`` (a histogram
    of call durations) and ``autopilot_plugin_quarantined{plugin}``. Plugin names come
    from the registry, a closed set, so the label sets are bounded.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry
    >>> from models.plugins.guard import PluginGuard
    >>> guard, registry = PluginGuard(), CollectorRegistry()
    >>> _ = guard.call("hst", 1.0, abs, -1)
    >>> _ = PluginCollector(lambda: guard.stats, registry)
    >>> registry.get_sample_value("autopilot_plugin_calls_total", {"plugin": "hst"})
    1.0
    >>> registry.get_sample_value("autopilot_plugin_seconds_count", {"plugin": "hst"})
    1.0
    """

    def __init__(
        self,
        stats: Callable[[], Mapping[str, PluginStats]],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._stats = stats
        registry.register(self)

    @classmethod
    def install(cls, stats: Callable[[], Mapping[str, PluginStats]]) -> PluginCollector:
        """Export ``stats`` on the worker's ``/metrics``."""
        return cls(stats)

    def describe(self) -> Iterator[Metric]:
        return iter(self._families({}))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self._stats()))

    @staticmethod
    def _families(stats: Mapping[str, PluginStats]) -> list[Metric]:
        calls = CounterMetricFamily(
            "autopilot_plugin_calls", "Calls into each plugin.", labels=["plugin"]
        )
        errors = CounterMetricFamily(
            "autopilot_plugin_errors",
            "Failed plugin calls: raised, or over the plugin's time budget (overrun).",
            labels=["plugin", "reason"],
        )
        seconds = HistogramMetricFamily(
            "autopilot_plugin_seconds", "CPU seconds of each plugin call.", labels=["plugin"]
        )
        quarantined = GaugeMetricFamily(
            "autopilot_plugin_quarantined",
            "1 while a plugin is quarantined: the built-in serves its scopes.",
            labels=["plugin"],
        )
        for name, s in sorted(stats.items()):
            calls.add_metric([name], float(s.calls))
            errors.add_metric([name, "raised"], float(s.errors))
            errors.add_metric([name, "overrun"], float(s.overruns))
            bounds = [*map(str, SECONDS_BUCKETS), "+Inf"]
            seconds.add_metric(
                [name],
                [
                    (b, float(n))
                    for b, n in zip(bounds, itertools.accumulate(s.buckets), strict=True)
                ],
                s.seconds,
            )
            quarantined.add_metric([name], float(s.quarantined))
        return [calls, errors, seconds, quarantined]


HANDLING_SECONDS = HandlingTime(
    "autopilot_handling_seconds",
    "Wall seconds the worker spent in each part of handling records: validating them at "
    "an edge (part edge:<topic>), each brain learning from them and deciding, and metric "
    "samples recorded as region evidence (region_evidence).",
    ["metrics_brain", "cost_brain", "region_evidence", "region_brain"],
)
_cap = series_cap()
ANOMALY_SCORE = CappedGauge(
    "autopilot_anomaly_score",
    "Score in [0, 1] of the latest anomaly decision on a metric series.",
    ["service", "region", "metric"],
    _cap,
)
REGION_HEALTH = CappedGauge(
    "autopilot_region_health", "Health score of a region in [0, 1].", ["region"], _cap
)
DEMAND_RPS = CappedGauge(
    "autopilot_demand_rps", "Observed demand (requests/s).", ["service", "region"], _cap
)
FORECAST_RPS = CappedGauge(
    "autopilot_forecast_rps",
    "Demand forecast (requests/s) for when a replica started now would be ready.",
    ["service", "region"],
    _cap,
)
REPLICAS = CappedGauge(
    "autopilot_replicas", "Replicas the service reports running.", ["service", "region"], _cap
)
DESIRED_REPLICAS = CappedGauge(
    "autopilot_desired_replicas",
    "Replicas asked for by the latest scaling decision.",
    ["service", "region"],
    _cap,
)
COST_PER_HOUR = CappedGauge(
    "autopilot_cost_per_hour",
    "Running cost per hour: reported, else from the price table.",
    ["service", "region"],
    _cap,
)
_CAPPED = (
    ANOMALY_SCORE,
    REGION_HEALTH,
    DEMAND_RPS,
    FORECAST_RPS,
    REPLICAS,
    DESIRED_REPLICAS,
    COST_PER_HOUR,
)


def _precreate() -> None:
    """Create the children of every closed label set at 0, so queries find them."""
    # The internal topics are accounted for like telemetry (agents read them at the edge).
    for topic in (*_LOGICAL_TOPICS.telemetry(), *_LOGICAL_TOPICS.internal()):
        EVENTS_CONSUMED.labels(topic)
        EVENTS_PROCESSED.labels(topic)
        for reason in (*REASONS, *_EDGE_REASONS):
            DLQ.labels(topic, reason)
    # The latency histogram's _count per kind is the number of decisions of that
    # kind, so it exists for every kind even before the first one. Actions are
    # an open set, so autopilot_decisions_total gets its children when used.
    for kind in DECISION_KINDS:
        DECISION_LATENCY.labels(kind)
    for outcome in ("success", "failure"):
        REMEDIATION_OUTCOMES.labels(outcome)
    for capped in _CAPPED:
        SERIES_DROPPED.labels(capped.family)
    for cls in PII_CLASSES:
        PII_DETECTED.labels(cls)


_precreate()


def record_anomaly_score(service: str, region: str, metric: str, score: float) -> None:
    """Export the latest anomaly score of one metric series."""
    ANOMALY_SCORE.set((service, region, metric), score)


def set_region_health(region: str, score: float) -> None:
    """Export the latest health score of a region."""
    REGION_HEALTH.set((region,), score)


def record_scaling(
    service: str,
    region: str,
    *,
    demand_rps: float | None = None,
    forecast_rps: float | None = None,
    replicas: float | None = None,
    desired_replicas: float | None = None,
) -> None:
    """Export what the scaling timeline shows of a series; ``None`` leaves a value as it was."""
    labels = (service, region)
    if demand_rps is not None:
        DEMAND_RPS.set(labels, demand_rps)
    if forecast_rps is not None:
        FORECAST_RPS.set(labels, forecast_rps)
    if replicas is not None:
        REPLICAS.set(labels, replicas)
    if desired_replicas is not None:
        DESIRED_REPLICAS.set(labels, desired_replicas)


def record_cost(service: str, region: str, cost_per_hour: float) -> None:
    """Export the running cost per hour a series reports."""
    COST_PER_HOUR.set((service, region), cost_per_hour)


def record_action_call(plugin: str, ok: bool) -> None:
    """Count one call of an action plugin."""
    ACTION_CALLS.labels(plugin, "success" if ok else "failure").inc()


def record_remediation_outcome(success: bool) -> None:
    """Count one outcome read from ``feedback.remediation``."""
    REMEDIATION_OUTCOMES.labels("success" if success else "failure").inc()


# Partitions whose lag this worker exports, to remove the ones it no longer owns.
_exported_lag: set[tuple[str, str]] = set()


@app.timer(LAG_INTERVAL_S)
async def update_consumer_lag() -> None:
    """Lag of every partition of our topics assigned to this worker: end offset - position.

    The position is public and right after a rebalance (the consumer seeks to the
    committed offset); messages fetched but still buffered count as done.
    Partitions no longer assigned are removed, so a partition is exported by one
    worker only.
    """
    consumer = app.consumer
    lags: dict[tuple[str, str], int] = {}
    try:
        assigned = [tp for tp in consumer.assignment() if tp.topic in _LOGICAL_BY_TOPIC]
        ends = await consumer.highwaters(*assigned) if assigned else {}
        for tp in assigned:
            end, position = ends.get(tp), await consumer.position(tp)
            if end is not None and position is not None:
                lags[(_LOGICAL_BY_TOPIC[tp.topic], str(tp.partition))] = max(0, end - position)
    except (ConsumerNotStarted, KafkaError) as exc:
        # Mid-rebalance: the assignment is changing; the next tick sees the new one.
        log.debug("consumer lag not updated: %r", exc)
        return
    for labels in _exported_lag - lags.keys():
        CONSUMER_LAG.remove(*labels)
    for labels, lag in lags.items():
        CONSUMER_LAG.labels(*labels).set(lag)
    _exported_lag.clear()
    _exported_lag.update(lags)


@app.timer(60.0)
async def expire_idle_series() -> None:
    """Drop per-series label sets this worker no longer updates."""
    for capped in _CAPPED:
        capped.expire()


@app.page("/metrics")
async def metrics(view, request):
    """Prometheus text exposition of this worker's metrics.

    As prometheus_client's own server, ``?name[]=NAME`` (repeated) renders only those
    samples: a tool polling a few counters (the benches, every half second) then costs
    the worker nothing, where the whole exposition costs it tens of milliseconds.
    """
    names = request.rel_url.query.getall("name[]", ())
    registry = REGISTRY.restricted_registry(names) if names else REGISTRY
    return view.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
