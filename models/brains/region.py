"""The region brain: region health and the failover policy, fed in event-time order.

A :class:`RegionBrain` holds a :class:`~models.health.region.RegionHealthBank`, a
:class:`~models.policy.failover.FailoverPolicy` and the data classes of each region's traffic, and
turns telemetry that arrives *out of order* into decisions taken *in event time*.

Telemetry reaches a worker from several Kafka partitions of several topics, and a worker that
catches up on a backlog reads them at very different paces: a partition holding one series
runs minutes of event time ahead of one holding four. Judging a region against the latest
event time seen from any partition would make every region whose partitions are read more
slowly look silent. So observations are not applied when they arrive: they wait in a buffer
until the *release horizon* passes them, the lowest latest event time over the input sources
(partitions) that may still deliver something older; for a source of envelopes, the earliest
record of its latest message, as a collector's next envelope (another series' records of the
same window) may be older than the newest record of the one before. Observations of one
event time are applied by source, each source's in its order, so the order in which the
sources were read does not matter either. A source the caller reports *idle* (read
to its end and quiet for a while) cannot, and does not hold the horizon back: that is how a
partition whose only series belong to a region that went silent stops holding up the rest,
and how that region's silence becomes visible.

Every ``tick_s`` of event time up to the horizon, the observations up to that tick are
applied and the bank is evaluated against its watermark (the latest event time applied), and
the policy decides; these are exactly the steps of :mod:`streams.lab.bench.failover`, so the bench
figures carry over. Ticks without any new observation are skipped: when all telemetry stops,
event time stands still and nothing is concluded (a stalled pipeline is not a regional
failure), and a gap in event time followed by fresh telemetry from every live region is
judged on that telemetry.

Anomaly scores arrive only when a series starts an anomalous episode (the metrics agent's
``anomaly`` decisions). The brain holds a service's score for ``anomaly_hold_s`` (an episode
lasts at least that long) and gives the bank, with every metrics sample, the service's held
score or 0: the bank's median over services then runs over *all* of a region's services, so
one service's anomaly (a bad deploy) does not make its region unhealthy, while the same
anomaly on most of them corroborates the other evidence.

Sources may be told idle in two ways: by the caller of :meth:`RegionBrain.advance`, or by
:meth:`RegionBrain.mark_idle` when the news travels with the observations; the marks and the
horizon are a :class:`~models.brains.event_time.SourceClock`'s, whose docstring says when a
mark holds. Observations recorded elsewhere
(:class:`~models.brains.region_evidence.EvidenceRecorder`) arrive through
:meth:`RegionBrain.observe_rows`.

The state (:meth:`RegionBrain.to_state`) holds the bank, the policy, the traffic seen, the
anomalies held, the event-time position and each source's latest event time and idle mark;
the buffer is not part of it. A brain restored with :meth:`RegionBrain.load_state` ignores
observations at or before the last tick it had evaluated: they are a replay of what it had
already learned.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from models.brains.event_time import SourceClock, TickBuffer
from models.brains.interactions import HealthEvidence
from models.brains.region_evidence import (
    ANOMALY,
    EVIDENCE,
    HEALTH_METRICS,
    INTERACTION,
    METRICS,
    SYMPTOM_METRICS,
    evidence_of_row,
)
from models.health.region import DEFAULT_HEALTH_CONFIG, HealthConfig, HealthReport, RegionHealthBank
from models.policy.failover import FailoverDecisionDraft, FailoverPolicy
from schemas.config.regions import DEFAULT_DATA_CLASS, RegionConfig

__all__ = ["HEALTH_METRICS", "SYMPTOM_METRICS", "TICK_S", "RegionBrain"]

TICK_S = 5.0
"""Event seconds between two evaluations, as in the failover bench."""

_STATE_VERSION = 3
_METRICS, _ANOMALY, _INTERACTION, _EVIDENCE = 0, 1, 2, 3


class RegionBrain:
    """Region health, failover policy and traffic per data class, evaluated in event time.

    Parameters
    ----------
    config
        Regions, latencies and residency rules.
    health
        Settings of the health bank; :data:`~models.health.region.DEFAULT_HEALTH_CONFIG` if
        omitted.
    tick_s
        Event seconds between evaluations; also the policy's ``interval_s``.
    max_pending
        Observations buffered at most; beyond it the oldest is applied at once, ahead of its
        tick, so that a source stuck far behind cannot grow the buffer without bound.
    traffic_ttl_s
        A data class not seen in a region's traffic for this many event seconds is forgotten.
    max_classes
        Data classes remembered per region, least recently seen dropped first.
    anomaly_hold_s
        Event seconds an anomaly score counts for its service after the episode starts.
    **policy_settings
        Passed to :class:`~models.policy.failover.FailoverPolicy`.

    Notes
    -----
    Memory: the bank and the policy (bounded by the configuration and the services), the
    traffic map (regions x ``max_classes``), one held anomaly per service and at most
    ``max_pending`` buffered observations of about 300 bytes each. Applying an observation
    costs a few microseconds and an evaluation of every region a few tens.

    Examples
    --------
    Two minutes of telemetry from every region, then us-east stops. Its silence shows as the
    others keep reporting, and it is failed over at the first evaluation that finds it silent
    for ``silence_fail_s`` (12.5 s; see :class:`~models.policy.failover.FailoverPolicy`):

    >>> from schemas.config.regions import load_region_config
    >>> brain = RegionBrain(load_region_config())
    >>> drafts = []
    >>> for i in range(60):
    ...     ts = 1_700_000_000.0 + 5 * i
    ...     for region in brain.config.names:
    ...         if region != "us-east" or i < 24:
    ...             brain.observe_metrics(ts, region, "api", {"error_rate": 0.001})
    ...             brain.observe_interaction(ts, region, True, None)
    ...     drafts += brain.advance()
    >>> [(d.kind, d.region, d.target, round(d.ts - 1_700_000_115.0)) for d in drafts]
    [('failover', 'us-east', 'eu-west', 15)]
    >>> brain.failed_regions
    ('us-east',)

    """

    def __init__(
        self,
        config: RegionConfig,
        *,
        health: HealthConfig | None = None,
        tick_s: float = TICK_S,
        max_pending: int = 200_000,
        traffic_ttl_s: float = 86_400.0,
        max_classes: int = 64,
        anomaly_hold_s: float = 60.0,
        **policy_settings: Any,
    ) -> None:
        if not tick_s > 0 or max_pending < 1 or not traffic_ttl_s > 0 or max_classes < 1:
            raise ValueError(
                "need tick_s > 0, max_pending >= 1, traffic_ttl_s > 0, max_classes >= 1"
            )
        if anomaly_hold_s < 0:
            raise ValueError("anomaly_hold_s must be >= 0")
        self.config = config
        self.health = DEFAULT_HEALTH_CONFIG if health is None else health
        self.tick_s = tick_s
        self.max_pending = max_pending
        self.traffic_ttl_s = traffic_ttl_s
        self.max_classes = max_classes
        self.anomaly_hold_s = anomaly_hold_s
        self._policy_settings = {"interval_s": tick_s, **policy_settings}
        self.bank = RegionHealthBank(config.names, self.health)
        self.policy = FailoverPolicy(config, **self._policy_settings)
        # Region -> data class -> event time last seen, least recently seen first.
        self._traffic: dict[str, dict[str, float]] = {}
        # "region/service" -> (score, event time) of its latest anomalous episode start.
        self._anomalies: dict[str, tuple[float, float]] = {}
        # (ts, source, arrival, kind, body): observations of one event time are applied by
        # source, then in their source's order, whatever order the sources' rows arrived in.
        self._pending = TickBuffer(tick_s)
        self._seq = itertools.count()
        # Source -> [the latest position it delivered rows at, how many rows at it, the
        # earliest event time of those rows].
        self._received: dict[str, list[Any]] = {}
        self.clock = SourceClock()
        self._next_tick: float | None = None
        self._replay_floor = -math.inf
        self._reports: dict[str, HealthReport] = {}
        self._drafts: list[FailoverDecisionDraft] = []
        self.forced = 0
        """Observations applied ahead of their tick because the buffer was full."""
        self.replayed = 0
        """Observations ignored as a replay of what a restored state had already learned."""

    # ------------------------------------------------------------------------ observing
    def observe_metrics(
        self,
        ts: float,
        region: str,
        service: str,
        metrics: Mapping[str, float],
        source: str = "",
        *,
        low: float | None = None,
    ) -> None:
        """Buffer one metrics sample of ``service`` in ``region``, read from ``source``.

        ``low``, here and in the other ``observe_`` methods: the earliest event time
        ``source`` may still deliver, if below ``ts`` (:meth:`observe_rows`).
        """
        kept = {name: metrics[name] for name in HEALTH_METRICS if name in metrics}
        self._push(ts, source, _METRICS, (region, service, kept), low)

    def observe_anomaly(
        self, ts: float, region: str, service: str, metric: str, score: float, source: str = ""
    ) -> None:
        """Buffer the anomaly score of one of ``service``'s series; only symptoms count."""
        if metric in SYMPTOM_METRICS:
            self._push(ts, source, _ANOMALY, (region, service, score))
        else:
            self.clock.seen(source, ts)

    def observe_interaction(
        self,
        ts: float,
        region: str,
        success: bool,
        data_class: str | None,
        source: str = "",
        *,
        low: float | None = None,
    ) -> None:
        """Buffer one user interaction served by ``region``; ``None`` is the default class."""
        self._push(ts, source, _INTERACTION, (region, bool(success), data_class), low)

    def observe_evidence(
        self, evidence: HealthEvidence, source: str = "", *, low: float | None = None
    ) -> None:
        """Buffer health evidence of the interactions brain (e.g. a region's SLO burn).

        It waits for its tick like any observation, so a burn computed from a partition read
        ahead of the others is not judged against telemetry the brain has not applied yet.
        """
        self._push(evidence.ts, source, _EVIDENCE, (evidence,), low)

    def observe_rows(
        self, rows: list[list[Any]], source: str, spans: Iterable[list[int]] | None = None
    ) -> None:
        """Buffer the rows an :class:`~models.brains.region_evidence.EvidenceRecorder` of
        ``source`` drained, in their order: the same as the calls that recorded them.

        ``spans`` (the recorder's :attr:`~models.brains.region_evidence.EvidenceRecorder.spans`)
        says where in the source each run of rows was recorded: a row already received (a
        source read again after its reader died) is a replay, and is ignored. The rows of one
        position are one message's, an envelope's records perhaps, older than the newest of
        the message before: the source may still deliver anything from the earliest of them
        on (:meth:`~models.brains.event_time.SourceClock.seen`'s ``low``).
        """
        if spans is None:
            self._observe_rows(rows, source)
            return
        # (A state written before lows were kept has none.)
        position, seen, *low_kept = self._received.get(source) or (-1, 0)
        low = low_kept[0] if low_kept else None
        start = 0
        for at, first, count in spans:
            if at > position:
                position, seen, low = at, 0, None
            if at == position:
                for row in rows[start : start + count]:
                    if low is None or row[1] < low:
                        low = row[1]
                fresh = max(0, first + count - max(first, seen))
                self._observe_rows(rows[start + count - fresh : start + count], source, low)
                seen = max(seen, first + count)
            else:
                fresh = 0
            self.replayed += count - fresh
            start += count
        self._received[source] = [position, seen, low]

    def _observe_rows(
        self, rows: Iterable[list[Any]], source: str, low: float | None = None
    ) -> None:
        for row in rows:
            kind = row[0]
            if kind == METRICS:
                # The recorder kept only the health metrics (EvidenceRecorder.observe_metrics).
                self._push(row[1], source, _METRICS, (row[2], row[3], row[4]), low)
            elif kind == ANOMALY:
                self._push(row[1], source, _ANOMALY, (row[2], row[3], row[4]), low)
            elif kind == INTERACTION:
                self.observe_interaction(row[1], row[2], row[3], row[4], source, low=low)
            elif kind == EVIDENCE:
                self.observe_evidence(evidence_of_row(row), source, low=low)
            else:
                self.clock.seen(source, row[1], low)

    def expect(self, sources: Iterable[str]) -> None:
        """Hold the horizon until each of ``sources`` has delivered or is marked idle
        (:meth:`~models.brains.event_time.SourceClock.expect`)."""
        self.clock.expect(sources)

    def mark_idle(self, source: str) -> None:
        """``source`` no longer holds the horizon back, until it delivers again
        (:meth:`~models.brains.event_time.SourceClock.mark_idle`)."""
        self.clock.mark_idle(source)

    def _push(
        self, ts: float, source: str, kind: int, body: tuple[Any, ...], low: float | None = None
    ) -> None:
        self.clock.seen(source, ts, low)
        if ts <= self._replay_floor:
            self.replayed += 1
            return
        pending = self._pending
        pending.push((ts, source, next(self._seq), kind, body))
        if len(pending) > self.max_pending:
            self._apply(pending.pop_first())
            self.forced += 1

    def retain_sources(self, sources: Iterable[str]) -> None:
        """Forget every source but ``sources`` (e.g. partitions no longer assigned)."""
        self.clock.retain(sources)

    # ------------------------------------------------------------------------ evaluating
    def horizon(self, idle: Collection[str] = ()) -> float:
        """Event time up to which every source has delivered (``-inf`` before any data);
        see :meth:`~models.brains.event_time.SourceClock.horizon`."""
        return self.clock.horizon(idle)

    def advance(
        self, idle: Collection[str] = (), max_ticks: int = 100_000
    ) -> list[FailoverDecisionDraft]:
        """Apply and evaluate every tick up to the horizon; return the transitions, in order.

        Parameters
        ----------
        idle
            Sources that cannot deliver anything older than what they delivered last.
        max_ticks
            Evaluations at most in this call, to bound its duration; the rest waits for the
            next call.
        """
        horizon = self.horizon(idle)
        # Kept on the brain until returned, so that transitions taken before an exception
        # in a later tick are returned by the next call, not lost.
        drafts = self._drafts
        pending = self._pending
        for _ in range(max_ticks):
            first = pending.first_index()
            if first is None:
                break
            tick = first * self.tick_s
            if self._next_tick is not None:
                tick = max(tick, self._next_tick)
            if tick > horizon:
                break
            due = pending.pop_until(tick)
            for done, item in enumerate(due, 1):
                try:
                    self._apply(item)
                except BaseException:
                    # As a heap would: the observation that failed is gone, the rest wait.
                    for left in due[done:]:
                        pending.push(left)
                    raise
            drafts.extend(dataclasses.replace(d, tick=tick) for d in self._evaluate())
            self._next_tick = tick + self.tick_s
        self._drafts = []
        return drafts

    def _apply(self, item: tuple[float, str, int, int, tuple[Any, ...]]) -> None:
        ts, _, _, kind, body = item
        if kind == _METRICS:
            region, service, metrics = body
            score, since = self._anomalies.get(f"{region}/{service}", (0.0, -math.inf))
            held = score if ts - since <= self.anomaly_hold_s else 0.0
            self.bank.observe_metrics(ts, region, service, metrics, held)
        elif kind == _ANOMALY:
            region, service, score = body
            self._anomalies[f"{region}/{service}"] = (score, ts)
            self.bank.observe_anomaly(ts, region, service, score)
        elif kind == _EVIDENCE:
            body[0].apply(self.bank)
        else:
            region, success, data_class = body
            self.bank.observe_interactions(ts, region, int(success), 1)
            if region in self.config.regions:
                classes = self._traffic.setdefault(region, {})
                name = data_class or DEFAULT_DATA_CLASS
                classes.pop(name, None)
                classes[name] = max(ts, classes.get(name, -math.inf))
                if len(classes) > self.max_classes:
                    del classes[next(iter(classes))]

    def _evaluate(self) -> list[FailoverDecisionDraft]:
        now = self.bank.watermark
        if now is None:
            return []
        self._reports = self.bank.evaluate(now)
        cutoff = now - self.traffic_ttl_s
        for classes in self._traffic.values():
            for name in [n for n, seen in classes.items() if seen < cutoff]:
                del classes[name]
        over = now - self.anomaly_hold_s
        for key in [k for k, (_, since) in self._anomalies.items() if since < over]:
            del self._anomalies[key]
        self.bank.evict_idle(now)
        return self.policy.evaluate(now, self._reports, self.traffic)

    # ------------------------------------------------------------------------- reading
    @property
    def traffic(self) -> dict[str, set[str]]:
        """Region -> data classes of the traffic it served recently."""
        return {region: set(classes) for region, classes in self._traffic.items() if classes}

    @property
    def watermark(self) -> float | None:
        """Latest event time applied to the health bank (``None`` before any)."""
        return self.bank.watermark

    @property
    def last_evaluation_ts(self) -> float | None:
        """Event time of the policy's latest evaluation that counted."""
        return self.policy.last_evaluation_ts

    @property
    def failed_regions(self) -> tuple[str, ...]:
        """Regions failed over (blocked ones included), sorted."""
        return self.policy.failed_regions

    @property
    def reports(self) -> dict[str, HealthReport]:
        """Every region's health at the latest evaluation."""
        return dict(self._reports)

    @property
    def sources(self) -> dict[str, float]:
        """Source -> latest event time it delivered."""
        return self.clock.sources

    @property
    def idle_sources(self) -> set[str]:
        """Sources whose idle mark (:meth:`mark_idle`) holds."""
        return self.clock.idle

    @property
    def pending(self) -> int:
        """Observations waiting for the horizon."""
        return len(self._pending)

    # --------------------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot: bank, policy, traffic, the event-time position, the
        observations waiting for their tick and each source's position."""
        pending = self._pending.items()
        return {
            "pending": [[ts, kind, *_body_row(kind, body)] for ts, _, _, kind, body in pending],
            "pending_from": [source for _, source, *_ in pending],
            "received": dict(self._received),
            "v": _STATE_VERSION,
            "bank": self.bank.to_state(),
            "policy": self.policy.to_state(),
            "traffic": {region: dict(classes) for region, classes in self._traffic.items()},
            "anomalies": {key: list(held) for key, held in self._anomalies.items()},
            "next_tick": self._next_tick,
            **self.clock.to_state(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace what was learned with :meth:`to_state` output.

        A state of version 3 holds the observations waiting and the sources' positions: they
        replace the brain's. Before, the brain keeps its buffer, and buffered observations at
        or before the last evaluated tick, and any such observation arriving later, are
        dropped as a replay; a state of version 1 has no sources: the brain keeps its own.
        """
        if state.get("v") not in (1, 2, _STATE_VERSION):
            raise ValueError(f"unsupported region brain state version {state.get('v')!r}")
        self.bank = RegionHealthBank.from_state(state["bank"], self.config.names, self.health)
        self.policy = FailoverPolicy.from_state(
            state["policy"], self.config, **self._policy_settings
        )
        self._traffic = {
            region: dict(classes)
            for region, classes in state["traffic"].items()
            if region in self.config.regions
        }
        self._anomalies = {key: (score, ts) for key, (score, ts) in state["anomalies"].items()}
        self._next_tick = state["next_tick"]
        self.clock.load_state(state)
        self._reports = {}
        if "pending" in state:
            self._received = {source: list(at) for source, at in state["received"].items()}
            sources = state.get("pending_from") or [""] * len(state["pending"])
            self._pending.clear()
            for row, source in zip(state["pending"], sources, strict=True):
                body = _row_body(row[1], row[0], row[2:])
                self._pending.push((row[0], source, next(self._seq), row[1], body))
            return
        if self._next_tick is not None:
            self._replay_floor = self._next_tick - self.tick_s
            waiting = self._pending.items()
            self._pending.clear()
            for item in waiting:
                if item[0] > self._replay_floor:
                    self._pending.push(item)
                else:
                    self.replayed += 1


def _body_row(kind: int, body: tuple[Any, ...]) -> list[Any]:
    """A buffered observation's body as JSON-friendly items (:func:`_row_body` reverses)."""
    if kind == _EVIDENCE:
        e = body[0]
        return [e.region, e.kind, e.successes, e.total, e.value, e.service]
    return list(body)


def _row_body(kind: int, ts: float, items: list[Any]) -> tuple[Any, ...]:
    if kind == _EVIDENCE:
        return (evidence_of_row([EVIDENCE, ts, *items]),)
    return tuple(items)
