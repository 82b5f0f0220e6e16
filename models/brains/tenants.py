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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from models.brains.interactions import TenantRequest, burn_decision, requests_in_windows
from models.detect.behaviour import BehaviourAnomaly, TenantBehaviour
from models.forecast.usage import ScheduledPeak, UsageModel
from models.health.slo import BurnRateMonitor
from schemas import Decision, decision_id_for

__all__ = ["BEHAVIOUR_MODEL_VERSION", "USAGE_MODEL_VERSION", "TenantBrain"]

USAGE_MODEL_VERSION = "usage-hour-of-week/1"
BEHAVIOUR_MODEL_VERSION = "tenant-behaviour/1"
_STATE_VERSION = 1


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

    Notes
    -----
    Memory is bounded by the models': about 5.8 KiB per tenant for the burn windows, 2 KiB
    per (tenant, service) for usage profiles, 2 KiB per tenant for behaviour; each model
    caps its keys (``max_keys``, ``max_tenants``: the least recently seen go first) and
    drops idle ones in :meth:`evict_idle`.

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
    >>> brain.stats()
    {'tenants': 1, 'requests_in_windows': 120, 'usage_profiles': 1, 'behaviour_profiles': 1}
    """

    def __init__(
        self,
        *,
        slo: BurnRateMonitor | None = None,
        usage: UsageModel | None = None,
        behaviour: TenantBehaviour | None = None,
        check_every_s: float = 60.0,
    ) -> None:
        self.slo = BurnRateMonitor() if slo is None else slo
        self.usage = UsageModel() if usage is None else usage
        self.behaviour = TenantBehaviour() if behaviour is None else behaviour
        self.check_every_s = check_every_s
        self.watermark = -math.inf
        self._checked_ts = -math.inf

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

    def check(self, now: float) -> list[Decision]:
        """Tenant drops and surges as of event time ``now``; :meth:`observe` calls it every
        ``check_every_s``, a timer may when requests stop altogether."""
        self._checked_ts = max(self._checked_ts, now)
        return [_behaviour_decision(a) for a in self.behaviour.check(now)]

    # -------------------------------------------------------------------------- queries
    def stats(self) -> dict[str, int]:
        """What the brain holds, in counts: tenants with burn windows, the requests in
        their longest window, (tenant, service) usage profiles and behaviour profiles."""
        return {
            "tenants": len(self.slo),
            "requests_in_windows": requests_in_windows(self.slo),
            "usage_profiles": len(self.usage),
            "behaviour_profiles": len(self.behaviour),
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
        return bool(slo or usage or behaviour)

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
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **settings: Any) -> TenantBrain:
        """Rebuild a brain from :meth:`to_state`; ``settings`` as for the constructor (the
        same model settings as the brain that wrote it)."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported tenant brain state version {state.get('v')!r}")
        brain = cls(**settings)
        brain.slo.load_state(state["slo"])
        brain.usage.load_state(state["usage"])
        brain.behaviour.load_state(state["behaviour"])
        brain.watermark = -math.inf if state["watermark"] is None else state["watermark"]
        brain._checked_ts = -math.inf if state["checked_ts"] is None else state["checked_ts"]
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
