"""The tenant brain: each tenant's SLO burn, usage peaks and behaviour, over all its traffic.

A tenant uses several services, often in several regions; the interactions brain sees one
(service, region) partition and turns each interaction into a
:class:`~models.brains.interactions.TenantRequest` (pseudonymous tenant, service, region and
whether the request met its service's SLO). The tenant brain learns from those requests,
all of a tenant's arriving at one brain (the interactions agent repartitions them by
tenant), so one tenant-wide incident makes one decision, judged on all the evidence:

* **SLO burn** (:mod:`models.health.slo`): an ``slo_burn`` decision (subject ``{"tenant"}``) when a
  multiwindow burn rule starts firing on the tenant's requests, each judged by its service's
  SLO, against the default objective's budget.
* **Usage peaks** (:mod:`models.forecast.usage`): a ``scheduled_scaling`` recommendation ahead of
  each learned weekly peak of a (tenant, service).
* **Behaviour** (:mod:`models.detect.behaviour`): an ``anomaly`` decision (``tenant_drop`` or
  ``tenant_surge``) when a tenant's activity drops or surges against its profile. A silent
  tenant sends nothing, so every ``check_every_s`` of event time (the newest request's, over
  all tenants of the brain) every tenant is judged again.

Decisions name tenants by pseudonym only; the brain never sees a tenant's name.

**Event-time order.** A tenant's requests come from every partition of the interactions
telemetry, read by one worker or several at their own paces, so they arrive interleaved in
an order that depends on the readers. Learned in that order, a burn would fire at another
request with three workers than with one. So a brain fed from several sources takes requests
through :meth:`TenantBrain.receive`, which buffers them, and :meth:`TenantBrain.advance`
learns them in event-time order (ties by source and position) up to the horizon of a
:class:`~models.brains.event_time.SourceClock` less ``lateness_s``: the event time every
source has delivered, which sources also report without a request
(:meth:`TenantBrain.progress`, :meth:`TenantBrain.mark_idle`), less the most a request may
trail the latest one of its partition (producers write a partition a little out of order;
the simulator up to one 5 s tick). A source of envelopes has delivered only up to the
earliest record of its latest message (the ``low`` its requests and progress carry): a
collector that flushes a window series by series sends each series' envelope of the window
after the other, however long the window. When every source is idle, everything buffered is
learned.
A request later than that is learned at the next advance, in arrival order, and counted
(:attr:`TenantBrain.late`): only its decisions may then depend on the readers. A request that
a source delivers again (a new reader of the partition reads on from its last committed
offset) is recognised by its position and learned once. :meth:`TenantBrain.observe` learns
a request at once, for a caller whose requests are already in order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from models.brains.event_time import SourceClock
from models.brains.interactions import TenantRequest, burn_decision, requests_in_windows
from models.detect.behaviour import BehaviourAnomaly, TenantBehaviour
from models.forecast.usage import ScheduledPeak, UsageModel
from models.health.slo import BurnRateMonitor
from schemas import Decision, decision_id_for

__all__ = ["BEHAVIOUR_MODEL_VERSION", "USAGE_MODEL_VERSION", "Position", "TenantBrain"]

USAGE_MODEL_VERSION = "usage-hour-of-week/1"
BEHAVIOUR_MODEL_VERSION = "tenant-behaviour/1"
_STATE_VERSION = 2

Position = tuple[int, int]
"""Where a request was read: the offset of its message in its source partition, and its
place among the requests of that message (an envelope carries several)."""


class TenantBrain:
    """SLO burn, usage peaks and behaviour anomalies of tenants, from their requests.

    Parameters
    ----------
    slo
        Burn-rate monitor of the tenants; its SLO (by default 99.9 % of requests within
        300 ms over 30 days) sets each tenant's budget, while each request comes judged
        by its service's SLO.
    usage
        Usage profiles; only the (tenant, service) ones are learned here.
    behaviour
        Drop and surge detector (:class:`~models.detect.behaviour.TenantBehaviour`).
    check_every_s
        Event seconds between two checks of every tenant for drops (silence).
    lateness_s
        Event seconds a request may trail the latest request of its source and still be
        learned in order.
    max_pending
        Requests buffered at most by :meth:`receive`; beyond it the oldest is learned at
        once, ahead of the horizon, so that a source stuck far behind cannot grow the buffer
        without bound (counted in :attr:`forced`).

    Notes
    -----
    Memory is bounded by the models': about 5.8 KiB per tenant for the burn windows, 2 KiB
    per (tenant, service) for usage profiles, 2 KiB per tenant for behaviour; each model
    caps its keys (``max_keys``, ``max_tenants``: the least recently seen go first) and
    drops idle ones in :meth:`evict_idle`. Plus at most ``max_pending`` buffered requests
    (about 150 bytes each) and one position per source.

    Examples
    --------
    A tenant whose requests all fail from the start burns its budget within a minute:

    >>> brain = TenantBrain()
    >>> decisions = []
    >>> for k in range(120):
    ...     decisions += brain.observe(
    ...         TenantRequest(1_704_067_200.0 + k, "t_c162214972b5", "api", "eu-west", False))
    >>> [(d.kind, d.subject, d.params["rule"], d.ts - 1_704_067_200.0) for d in decisions]
    [('slo_burn', {'tenant': 't_c162214972b5'}, '1h/5m', 52.0)]
    >>> brain.stats()  # doctest: +NORMALIZE_WHITESPACE
    {'tenants': 1, 'requests_in_windows': 120, 'usage_profiles': 1, 'behaviour_profiles': 1,
     'pending': 0, 'late': 0, 'replayed': 0}

    From two sources, requests are learned once both have delivered past them, in event
    time, whatever order they arrived in; a request delivered again is learned once:

    >>> brain = TenantBrain(lateness_s=0.0)
    >>> brain.expect(["a", "b"])
    >>> brain.receive(TenantRequest(20.0, "t_1", "api", "eu", True), "a", (7, 0))
    >>> brain.receive(TenantRequest(10.0, "t_1", "api", "us", True), "b", (3, 0))
    >>> brain.receive(TenantRequest(20.0, "t_1", "api", "eu", True), "a", (7, 0))
    >>> _ = brain.advance(); brain.watermark, brain.pending, brain.replayed
    (10.0, 1, 1)
    >>> brain.progress("b", 25.0)
    >>> _ = brain.advance(); brain.watermark, brain.pending
    (20.0, 0)
    """

    def __init__(
        self,
        *,
        slo: BurnRateMonitor | None = None,
        usage: UsageModel | None = None,
        behaviour: TenantBehaviour | None = None,
        check_every_s: float = 60.0,
        lateness_s: float = 10.0,
        max_pending: int = 50_000,
    ) -> None:
        if max_pending < 1 or not lateness_s >= 0:
            raise ValueError("need max_pending >= 1 and lateness_s >= 0")
        self.slo = BurnRateMonitor() if slo is None else slo
        self.usage = UsageModel() if usage is None else usage
        self.behaviour = TenantBehaviour() if behaviour is None else behaviour
        self.check_every_s = check_every_s
        self.lateness_s = lateness_s
        self.max_pending = max_pending
        self._released = -math.inf
        self.watermark = -math.inf
        self._checked_ts = -math.inf
        self.clock = SourceClock()
        self._positions: dict[str, Position] = {}
        self._pending: list[tuple[float, str, Position, TenantRequest]] = []
        self._ready: list[Decision] = []
        self.replayed = 0
        """Requests not learned because their source had delivered them before."""
        self.forced = 0
        """Requests learned ahead of the horizon because the buffer was full."""
        self.late = 0
        """Requests received after the horizon had passed them."""

    # ---------------------------------------------------------------------------- input
    def observe(self, request: TenantRequest) -> list[Decision]:
        """Learn from one request of a tenant; return the decisions it causes."""
        r = request
        decisions = [
            burn_decision(alert, {"tenant": r.tenant})
            for alert in self.slo.learn_one(r.tenant, r.ts, r.good)
        ]
        peak = self.usage.learn_tenant(r.ts, r.tenant, r.service, r.region)
        if peak is not None:
            decisions.append(self._scheduled_decision(peak))
        anomaly = self.behaviour.learn_one(r.ts, r.tenant)
        if anomaly is not None:
            decisions.append(_behaviour_decision(anomaly))
        self.watermark = max(self.watermark, r.ts)
        if self.watermark - self._checked_ts >= self.check_every_s:
            decisions += self.check(self.watermark)
        return decisions

    def expect(self, sources: Iterable[str]) -> None:
        """Learn nothing until each of ``sources`` has delivered or is marked idle."""
        self.clock.expect(sources)

    def receive(
        self, request: TenantRequest, source: str, position: Position, low: float | None = None
    ) -> None:
        """Buffer ``request``, read from ``source`` at ``position``, until the horizon passes
        it; a position at or before the source's latest is a repeat, not learned again.

        ``low`` is the earliest event time of the message it came in, if older than its own:
        an envelope's records may be older than the newest of the message before, and the
        source may still deliver anything from there on
        (:meth:`~models.brains.event_time.SourceClock.seen`).
        """
        if position <= self._positions.get(source, (-1, -1)):
            self.replayed += 1
            return
        self._positions[source] = position
        self.clock.seen(source, request.ts, low)
        if request.ts <= self._released:
            self.late += 1
        heapq.heappush(self._pending, (request.ts, source, position, request))
        if len(self._pending) > self.max_pending:
            self._ready += self.observe(heapq.heappop(self._pending)[3])
            self.forced += 1

    def progress(self, source: str, ts: float, low: float | None = None) -> None:
        """``source`` has delivered everything up to event time ``ts``; it may still deliver
        anything from ``low`` on (the earliest record of its latest message), if given."""
        self.clock.seen(source, ts, low)

    def mark_idle(self, source: str) -> None:
        """``source`` has nothing more to deliver for now: it no longer holds the horizon
        back (:meth:`~models.brains.event_time.SourceClock.mark_idle`)."""
        self.clock.mark_idle(source)

    def advance(self) -> list[Decision]:
        """Learn the buffered requests up to the horizon, in event-time order; return the
        decisions they cause, in order."""
        horizon = self.clock.horizon()
        if not self.clock.quiet:
            horizon -= self.lateness_s
        self._released = max(self._released, horizon)
        decisions, self._ready = self._ready, []
        while self._pending and self._pending[0][0] <= horizon:
            decisions += self.observe(heapq.heappop(self._pending)[3])
        return decisions

    @property
    def pending(self) -> int:
        """Requests waiting for the horizon."""
        return len(self._pending)

    def check(self, now: float) -> list[Decision]:
        """Tenant drops and surges as of event time ``now``; :meth:`observe` calls it every
        ``check_every_s``, a timer may when requests stop altogether."""
        self._checked_ts = max(self._checked_ts, now)
        return [_behaviour_decision(a) for a in self.behaviour.check(now)]

    # -------------------------------------------------------------------------- queries
    def stats(self) -> dict[str, int]:
        """What the brain holds, in counts: tenants with burn windows, the requests in
        their longest window, (tenant, service) usage profiles and behaviour profiles; the
        requests buffered, and those received late or again (:meth:`receive`)."""
        return {
            "tenants": len(self.slo),
            "requests_in_windows": requests_in_windows(self.slo),
            "usage_profiles": len(self.usage),
            "behaviour_profiles": len(self.behaviour),
            "pending": len(self._pending),
            "late": self.late,
            "replayed": self.replayed,
        }

    def holds(self, tenant: str) -> dict[str, int]:
        """What the brain holds of ``tenant``, in counts (all 0 once it is forgotten).

        >>> brain = TenantBrain()
        >>> _ = brain.observe(TenantRequest(1_704_067_200.0, "t_c162214972b5", "api", "eu", True))
        >>> brain.holds("t_c162214972b5")
        {'burn_windows': 1, 'usage_profiles': 1, 'behaviour_profiles': 1}
        """
        return {
            "burn_windows": int(tenant in self.slo),
            "usage_profiles": sum(1 for t, _ in self.usage.tenants() if t == tenant),
            "behaviour_profiles": int(any(t == tenant for t in self.behaviour)),
        }

    def forget(self, tenant: str, seen_until: float = math.inf) -> bool:
        """Erase what every model learned of ``tenant`` (a pseudonym) from requests no later
        than ``seen_until`` (event time); return whether anything was held.

        A model that heard from the tenant after ``seen_until`` keeps it: that is learning
        from after the erasure, which the caller let through.

        >>> brain = TenantBrain()
        >>> _ = brain.observe(TenantRequest(1_704_067_200.0, "t_c162214972b5", "api", "eu", True))
        >>> brain.forget("t_c162214972b5"), brain.stats()["tenants"], brain.forget("t_c162214972b5")
        (True, 0, False)
        """
        slo = self.slo.forget(tenant, seen_until)
        usage = self.usage.forget_tenant(tenant, seen_until)
        behaviour = self.behaviour.forget(tenant, seen_until)
        kept = [p for p in self._pending if p[3].tenant != tenant or p[0] > seen_until]
        buffered = len(kept) < len(self._pending)
        if buffered:
            self._pending = kept
            heapq.heapify(kept)
        return bool(slo or usage or behaviour or buffered)

    def evict_idle(self, now: float) -> int:
        """Drop idle keys from every model; return how many."""
        return (
            self.slo.evict_idle(now) + self.usage.evict_idle(now) + self.behaviour.evict_idle(now)
        )

    # ---------------------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every model (tenants appear as pseudonyms only)."""
        return {
            "v": _STATE_VERSION,
            "slo": self.slo.to_state(),
            "usage": self.usage.to_state(),
            "behaviour": self.behaviour.to_state(),
            "watermark": self.watermark if math.isfinite(self.watermark) else None,
            "checked_ts": self._checked_ts if math.isfinite(self._checked_ts) else None,
            "clock": self.clock.to_state(),
            "released": self._released if math.isfinite(self._released) else None,
            "counts": [self.replayed, self.forced, self.late],
            "positions": {source: list(at) for source, at in self._positions.items()},
            "pending": [
                [source, *at, r.ts, r.tenant, r.service, r.region, r.good]
                for _, source, at, r in self._pending
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **settings: Any) -> TenantBrain:
        """Rebuild a brain from :meth:`to_state`; ``settings`` as for the constructor (the
        same model settings as the brain that wrote it)."""
        if state.get("v") not in (1, _STATE_VERSION):
            raise ValueError(f"unsupported tenant brain state version {state.get('v')!r}")
        brain = cls(**settings)
        brain.slo.load_state(state["slo"])
        brain.usage.load_state(state["usage"])
        brain.behaviour.load_state(state["behaviour"])
        brain.watermark = -math.inf if state["watermark"] is None else state["watermark"]
        brain._checked_ts = -math.inf if state["checked_ts"] is None else state["checked_ts"]
        # Version 1 learned requests as they came: no clock, positions or buffer.
        brain.clock.load_state(state.get("clock", {}))
        if state.get("released") is not None:
            brain._released = state["released"]
        brain.replayed, brain.forced, brain.late = state.get("counts", (0, 0, 0))
        brain._positions = {
            source: (at[0], at[1]) for source, at in state.get("positions", {}).items()
        }
        for source, offset, index, *fields in state.get("pending", ()):
            request = TenantRequest(*fields)
            brain._pending.append((request.ts, source, (offset, index), request))
        heapq.heapify(brain._pending)
        return brain

    # ------------------------------------------------------------------------ decisions
    def _scheduled_decision(self, sp: ScheduledPeak) -> Decision:
        peak = sp.peak
        subject = {"service": sp.service, "region": sp.region, "tenant": sp.tenant}
        params = {
            "peak_start_ts": peak.start_ts,
            "peak_ts": peak.peak_ts,
            "expected_factor": round(peak.magnitude, 3),
        }
        profile = self.usage.profile(sp.tenant, sp.service)
        hours = range(int(peak.start_ts // 3600), int(peak.end_ts // 3600))
        # How many weeks the peak hours have been seen: one week is a guess, three a habit.
        weeks = min((profile.visits[(h + 72) % 168] for h in hours), default=0) if profile else 0
        start = datetime.fromtimestamp(peak.start_ts, UTC)
        top = datetime.fromtimestamp(peak.peak_ts - 1800.0, UTC)
        reason = (
            f"Tenant {sp.tenant} usually peaks on {sp.service} in {sp.region} at "
            f"{peak.magnitude:.1f}x its median hour, busiest {top:%a %H:%M} UTC; the peak "
            f"starts at {start:%H:%M} UTC, in {(peak.start_ts - sp.ts) / 60:.0f} minutes."
        )
        return Decision(
            decision_id=decision_id_for(
                "scheduled_scaling", subject, "scale_ahead", params, [peak.start_ts]
            ),
            kind="scheduled_scaling",
            ts=sp.ts,
            subject=subject,
            action="scale_ahead",
            params=params,
            mode="recommend",
            confidence=round(weeks / (weeks + 1.0), 4),
            reason=reason,
            evidence={**peak.to_dict(), "lead_s": peak.start_ts - sp.ts, "weeks_seen": weeks},
            model_version=USAGE_MODEL_VERSION,
        )


def _behaviour_decision(a: BehaviourAnomaly) -> Decision:
    subject = {"tenant": a.tenant}
    action = f"tenant_{a.kind}"
    params = {"anomaly_kind": a.kind}
    if a.kind == "drop":
        # 0.5 at the threshold, 1.0 when the tenant is silent.
        confidence = 0.5 + 0.5 * max(0.0, 1.0 - a.ratio / a.threshold)
        what = "dropped to"
        cause = "its users may not reach us"
    else:
        confidence = 0.5 + 0.5 * max(0.0, 1.0 - a.threshold / a.ratio)
        what = "surged to"
        cause = "bots, abuse or a runaway client"
    reason = (
        f"Tenant {a.tenant}'s activity {what} {a.ratio:.2g}x what its usage profile expects "
        f"({a.observed_per_hour:.0f} vs {a.expected_per_hour:.0f} an hour) for "
        f"{(a.ts - a.since_ts) / 60:.0f} minutes: {cause}."
    )
    return Decision(
        decision_id=decision_id_for("anomaly", subject, action, params, [a.ts]),
        kind="anomaly",
        ts=a.ts,
        subject=subject,
        action=action,
        params=params,
        mode="recommend",
        confidence=round(min(confidence, 1.0), 4),
        reason=reason,
        evidence=a.to_dict(),
        model_version=BEHAVIOUR_MODEL_VERSION,
    )
