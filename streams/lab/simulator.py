"""Synthetic platform telemetry, with scripted incidents, produced to Kafka.

The simulated platform runs S services in R regions. Each series (one service
in one region) has a daily load cycle peaking in the region's local afternoon,
a weekly pattern, and multiplicative noise; a naive built-in autoscaler follows
demand with a lag, so utilisation stays plausible until demand moves faster
than it can. Tenants, each homed in a region, make interactions at a rate
proportional to load. A :class:`~streams.lab.scenario.Scenario` scripts incidents
on top, and :func:`ground_truth` says where and when each one happened.

:func:`generate` is the whole simulation as a synchronous, deterministic stream
of encoded messages (usable without a broker); :func:`run_simulation` sends that
stream to Kafka and counts exactly what the broker acknowledged.

:func:`run_simulation` sends records in envelopes ``{"samples": [...]}`` of up to
``envelope_records`` records of one key, as collectors batch; ``envelope_records=1``
sends single records.

Everything runs in *event* time: tick ``k`` is at ``start_ts + k * tick_s``.
The default start puts the end of the run near wall-clock time at the moment
it finishes, so every timestamp passes the downstream freshness checks.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hashlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from schemas.topics import TopicNames, telemetry_key
from streams.lab.scenario import (
    MAX_DURATION_S,
    Brownout,
    ErrorBurst,
    Flapping,
    LoadSurge,
    RegionOutage,
    Saturation,
    Scenario,
    ScenarioError,
    load_scenario,
)

__all__ = [
    "DEFAULT_INTERACTIONS_PER_S",
    "DEFAULT_REGIONS",
    "DEFAULT_SERVICES",
    "TOPIC_ATTRS",
    "Envelopes",
    "Message",
    "Outgoing",
    "ProgressFn",
    "Scenario",
    "ScenarioError",
    "SimConfig",
    "SimSummary",
    "enveloped",
    "generate",
    "ground_truth",
    "load_scenario",
    "run_simulation",
]

DEFAULT_SERVICES = ("checkout", "search", "catalog")
DEFAULT_INTERACTIONS_PER_S = 10.0
DEFAULT_REGIONS = ("us-east", "eu-west", "ap-south")
#: The :class:`~schemas.topics.TopicNames` attributes the simulator produces to.
TOPIC_ATTRS = ("metrics", "errors", "interactions")

#: ``(topic_attr, key, value, event_ts)``: one encoded message of the stream.
Message = tuple[str, bytes, bytes, float]
#: ``progress(sent_total, rate_per_s, event_ts)``, called at most about once a second.
ProgressFn = Callable[[int, float, float], None]

# Local-time offsets (hours) so each region peaks in its own afternoon; unknown
# regions fall back on their continent prefix, then on UTC.
_UTC_OFFSET_H = {
    "us-east": -5.0,
    "us-central": -6.0,
    "us-west": -8.0,
    "sa-east": -3.0,
    "eu-west": 0.0,
    "eu-central": 1.0,
    "eu-north": 1.0,
    "me-central": 4.0,
    "ap-south": 5.5,
    "ap-southeast": 8.0,
    "ap-northeast": 9.0,
}
_PREFIX_OFFSET_H = {"us": -6.0, "ca": -5.0, "sa": -3.0, "eu": 1.0, "af": 2.0, "me": 4.0, "ap": 7.0}
_REGION_SHARE = {"us-east": 1.0, "eu-west": 0.8, "ap-south": 0.6}
_REGION_PRICE = {"us-east": 1.0, "eu-west": 1.1, "ap-south": 0.9}


@dataclass(frozen=True, slots=True)
class _Profile:
    """What kind of workload a service is: relative demand, speed, flakiness and size."""

    demand: float
    latency_ms: float
    error_rate: float
    size: float


_PROFILES = {
    "checkout": _Profile(demand=0.6, latency_ms=85.0, error_rate=0.004, size=1.2),
    "search": _Profile(demand=1.5, latency_ms=45.0, error_rate=0.002, size=1.5),
    "catalog": _Profile(demand=1.0, latency_ms=30.0, error_rate=0.001, size=1.0),
}
_DEFAULT_PROFILE = _Profile(demand=1.0, latency_ms=50.0, error_rate=0.002, size=1.0)

_DAY_S = 86_400.0
_PEAK_HOUR = 15.0
_DAILY_FLOOR = 0.3  # trough demand relative to the afternoon peak
_WEEKEND = 0.72
_WEEK_RAMP_S = 6 * 3600.0  # weekday and weekend demand blend over the night around midnight
_TARGET_UTIL = 0.6
_SCALE_EVERY_S = 60.0
_MIN_REPLICAS = 2
_MAX_QUEUE_S = 2.0  # seconds of work a series queues before shedding load
_NOISE_PER_SERIES = 7  # normal draws per series per tick
_LOG_SHARE = 0.02  # share of failed requests that leave an error log line
_MAX_LOG_RATE = 200.0  # error log lines per second per series, at most
_DEPLOY_LEAD_S = 90.0
_USERS_PER_TENANT = 200
_CHUNK = 8192  # futures settled together
# Bytes after which an envelope is sent whatever its count: well under the broker's
# default largest message (1 MiB), which is also the worker's largest envelope.
_ENVELOPE_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate, for how long, how fast, and how much of it.

    Parameters
    ----------
    services, regions
        The fleet: one series per service in each region.
    tenants
        Number of tenants, homed in the regions round-robin.
    tick_s
        Event seconds between two samples of a series.
    duration_s
        Simulated span in event seconds (at most 23 h, so a run ending now stays
        within the validators' one-day window).
    speed
        Event seconds per wall second; ``None`` or ``0`` runs as fast as possible.
    pace
        Later stretches of the run at speeds of their own: ``(from_s, speed)`` pairs, in
        event seconds from the start, ascending; each speed holds until the next pair's
        ``from_s``, ``speed`` before the first. ``make run`` sends its warm-up history as
        fast as possible, plays the eventful hour fast, then goes on in real time.
    start_ts
        Event time of the first tick; ``None`` picks :meth:`resolve_start_ts`.
    seed
        The whole stream is a function of the config, seed included.
    base_rps
        Mean requests per second of a series of average demand over a day.
    capacity_rps
        Requests per second one replica serves at 100 % CPU.
    errors_per_s
        Baseline rate of routine error log lines per series.
    interactions_per_s
        Interactions per second over all tenants at mean load.
    price_per_replica_hour
        Cost of one replica of a standard-size service.
    scenario
        Scripted incidents; use :meth:`for_scenario` to take its span and tick.
    compression
        ``None`` or ``"lz4"`` (needs the ``lz4`` package), for the producer.
    linger_ms
        How long the producer waits to fill a batch.
    envelope_records
        Most records of one topic and key sent together as an envelope; 1 sends single
        records.
    envelope_span_s
        Event seconds an envelope may gather records over: once the stream has moved this
        far since the open envelopes started, all are sent, so that series stay within
        this much event time of each other downstream. The default, one default tick, is
        under region health's silence grace (10 s): a region whose envelopes come after
        the others' must not look silent. Benches of one series' records use more. A paced
        run also sends them before it waits.
    profile_shift_s
        Seconds added to event time where the demand profile reads the time of day and
        week; the records' timestamps are not moved. A stream must end near the wall
        clock (the validators refuse older records), so without a shift its demand
        depends on the hour it is made at; a bench shifts it to play the same part of the
        week at any hour (:meth:`playing_week_from`).

    Examples
    --------
    >>> c = SimConfig(duration_s=600, start_ts=1_700_000_000.0)
    >>> c.ticks, c.resolve_start_ts()
    (120, 1700000000.0)
    >>> SimConfig(tick_s=0)
    Traceback (most recent call last):
    ...
    ValueError: tick_s must be > 0 and <= duration_s, got 0
    """

    services: Sequence[str] = DEFAULT_SERVICES
    regions: Sequence[str] = DEFAULT_REGIONS
    tenants: int = 20
    tick_s: float = 5.0
    duration_s: float = 3600.0
    speed: float | None = None
    pace: tuple[tuple[float, float], ...] = ()
    start_ts: float | None = None
    seed: int = 0
    base_rps: float = 200.0
    capacity_rps: float = 50.0
    errors_per_s: float = 0.05
    interactions_per_s: float = DEFAULT_INTERACTIONS_PER_S
    price_per_replica_hour: float = 0.10
    scenario: Scenario | None = None
    compression: str | None = None
    linger_ms: int = 20
    envelope_records: int = 100
    envelope_span_s: float = 5.0
    profile_shift_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", tuple(self.services))
        object.__setattr__(self, "regions", tuple(self.regions))
        for name in ("services", "regions"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must not be empty")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicates: {', '.join(values)}")
            bad = [v for v in values if not isinstance(v, str) or not v or "/" in v]
            if bad:
                raise ValueError(f"{name} has an unusable name: {bad[0]!r}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(
                f"duration_s must be > 0 and <= {MAX_DURATION_S:g} (23 h), got {self.duration_s}"
            )
        if not 0 < self.tick_s <= self.duration_s:
            raise ValueError(f"tick_s must be > 0 and <= duration_s, got {self.tick_s}")
        for name in ("tenants", "errors_per_s", "interactions_per_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("base_rps", "capacity_rps", "price_per_replica_hour"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.speed is not None and self.speed < 0:
            raise ValueError(f"speed must be >= 0, got {self.speed}")
        object.__setattr__(self, "pace", tuple((float(f), float(v)) for f, v in self.pace))
        starts = [from_s for from_s, _ in self.pace]
        if starts != sorted(set(starts)) or any(not 0 < f < self.duration_s for f in starts):
            raise ValueError(f"pace must start ascending within the run, got {self.pace}")
        if any(speed < 0 for _, speed in self.pace):
            raise ValueError(f"pace speeds must be >= 0, got {self.pace}")
        if self.envelope_records < 1:
            raise ValueError(f"envelope_records must be >= 1, got {self.envelope_records}")
        if self.envelope_span_s < 0:
            raise ValueError(f"envelope_span_s must be >= 0, got {self.envelope_span_s}")
        if self.compression not in (None, "lz4"):
            raise ValueError(f"compression must be None or 'lz4', got {self.compression!r}")
        if self.scenario is not None:
            self.scenario.check_fleet(self.services, self.regions, self.duration_s)

    @classmethod
    def for_scenario(cls, scenario: Scenario, **overrides: Any) -> SimConfig:
        """A config that plays ``scenario`` over its own span and tick.

        >>> from streams.lab.scenario import parse_scenario
        >>> c = SimConfig.for_scenario(parse_scenario({"name": "s", "duration_s": 60}), seed=3)
        >>> c.duration_s, c.tick_s, c.seed
        (60.0, 5.0, 3)
        """
        settings = {"duration_s": scenario.duration_s, "tick_s": scenario.tick_s}
        return cls(scenario=scenario, **(settings | overrides))

    @property
    def ticks(self) -> int:
        """How many samples each series gets."""
        return math.ceil(self.duration_s / self.tick_s - 1e-9)

    def stretches(self) -> tuple[tuple[float, float], ...]:
        """``(from_s, speed)`` of every stretch of the run, the first from 0; speed 0 is as
        fast as possible.

        >>> SimConfig(duration_s=600, speed=0, pace=((300, 10),)).stretches()
        ((0.0, 0.0), (300.0, 10.0))
        """
        return ((0.0, float(self.speed or 0.0)), *self.pace)

    def wall_s(self) -> float:
        """Wall seconds the paced stretches take (fast ones count none).

        >>> SimConfig(duration_s=600, speed=0, pace=((300, 10), (500, 1))).wall_s()
        120.0
        """
        ends = [from_s for from_s, _ in self.stretches()[1:]] + [self.duration_s]
        return sum(
            (end - from_s) / speed
            for (from_s, speed), end in zip(self.stretches(), ends, strict=True)
            if speed
        )

    def resolve_start_ts(self, now: float | None = None) -> float:
        """Event time of the first tick.

        Unless ``start_ts`` is set, the run is placed so that its last event is
        near wall-clock time when the run finishes: ``now - duration_s`` when
        running as fast as possible, ``now`` in real time or slower, and in
        between for a speed-up. Event time then never runs ahead of the clock.

        >>> SimConfig(duration_s=3600, speed=4).resolve_start_ts(now=10_000.0)
        7300.0
        """
        if self.start_ts is not None:
            return float(self.start_ts)
        now = time.time() if now is None else now
        return now - self.duration_s + min(self.duration_s, self.wall_s())

    def playing_week_from(self, start_in_week_s: float) -> SimConfig:
        """This stream, its demand that of ``start_in_week_s`` seconds into the week onwards
        (from the epoch's Thursday 00:00 UTC) whatever its ``start_ts``, which must be set:
        :attr:`profile_shift_s` set to the difference.

        >>> a = SimConfig(start_ts=1_000_000.0).playing_week_from(3600.0)
        >>> b = SimConfig(start_ts=1_050_000.0).playing_week_from(3600.0)
        >>> [(c.start_ts + c.profile_shift_s) % (7 * _DAY_S) for c in (a, b)]
        [3600.0, 3600.0]
        """
        if self.start_ts is None:
            raise ValueError("a stream plays a part of the week from a set start_ts")
        shift = (start_in_week_s - self.start_ts) % (7 * _DAY_S)
        return dataclasses.replace(self, profile_shift_s=shift)


@dataclass(frozen=True, slots=True)
class SimSummary:
    """What a run sent, as acknowledged by the broker, in records (``failed`` too).

    >>> s = SimSummary({"metrics": 90, "errors": 2, "interactions": 8}, 0, 2.0, 0.0, 300.0)
    >>> s.total, s.rate_per_s, s.event_span_s
    (100, 50.0, 300.0)
    """

    sent: Mapping[str, int]
    failed: int
    wall_s: float
    event_start_ts: float
    event_end_ts: float
    first_error: str | None = None
    ground_truth_path: Path | None = None
    messages: int = 0
    """Kafka messages acknowledged: an envelope is one."""

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    @property
    def rate_per_s(self) -> float:
        """Mean acknowledged messages per wall second."""
        return self.total / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def event_span_s(self) -> float:
        return self.event_end_ts - self.event_start_ts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for the CLI."""
        return {
            "sent": dict(self.sent),
            "total": self.total,
            "messages": self.messages,
            "failed": self.failed,
            "first_error": self.first_error,
            "wall_s": round(self.wall_s, 3),
            "rate_per_s": round(self.rate_per_s, 1),
            "event_start_ts": self.event_start_ts,
            "event_end_ts": self.event_end_ts,
            "event_span_s": self.event_span_s,
            "ground_truth_path": None
            if self.ground_truth_path is None
            else str(self.ground_truth_path),
        }


def ground_truth(
    config: SimConfig, start_ts: float, totals: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Where and when each scripted incident happened, in event time.

    Parameters
    ----------
    config
        The run's config.
    start_ts
        The run's resolved start (:meth:`SimConfig.resolve_start_ts`).
    totals
        Messages sent per topic attribute, if known.

    Examples
    --------
    >>> from streams.lab.scenario import parse_scenario
    >>> sc = parse_scenario({"name": "s", "duration_s": 900, "incidents": [{"type": "load_surge",
    ...     "service": "search", "start_s": 300, "duration_s": 400, "ramp_s": 100}]})
    >>> truth = ground_truth(SimConfig.for_scenario(sc), start_ts=1000.0)
    >>> inc = truth["incidents"][0]
    >>> inc["type"], inc["service"], inc["region"], inc["onset_ts"], inc["peak_ts"], inc["end_ts"]
    ('load_surge', 'search', None, 1300.0, 1500.0, 1700.0)
    """
    incidents = []
    for inc in config.scenario.incidents if config.scenario else ():
        entry: dict[str, Any] = {
            "type": inc.type,
            "service": getattr(inc, "service", None),
            "region": getattr(inc, "region", None),
            "onset_ts": start_ts + inc.start_s,
            "end_ts": start_ts + inc.end_s,
        }
        if isinstance(inc, RegionOutage):
            entry |= {"stop_ts": start_ts + inc.stop_s, "degrade_s": inc.degrade_s}
        elif isinstance(inc, Brownout):
            entry |= {"error_rate": inc.error_rate, "latency_factor": inc.latency_factor}
        elif isinstance(inc, ErrorBurst):
            entry |= {
                "fault_type": inc.fault_type,
                "rate_per_s": inc.rate_per_s,
                "deploy_version": inc.deploy_version,
                "deploy_ts": None
                if inc.deploy_version is None
                else start_ts + _deploy_s(inc, config.tick_s),
            }
        elif isinstance(inc, LoadSurge):
            entry |= {
                "factor": inc.factor,
                "ramp_s": inc.ramp_s,
                "peak_ts": start_ts + inc.peak_s,
                "plateau_start_ts": start_ts + inc.start_s + inc.ramp_s,
                "plateau_end_ts": start_ts + inc.end_s - inc.ramp_s,
            }
        elif isinstance(inc, Flapping):
            entry |= {"period_s": inc.period_s}
        elif isinstance(inc, Saturation):
            breach_s = inc.breach_s
            entry |= {
                "metric": inc.metric,
                "from_value": inc.from_value,
                "to_value": inc.to_value,
                "breach_ts": None if breach_s is None else start_ts + breach_s,
            }
        incidents.append(entry)
    truth: dict[str, Any] = {
        "scenario": config.scenario.name if config.scenario else None,
        "seed": config.seed,
        "start_ts": start_ts,
        "end_ts": start_ts + config.duration_s,
        "tick_s": config.tick_s,
        "services": list(config.services),
        "regions": list(config.regions),
        "incidents": incidents,
    }
    if totals is not None:
        truth["totals"] = {
            **{a: totals.get(a, 0) for a in TOPIC_ATTRS},
            "total": sum(totals.values()),
        }
    return truth


def _deploy_s(burst: ErrorBurst, tick_s: float) -> float:
    """When the burst's new version rolls out: on the tick shortly before the burst."""
    return math.ceil(max(0.0, burst.start_s - _DEPLOY_LEAD_S) / tick_s) * tick_s


# --- log lines ---------------------------------------------------------------------------------

_FIRST = ("anna", "ravi", "li", "maria", "john", "fatima", "kenji", "olga", "diego", "amara")
_LAST = ("smith", "patel", "wang", "garcia", "muller", "okafor", "tanaka", "ivanova", "silva")
_MAIL = ("example.com", "mail.test", "shop.example.org")
_UPSTREAMS = ("payments", "inventory", "pricing", "auth", "recommendations", "shipping")


class _Vars:
    """The variable parts of log lines (ids, durations, addresses), from one RNG."""

    __slots__ = ("pod", "rng", "service")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.service = ""
        self.pod = ""

    def n(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def ms(self, low: int = 200, high: int = 30_000) -> int:
        return self.rng.randint(low, high)

    def ip(self) -> str:
        r = self.rng.randrange
        return f"10.{r(256)}.{r(256)}.{r(1, 255)}"

    def email(self) -> str:
        c = self.rng.choice
        return f"{c(_FIRST)}.{c(_LAST)}{self.rng.randrange(100)}@{c(_MAIL)}"

    def req(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def order(self) -> str:
        return f"ord-{self.rng.randrange(10**7, 10**8)}"

    def sku(self) -> str:
        return f"SKU-{self.rng.randrange(10**5, 10**6)}"

    def upstream(self) -> str:
        return self.rng.choice(_UPSTREAMS)


@dataclass(frozen=True, slots=True)
class _Fault:
    """How one fault type shows up in the logs."""

    error_type: str
    severity: str
    frame: str  # the function at the top of the stack when it happens
    templates: tuple[Callable[[_Vars], str], ...]


_FAULTS: dict[str, _Fault] = {
    "db_connection_pool_exhausted": _Fault(
        "TimeoutError",
        "error",
        "db.acquire",
        (
            lambda v: (
                f"QueuePool limit of size {v.n(10, 40)} overflow 10 reached, connection "
                f"timed out, timeout 30.00 (request_id={v.req()})"
            ),
            lambda v: (
                f"could not acquire connection to {v.ip()}:5432 after {v.ms()} ms "
                f"({v.n(40, 50)}/50 in use)"
            ),
            lambda v: f"order {v.order()} for {v.email()} failed: database pool exhausted",
        ),
    ),
    "upstream_timeout": _Fault(
        "TimeoutError",
        "error",
        "http.request",
        (
            lambda v: (
                f"GET http://{v.upstream()}.svc.cluster.local:8080/v1/items/{v.sku()} "
                f"timed out after {v.ms()} ms (request_id={v.req()})"
            ),
            lambda v: (
                f"upstream {v.upstream()} did not respond within {v.ms(500, 5000)}ms, "
                f"retry {v.n(1, 3)}/3"
            ),
        ),
    ),
    "dependency_unavailable": _Fault(
        "ConnectionRefusedError",
        "error",
        "pool.connect",
        (
            lambda v: (
                f"connect to {v.ip()}:{v.n(5000, 9000)} failed: [Errno 111] Connection refused"
            ),
            lambda v: (
                f"circuit breaker OPEN for {v.upstream()} after {v.n(5, 50)} consecutive failures"
            ),
        ),
    ),
    "health_check_failed": _Fault(
        "HealthCheckError",
        "critical",
        "probe.check",
        (
            lambda v: f"readiness probe failed for {v.pod}: HTTP 503 after {v.ms(1000, 10000)} ms",
            lambda v: f"lost heartbeat from {v.pod} ({v.ip()}) for {v.n(10, 90)}s",
        ),
    ),
    "out_of_memory": _Fault(
        "MemoryError",
        "critical",
        "worker.run",
        (
            lambda v: (
                f"worker pid {v.n(100, 65000)} killed: OOM (rss={v.n(1900, 2100)} MiB, "
                f"limit=2048 MiB)"
            ),
            lambda v: f"container {v.pod} exceeded its memory limit, restart #{v.n(1, 9)}",
        ),
    ),
    "validation_error": _Fault(
        "ValidationError",
        "warning",
        "schema.validate",
        (
            lambda v: (
                f"invalid payload from {v.email()}: field 'quantity' must be > 0 (got {-v.n(0, 5)})"
            ),
            lambda v: (
                f"rejected request {v.req()} from {v.ip()}: malformed JSON at position "
                f"{v.n(1, 900)}"
            ),
        ),
    ),
    "rate_limited": _Fault(
        "RateLimitExceeded",
        "warning",
        "quota.check",
        (
            lambda v: (
                f"tenant t-{v.n(0, 99):04d} exceeded {v.n(50, 500)} req/s quota, "
                f"throttling for {v.n(1, 30)}s"
            ),
            lambda v: (
                f"429 from {v.upstream()} for order {v.order()}, backing off {v.ms(100, 5000)} ms"
            ),
        ),
    ),
    "null_reference": _Fault(
        "AttributeError",
        "error",
        "render.item",
        (
            lambda v: f"'NoneType' object has no attribute 'price' while rendering {v.sku()}",
            lambda v: f"missing key 'currency' in cart of {v.email()} (order {v.order()})",
        ),
    ),
    "tls_handshake_failure": _Fault(
        "SSLError",
        "error",
        "tls.handshake",
        (
            lambda v: (
                f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed for "
                f"{v.upstream()}.internal ({v.ip()})"
            ),
        ),
    ),
    "disk_full": _Fault(
        "OSError",
        "critical",
        "spool.write",
        (
            lambda v: (
                f"[Errno 28] No space left on device: '/var/lib/{v.service}/spool/{v.req()}.tmp'"
            ),
        ),
    ),
}
# Routine background noise: what a healthy fleet logs anyway.
_ROUTINE = ("upstream_timeout", "validation_error", "rate_limited", "null_reference")
_ROUTINE_CUM = (0.35, 0.7, 0.9, 1.0)
# What a degrading region or an overloaded series logs.
_DEGRADED = ("upstream_timeout", "dependency_unavailable", "health_check_failed")
_DEGRADED_CUM = (0.45, 0.85, 1.0)
_OVERLOADED = ("upstream_timeout", "rate_limited", "db_connection_pool_exhausted")
_OVERLOADED_CUM = (0.5, 0.8, 1.0)
_FAULT_POOLS = {
    "routine": (_ROUTINE, _ROUTINE_CUM),
    "degraded": (_DEGRADED, _DEGRADED_CUM),
    "overloaded": (_OVERLOADED, _OVERLOADED_CUM),
}

# --- interactions ------------------------------------------------------------------------------

# (action, preferred service, share of traffic, latency relative to the service's p50)
_ACTIONS = (
    ("view", "catalog", 0.40, 1.0),
    ("search", "search", 0.28, 1.2),
    ("add_to_cart", "checkout", 0.12, 1.3),
    ("wishlist", "catalog", 0.08, 0.9),
    ("review", "catalog", 0.05, 1.1),
    ("checkout", "checkout", 0.07, 2.5),
)
_GOOD_FEEDBACK = (
    "fast and easy",
    "found what I needed",
    "love the new search",
    "smooth checkout",
    "great prices",
)
_BAD_FEEDBACK = (
    "checkout keeps timing out",
    "page would not load",
    "payment failed twice, please call me at +44 20 7946 0{n:03d}",
    "search returned an error",
    "app is really slow today",
    "order never confirmed, email me at {email}",
)


def _utc_offset_s(region: str) -> float:
    hours = _UTC_OFFSET_H.get(region, _PREFIX_OFFSET_H.get(region.split("-")[0], 0.0))
    return hours * 3600.0


def _daily(t: float, offset_s: float) -> float:
    """Demand relative to the daily mean at local time ``t + offset_s``: peak at 15:00."""
    hour = ((t + offset_s) % _DAY_S) / 3600.0
    shape = _DAILY_FLOOR + (1 - _DAILY_FLOOR) * (
        0.5 + 0.5 * math.cos(math.tau * (hour - _PEAK_HOUR) / 24)
    )
    return shape / (0.5 + 0.5 * _DAILY_FLOOR)


def _weekly(t: float, offset_s: float) -> float:
    """Weekends are quieter: demand relative to a weekday at local time ``t + offset_s``.

    The change is spread over the night around midnight, as real traffic changes: a
    step of 28 % at midnight is an incident the anomaly detector rightly reports, and a
    healthy run crossing into Saturday must not have one.

    >>> saturday_noon = 2 * 86_400 + 12 * 3600  # 1970-01-01 was a Thursday
    >>> _weekly(saturday_noon, 0.0), _weekly(saturday_noon - 86_400, 0.0)
    (0.72, 1.0)
    >>> round(_weekly(2 * 86_400, 0.0), 2)  # Friday-to-Saturday midnight: half way
    0.86
    """
    local = t + offset_s
    midnight = round(local / _DAY_S)
    into = (local - midnight * _DAY_S) / _WEEK_RAMP_S + 0.5
    before, after = _day_factor(midnight - 1), _day_factor(midnight)
    if before == after or into <= 0.0:
        return before
    if into >= 1.0:
        return after
    return before + (after - before) * (0.5 - 0.5 * math.cos(math.pi * into))


def _day_factor(day: int) -> float:
    """Weekday 1, weekend ``_WEEKEND``; day 0 (1970-01-01) was a Thursday."""
    return _WEEKEND if (day + 3) % 7 >= 5 else 1.0


def _desired_replicas(rps: float, capacity: float) -> int:
    """Replicas that would run ``rps`` at the autoscaler's target utilisation."""
    return max(_MIN_REPLICAS, math.ceil(rps / (capacity * _TARGET_UTIL)))


class _Series:
    """The state of one service in one region of the simulated platform."""

    __slots__ = (
        "base_error",
        "base_latency",
        "base_rps",
        "drift",
        "error_add",
        "error_rate",
        "fail_rps",
        "key",
        "latency_mult",
        "mem_drift",
        "p50",
        "pending_replicas",
        "price",
        "queue",
        "region",
        "region_index",
        "replicas",
        "rps",
        "saturation",
        "service",
        "surge",
        "version",
        "window_n",
        "window_rps",
    )

    def __init__(self, service: str, region: str, region_index: int, config: SimConfig) -> None:
        profile = _PROFILES.get(service, _DEFAULT_PROFILE)
        self.service = service
        self.region = region
        self.region_index = region_index
        self.key = telemetry_key(service, region)
        self.base_rps = config.base_rps * profile.demand * _REGION_SHARE.get(region, 0.7)
        self.base_latency = profile.latency_ms
        self.base_error = profile.error_rate
        self.price = config.price_per_replica_hour * profile.size * _REGION_PRICE.get(region, 1.0)
        self.drift = 0.0
        self.mem_drift = 0.0
        self.queue = 0.0
        self.replicas = _MIN_REPLICAS
        self.pending_replicas = _MIN_REPLICAS
        self.window_rps = 0.0
        self.window_n = 0
        self.rps = 0.0
        self.p50 = profile.latency_ms
        self.error_rate = profile.error_rate
        self.version = ""
        self.reset_effects()

    def reset_effects(self) -> None:
        self.surge = 1.0
        self.error_add = 0.0
        self.fail_rps = 0.0
        self.latency_mult = 1.0
        # Saturating metrics driven by an incident this tick: name -> value.
        self.saturation: dict[str, float] = {}


class _Tenant(NamedTuple):
    """A customer of the platform, homed in one region."""

    name: str
    region_index: int
    region: str
    rate: float  # interactions per second at mean load
    users: list[str]
    data_class: str | None


class _World:
    """One simulation run: the fleet's state, advanced one tick at a time."""

    def __init__(self, config: SimConfig, start_ts: float) -> None:
        self.config = config
        self.start_ts = start_ts
        self.end_ts = start_ts + config.duration_s
        seed = config.seed
        # One RNG per concern, so that scripting an incident in one stream leaves the
        # random draws of the others (and so their values) unchanged.
        self.noise = np.random.default_rng([seed & 0xFFFFFFFF, 0])
        self.err_rng = random.Random(f"{seed}/errors")
        self.int_rng = random.Random(f"{seed}/interactions")
        self.err_counts = np.random.default_rng([seed & 0xFFFFFFFF, 1])
        self.int_counts = np.random.default_rng([seed & 0xFFFFFFFF, 2])
        self.err_vars = _Vars(self.err_rng)
        self.int_vars = _Vars(self.int_rng)
        self.offsets = [_utc_offset_s(r) + config.profile_shift_s for r in config.regions]
        self.series = [
            _Series(s, r, ri, config)
            for ri, r in enumerate(config.regions)
            for s in config.services
        ]
        versions = random.Random(f"{seed}/versions")
        service_version = {
            s: f"v1.{versions.randrange(2, 9)}.{versions.randrange(10)}" for s in config.services
        }
        for sr in self.series:
            sr.version = service_version[sr.service]
            load = _daily(start_ts, self.offsets[sr.region_index]) * _weekly(
                start_ts, self.offsets[sr.region_index]
            )
            sr.replicas = sr.pending_replicas = _desired_replicas(
                sr.base_rps * load, config.capacity_rps
            )
        self.by_name = {(sr.service, sr.region): sr for sr in self.series}
        self.incidents = config.scenario.incidents if config.scenario else ()
        self.deploys = sorted(
            (_deploy_s(inc, config.tick_s), inc.service, inc.region, inc.deploy_version)
            for inc in self.incidents
            if isinstance(inc, ErrorBurst) and inc.deploy_version
        )
        self.scale_every = max(1, round(_SCALE_EVERY_S / config.tick_s))
        self._init_tenants(versions)
        self._init_actions()

    def _init_tenants(self, rng: random.Random) -> None:
        config = self.config
        weights = [rng.lognormvariate(0, 0.6) for _ in range(config.tenants)]
        total = sum(weights) or 1.0
        self.tenants: list[_Tenant] = []
        for j in range(config.tenants):
            ri = j % len(config.regions)
            region = config.regions[ri]
            tenant = f"t-{j:04d}"
            users = [
                "u-"
                + hashlib.blake2b(f"{config.seed}/{tenant}/{u}".encode(), digest_size=6).hexdigest()
                for u in range(_USERS_PER_TENANT)
            ]
            rate = config.interactions_per_s * weights[j] / total
            data_class = "eu-personal" if region.startswith("eu") else None
            self.tenants.append(_Tenant(tenant, ri, region, rate, users, data_class))

    def _init_actions(self) -> None:
        services = self.config.services
        self.actions = []
        cum = 0.0
        self.action_cum = []
        for i, (action, preferred, share, latency) in enumerate(_ACTIONS):
            si = services.index(preferred) if preferred in services else i % len(services)
            self.actions.append((action, si, latency))
            cum += share
            self.action_cum.append(cum)
        self.action_cum[-1] = 1.0

    # --- incidents ---

    def _apply_incidents(self, t_s: float) -> tuple[set[int], dict[int, float], list[tuple]]:
        """Set this tick's incident effects on the series.

        Returns the silent regions, the cut-off event time of regions going silent
        within this tick, and extra error log sources ``(series, pool_or_fault, rate)``.
        """
        silent: set[int] = set()
        cutoff: dict[int, float] = {}
        sources: list[tuple] = []
        tick = self.config.tick_s
        regions = self.config.regions
        for inc in self.incidents:
            if not inc.start_s <= t_s < inc.end_s:
                continue
            if isinstance(inc, ErrorBurst):
                sr = self.by_name[(inc.service, inc.region)]
                sr.fail_rps += inc.rate_per_s
                sr.latency_mult *= 1.5
                sources.append((sr, inc.fault_type, inc.rate_per_s))
                continue
            if isinstance(inc, Saturation):
                sr = self.by_name[(inc.service, inc.region)]
                sr.saturation[inc.metric] = inc.value(t_s)
                continue
            if isinstance(inc, LoadSurge):
                mult = inc.multiplier(t_s)
                for sr in self.series:
                    if sr.service == inc.service and inc.region in (None, sr.region):
                        sr.surge *= mult
                continue
            ri = regions.index(inc.region)
            members = [sr for sr in self.series if sr.region_index == ri]
            if isinstance(inc, RegionOutage):
                if t_s >= inc.stop_s:
                    silent.add(ri)
                    continue
                if inc.stop_s < t_s + tick:
                    cutoff[ri] = self.start_ts + inc.stop_s
                p = (t_s - inc.start_s) / inc.degrade_s if inc.degrade_s else 1.0
                for sr in members:
                    sr.error_add += 0.02 + 0.5 * p
                    sr.latency_mult *= 1.0 + 7.0 * p
                    sources.append((sr, "degraded", 0.5 + 6.0 * p))
            elif isinstance(inc, Brownout):
                for sr in members:
                    sr.error_add += inc.error_rate
                    sr.latency_mult *= inc.latency_factor
            elif isinstance(inc, Flapping) and inc.is_down(t_s):
                for sr in members:
                    sr.error_add += 0.4
                    sr.latency_mult *= 6.0
                    sources.append((sr, "degraded", 3.0))
        return silent, cutoff, sources

    # --- the three streams ---

    def _metrics(self, t: float, silent: set[int], tick_index: int) -> Iterator[Message]:
        # One vectorised draw per tick: a Python-level gauss() per value costs more
        # than everything else in this loop.
        z = iter(self.noise.standard_normal(_NOISE_PER_SERIES * len(self.series)).tolist())
        nz = z.__next__
        capacity = self.config.capacity_rps
        tick = self.config.tick_s
        loads = [_daily(t, off) * _weekly(t, off) for off in self.offsets]
        rescale = tick_index % self.scale_every == 0
        dumps = orjson.dumps
        ts = round(t, 3)
        for sr in self.series:
            # The noise moves on even while a region is silent: the platform keeps running.
            sr.drift = 0.97 * sr.drift + 0.012 * nz()
            sr.mem_drift = 0.99 * sr.mem_drift + 0.004 * nz()
            noise = 1.0 + 0.03 * nz()
            rps = sr.base_rps * loads[sr.region_index] * sr.surge * (1.0 + sr.drift) * noise
            rps = max(0.0, rps)
            sr.rps = rps
            replicas = sr.replicas
            cap = replicas * capacity
            demand = rps / cap
            # Requests beyond capacity queue up, spare capacity drains the queue, and
            # what does not fit in the bounded queue is shed: those requests fail.
            backlog = sr.queue + (rps - cap) * tick
            queue_limit = cap * _MAX_QUEUE_S
            shed = max(0.0, backlog - queue_limit) / (rps * tick) if rps > 0 else 0.0
            sr.queue = min(max(0.0, backlog), queue_limit)
            slow = 1.0 / (1.0 - min(demand, 0.95))
            queue_wait_ms = 1000.0 * sr.queue / cap
            p50 = sr.base_latency * (0.6 + 0.2 * slow) * sr.latency_mult * (1.0 + 0.04 * nz())
            p50 = max(1.0, p50) + queue_wait_ms
            p99 = p50 * (2.5 + 1.5 * min(demand, 1.0)) * (1.0 + abs(0.1 * nz()))
            overload = shed + max(0.0, demand - 0.95) * 0.2
            burst = sr.fail_rps / rps if rps > 1.0 else (1.0 if sr.fail_rps else 0.0)
            error_rate = sr.base_error * (1.0 + abs(0.3 * nz())) + overload + sr.error_add
            error_rate = min(1.0, error_rate + burst)
            sr.p50 = p50
            sr.error_rate = error_rate
            sr.window_rps += rps
            sr.window_n += 1
            if rescale:
                # A naive autoscaler: decide on last minute's mean demand, and the
                # replicas decided last time become ready only now.
                sr.replicas = sr.pending_replicas
                want = _desired_replicas(sr.window_rps / sr.window_n, capacity)
                if want > sr.replicas:
                    want = min(want, sr.replicas + max(1, sr.replicas // 2))
                elif want < sr.replicas:
                    want = max(want, sr.replicas - max(1, sr.replicas // 10))
                sr.pending_replicas = want
                sr.window_rps = 0.0
                sr.window_n = 0
            cpu_noise = 1.0 + 0.02 * nz()
            if sr.region_index in silent:
                continue
            cpu = min(1.0, max(0.01, demand * cpu_noise))
            mem = min(1.0, max(0.05, 0.35 + 0.3 * min(demand, 1.0) + sr.mem_drift))
            body = {
                "ts": ts,
                "region": sr.region,
                "service": sr.service,
                "metrics": {
                    # round(x * 10**n) / 10**n: twice as fast as round(x, n), same result
                    "cpu_util": round(cpu * 1e4) / 1e4,
                    "mem_util": round(mem * 1e4) / 1e4,
                    "rps": round(rps * 100.0) / 100.0,
                    "latency_p50_ms": round(p50 * 100.0) / 100.0,
                    "latency_p99_ms": round(p99 * 100.0) / 100.0,
                    "error_rate": round(error_rate * 1e5) / 1e5,
                    "replicas": replicas,
                    "queue_depth": int(sr.queue + rps * 0.01 * min(demand, 1.0) ** 2),
                    "cost_per_hour": round(replicas * sr.price * 1e4) / 1e4,
                },
            }
            if sr.saturation:
                metrics = body["metrics"]
                for name, value in sr.saturation.items():
                    # The memory's own wander rides on a leak; the rest climb smoothly.
                    value += sr.mem_drift if name == "mem_util" else 0.0
                    if name != "error_budget_used":
                        value = min(value, 1.0)  # a utilisation is a fraction
                    metrics[name] = round(max(0.0, value) * 1e4) / 1e4
            yield "metrics", sr.key, dumps(body), t

    def _error(self, sr: _Series, fault: str, t: float) -> bytes:
        rng = self.err_rng
        spec = _FAULTS[fault]
        v = self.err_vars
        v.service = sr.service
        v.pod = f"{sr.service}-{sr.region}-{rng.randrange(max(1, sr.replicas))}"
        message = rng.choice(spec.templates)(v)
        body: dict[str, Any] = {
            "ts": round(t, 3),
            "region": sr.region,
            "service": sr.service,
            "severity": spec.severity,
            "error_type": spec.error_type,
            "message": message,
            "deploy_version": sr.version,
        }
        if rng.random() < 0.9:
            body["trace_id"] = f"{rng.getrandbits(128):032x}"
        if spec.severity != "warning" and rng.random() < 0.4:
            module, func = spec.frame.split(".")
            body["stack"] = (
                "Traceback (most recent call last):\n"
                f'  File "/srv/{sr.service}/app/handlers.py", line {rng.randrange(40, 400)}, '
                "in handle\n"
                f'  File "/srv/{sr.service}/app/{module}.py", line {rng.randrange(10, 300)}, '
                f"in {func}\n"
                f"{spec.error_type}: {message}"
            )
        return orjson.dumps(body)

    def _errors(
        self, t: float, silent: set[int], cutoff: dict[int, float], sources: list[tuple]
    ) -> Iterator[Message]:
        rng = self.err_rng
        tick = self.config.tick_s
        span = min(tick, self.end_ts - t)
        base = self.config.errors_per_s
        plan: list[tuple[_Series, str, float]] = []
        for sr in self.series:
            if sr.region_index in silent:
                continue
            if base:
                plan.append((sr, "routine", base))
            # Failures beyond the baseline and beyond a scripted burst leave log lines too.
            excess = sr.error_rate - sr.base_error - (sr.fail_rps / sr.rps if sr.rps > 1 else 0)
            if excess > 0.01:
                pool = "overloaded" if sr.queue > 0 else "degraded"
                plan.append((sr, pool, min(_MAX_LOG_RATE, _LOG_SHARE * sr.rps * excess)))
        plan.extend(s for s in sources if s[0].region_index not in silent)
        if not plan:
            return
        counts = self.err_counts.poisson([rate * tick for _, _, rate in plan]).tolist()
        for (sr, what, _), count in zip(plan, counts, strict=True):
            limit = cutoff.get(sr.region_index, math.inf)
            pool = _FAULT_POOLS.get(what)
            for _ in range(count):
                ts = t + rng.random() * span
                if ts >= limit:
                    continue
                if pool is None:
                    fault = what
                else:
                    names, cum = pool
                    fault = names[bisect.bisect(cum, rng.random())]
                yield "errors", sr.key, self._error(sr, fault, ts), ts

    def _deploy_notice(self, sr: _Series, t: float) -> Message:
        rng = self.err_rng
        body = {
            "ts": round(t, 3),
            "region": sr.region,
            "service": sr.service,
            "severity": "warning",
            "error_type": "ReadinessProbeWarning",
            "message": f"rolling update to {sr.version}: readiness probe of "
            f"{sr.service}-{sr.region}-{rng.randrange(max(1, sr.replicas))} failed once "
            f"({rng.randint(1, 9)}.{rng.randint(0, 9)}s), retrying",
            "deploy_version": sr.version,
        }
        return "errors", sr.key, orjson.dumps(body), t

    def _interactions(
        self, t: float, silent: set[int], cutoff: dict[int, float]
    ) -> Iterator[Message]:
        if not self.tenants or not self.config.interactions_per_s:
            return
        rng = self.int_rng
        rand = rng.random
        tick = self.config.tick_s
        span = min(tick, self.end_ts - t)
        n_services = len(self.config.services)
        series = self.series
        region_load = [0.0] * len(self.config.regions)
        for sr in series:
            region_load[sr.region_index] += sr.rps / sr.base_rps / n_services
        lams = [
            0.0
            if tenant.region_index in silent
            else tenant.rate * region_load[tenant.region_index] * tick
            for tenant in self.tenants
        ]
        counts = self.int_counts.poisson(lams).tolist()
        actions = self.actions
        action_cum = self.action_cum
        dumps = orjson.dumps
        for (tenant, ri, region, _, users, data_class), count in zip(
            self.tenants, counts, strict=True
        ):
            limit = cutoff.get(ri, math.inf)
            for _ in range(count):
                ts = t + rand() * span
                if ts >= limit:
                    continue
                action, si, latency_mult = actions[bisect.bisect(action_cum, rand())]
                sr = series[ri * n_services + si]
                success = rand() >= sr.error_rate
                latency = sr.p50 * latency_mult * rng.lognormvariate(0.0, 0.4)
                if not success:
                    latency *= 1.5
                body: dict[str, Any] = {
                    "ts": round(ts, 3),
                    "region": region,
                    "tenant": tenant,
                    "service": sr.service,
                    "user_id": users[int(rand() * _USERS_PER_TENANT)],
                    "action": action,
                    "latency_ms": round(latency, 2),
                    "success": success,
                }
                if rand() < (0.01 if success else 0.08):
                    body["feedback_text"] = self._feedback(success)
                if data_class:
                    body["data_class"] = data_class
                yield "interactions", sr.key, dumps(body), ts

    def _feedback(self, success: bool) -> str:
        rng = self.int_rng
        if success:
            return rng.choice(_GOOD_FEEDBACK)
        return rng.choice(_BAD_FEEDBACK).format(n=rng.randrange(1000), email=self.int_vars.email())

    def messages(self) -> Iterator[Message]:
        tick = self.config.tick_s
        deploys = list(self.deploys)
        for k in range(self.config.ticks):
            t_s = k * tick
            t = self.start_ts + t_s
            if self.incidents:
                for sr in self.series:
                    sr.reset_effects()
                silent, cutoff, sources = self._apply_incidents(t_s)
            else:
                silent, cutoff, sources = set(), {}, []
            yield from self._metrics(t, silent, k)
            while deploys and deploys[0][0] <= t_s:
                _, service, region, version = deploys.pop(0)
                sr = self.by_name[(service, region)]
                sr.version = version
                if sr.region_index not in silent:
                    yield self._deploy_notice(sr, t)
            yield from self._errors(t, silent, cutoff, sources)
            yield from self._interactions(t, silent, cutoff)


def generate(config: SimConfig, *, now: float | None = None) -> Iterator[Message]:
    """The simulation as a stream of encoded messages, tick by tick.

    A tick's metrics carry the tick's time; its errors and interactions are
    spread over the tick, so event times are ordered between ticks, not within.

    Parameters
    ----------
    config
        What to simulate. The stream is a pure function of the config and the
        resolved start time.
    now
        Wall-clock time used to place a run whose ``start_ts`` is ``None``.

    Yields
    ------
    Message
        ``(topic_attr, key, value, event_ts)`` with ``topic_attr`` one of
        :data:`TOPIC_ATTRS`, ``key`` from :func:`~schemas.topics.telemetry_key`
        and ``value`` the JSON document.

    Examples
    --------
    >>> config = SimConfig(duration_s=10, tick_s=5, start_ts=1_700_000_000.0, tenants=0)
    >>> stream = list(generate(config))
    >>> sorted({attr for attr, *_ in stream})
    ['errors', 'metrics']
    >>> attr, key, value, ts = stream[0]
    >>> attr, key, ts, orjson.loads(value)["service"]
    ('metrics', b'checkout/us-east', 1700000000.0, 'checkout')
    """
    yield from _World(config, config.resolve_start_ts(now)).messages()


class _KeyPartitioner:
    """Kafka's default key partitioning, memoised: the fleet has only S x R keys.

    aiokafka's murmur2 is pure Python and costs more per message than sending it.
    """

    def __init__(self) -> None:
        self._default = DefaultPartitioner()
        self._index: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return self._default(key, all_partitions, available)
        index = self._index.get((key, len(all_partitions)))
        if index is None:
            index = all_partitions.index(self._default(key, all_partitions, available))
            self._index[(key, len(all_partitions))] = index
        return all_partitions[index]


class _Sender:
    """Sends a stream through one producer, settling futures chunk by chunk.

    A chunk's futures are awaited only after the next chunk is queued, so the
    producer always has a full batch in flight while the stream is generated.
    Counts are in records: an envelope acknowledged counts all of its records.
    """

    def __init__(self, producer: AIOKafkaProducer, topics: TopicNames) -> None:
        self.producer = producer
        self.names = {attr: getattr(topics, attr) for attr in TOPIC_ATTRS}
        self.sent = dict.fromkeys(TOPIC_ATTRS, 0)
        self.messages = 0
        self.failed = 0
        self.first_error: str | None = None
        self.chunk: list[tuple[str, int, asyncio.Future[Any]]] = []
        self.in_flight: list[tuple[str, int, asyncio.Future[Any]]] = []

    async def send(self, attr: str, key: bytes, value: bytes, records: int = 1) -> None:
        future = await self.producer.send(self.names[attr], value, key=key)
        self.chunk.append((attr, records, future))

    async def rotate(self) -> None:
        """Settle the chunk in flight and put the current one in flight."""
        await self._settle(self.in_flight)
        self.in_flight, self.chunk = self.chunk, []

    async def drain(self) -> None:
        await self.rotate()
        await self.rotate()

    async def _settle(self, batch: list[tuple[str, int, asyncio.Future[Any]]]) -> None:
        if not batch:
            return
        results = await asyncio.gather(*(f for *_, f in batch), return_exceptions=True)
        for (attr, records, _), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                self.failed += records
                if self.first_error is None:
                    self.first_error = f"{type(result).__name__}: {result}"
            else:
                self.sent[attr] += records
                self.messages += 1

    @property
    def total(self) -> int:
        return sum(self.sent.values())


#: ``(topic_attr, key, value, records)``: one message to send, ``records`` in its value.
Outgoing = tuple[str, bytes, bytes, int]


class Envelopes:
    """Gathers records per (topic, key) into envelopes ``{"samples": [...]}``.

    An envelope is ready when it holds ``size`` records or ``_ENVELOPE_BYTES``; all open
    ones are ready when the stream's event time is ``span_s`` past the first record
    gathered, and on :meth:`flush`. Records of one key keep their order. With ``size`` 1
    every record is its own message, unwrapped.

    Examples
    --------
    >>> batch = Envelopes(size=2, span_s=60.0)
    >>> batch.add("metrics", b"a/x", b'{"n":1}', 0.0)
    []
    >>> batch.add("metrics", b"a/x", b'{"n":2}', 5.0)
    [('metrics', b'a/x', b'{"samples":[{"n":1},{"n":2}]}', 2)]
    >>> batch.add("metrics", b"b/x", b'{"n":3}', 10.0), batch.flush()
    ([], [('metrics', b'b/x', b'{"samples":[{"n":3}]}', 1)])
    """

    def __init__(self, size: int, span_s: float) -> None:
        self.size = size
        self.span_s = span_s
        self.open: dict[tuple[str, bytes], tuple[list[bytes], int]] = {}
        self.since = math.inf

    def add(self, attr: str, key: bytes, value: bytes, event_ts: float) -> list[Outgoing]:
        """Take one record; return the messages now ready to send, in order."""
        if self.size == 1:
            return [(attr, key, value, 1)]
        ready = self.flush() if event_ts - self.since >= self.span_s else []
        if not self.open:
            self.since = event_ts
        values, size = self.open.get((attr, key)) or ([], 0)
        values.append(value)
        size += len(value) + 1
        if len(values) >= self.size or size >= _ENVELOPE_BYTES:
            self.open.pop((attr, key), None)
            ready.append(_envelope(attr, key, values))
        else:
            self.open[(attr, key)] = (values, size)
        return ready

    def flush(self) -> list[Outgoing]:
        """Every open envelope, ready to send."""
        opened, self.open = self.open, {}
        self.since = math.inf
        return [_envelope(attr, key, values) for (attr, key), (values, _) in opened.items()]


def _envelope(attr: str, key: bytes, values: list[bytes]) -> Outgoing:
    return attr, key, b'{"samples":[' + b",".join(values) + b"]}", len(values)


def enveloped(config: SimConfig, *, now: float | None = None) -> Iterator[Outgoing]:
    """The messages :func:`run_simulation` sends for ``config`` unpaced, without a broker."""
    batch = Envelopes(config.envelope_records, config.envelope_span_s)
    for attr, key, value, event_ts in generate(config, now=now):
        yield from batch.add(attr, key, value, event_ts)
    yield from batch.flush()


class _Pacer:
    """How long to wait before sending an event, at the speed of its stretch of the run.

    Each stretch is timed from when its first event comes up, so a fast stretch before it
    (the warm-up history) does not make it rush to catch up.

    >>> pacer = _Pacer(SimConfig(duration_s=600, speed=0, pace=((300, 10),)), 0.0, 50.0)
    >>> pacer.wait_s(100.0, now=51.0), pacer.wait_s(300.0, now=52.0), pacer.wait_s(320.0, 53.0)
    (0.0, 0.0, 1.0)
    """

    def __init__(self, config: SimConfig, start_ts: float, wall0: float) -> None:
        self._next = [(start_ts + from_s, speed) for from_s, speed in config.stretches()[1:]]
        self._speed = config.stretches()[0][1]
        self._anchor_ts, self._anchor_wall = start_ts, wall0

    def wait_s(self, event_ts: float, now: float) -> float:
        while self._next and event_ts >= self._next[0][0]:
            (self._anchor_ts, self._speed), self._anchor_wall = self._next.pop(0), now
        if not self._speed:
            return 0.0
        return self._anchor_wall + (event_ts - self._anchor_ts) / self._speed - now


async def run_simulation(
    config: SimConfig,
    *,
    bootstrap_servers: str,
    topics: TopicNames,
    ground_truth_path: Path | None = None,
    progress: ProgressFn | None = None,
    security: Mapping[str, Any] | None = None,
) -> SimSummary:
    """Produce the simulation to Kafka and count what the broker acknowledged.

    Parameters
    ----------
    config
        What to simulate; ``config.speed`` paces it in wall time.
    bootstrap_servers
        ``host:port[,host:port]`` (see :attr:`streams.runtime.settings.Settings.bootstrap_servers`).
    topics
        Where the metrics, errors and interactions go.
    ground_truth_path
        If given, the run's :func:`ground_truth`, totals included, is written
        there as JSON when the run ends.
    progress
        ``progress(sent_total, rate_per_s, event_ts)``, called at most about
        once per second with the acknowledged count, the recent rate and the
        event time reached.
    security
        aiokafka keyword arguments for a TLS or SASL broker, as made by
        :meth:`streams.runtime.settings.Settings.aiokafka_security_kwargs`.

    Returns
    -------
    SimSummary
        Messages acknowledged per topic attribute, failures, and timings.

    Raises
    ------
    aiokafka.errors.KafkaError
        If the producer cannot connect to the broker.
    """
    now = time.time()
    start_ts = config.resolve_start_ts(now)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id="autopilot-simulator",
        acks="all",
        compression_type=config.compression,
        linger_ms=config.linger_ms,
        max_batch_size=512 * 1024,
        partitioner=_KeyPartitioner(),
        **(security or {}),
    )
    await producer.start()
    sender = _Sender(producer, topics)
    batch = Envelopes(config.envelope_records, config.envelope_span_s)
    wall0 = time.monotonic()
    try:
        last_rotate = last_report = wall0
        reported = 0
        paced_ts = start_ts
        pacer = _Pacer(config, start_ts, wall0)
        for n, (attr, key, value, event_ts) in enumerate(generate(config, now=now)):
            slept = False
            if event_ts > paced_ts:
                paced_ts = event_ts
                ahead = pacer.wait_s(event_ts, time.monotonic())
                if ahead > 0.01:
                    # A collector sends what it holds before it waits.
                    for message in batch.flush():
                        await sender.send(*message)
                    await asyncio.sleep(ahead)
                    slept = True
            for message in batch.add(attr, key, value, event_ts):
                await sender.send(*message)
            full = len(sender.chunk) >= _CHUNK
            # Reading the clock for every message would cost more than the rest.
            if not (full or slept or n & 255 == 0):
                continue
            clock = time.monotonic()
            if full:
                await sender.rotate()
                last_rotate = clock
            elif clock - last_rotate >= 0.5:
                # A slow (paced) run: settle everything so progress is current.
                await sender.drain()
                last_rotate = clock
            if progress is not None and clock - last_report >= 1.0:
                total = sender.total
                progress(total, (total - reported) / (clock - last_report), event_ts)
                last_report, reported = clock, total
        for message in batch.flush():
            await sender.send(*message)
        await sender.drain()
    finally:
        await producer.stop()
    wall_s = time.monotonic() - wall0
    if ground_truth_path is not None:
        truth = ground_truth(config, start_ts, sender.sent)
        ground_truth_path = Path(ground_truth_path)
        ground_truth_path.parent.mkdir(parents=True, exist_ok=True)
        partial = ground_truth_path.with_name(ground_truth_path.name + ".partial")
        partial.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
        os.replace(partial, ground_truth_path)
    return SimSummary(
        sent=dict(sender.sent),
        failed=sender.failed,
        wall_s=wall_s,
        event_start_ts=start_ts,
        event_end_ts=start_ts + config.duration_s,
        first_error=sender.first_error,
        ground_truth_path=ground_truth_path,
        messages=sender.messages,
    )
