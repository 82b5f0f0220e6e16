"""The interactions brain: SLO burn, usage patterns, tenant behaviour and feedback sentiment.

It turns user interactions into decisions and region-health evidence, and is pure and
synchronous: the interactions agent feeds it and publishes what it returns.

* **SLO burn** (:mod:`models.slo`) per (service, region) and per tenant: an ``slo_burn``
  decision when a multiwindow burn rule starts firing.
* **Usage patterns** (:mod:`models.usage`): a ``scheduled_scaling`` recommendation ahead of
  each learned peak of a (tenant, service), and the seasonal prior of the load forecaster
  (:meth:`InteractionsBrain.prior_for`).
* **Behaviour** (:mod:`models.behaviour`): an ``anomaly`` decision (``tenant_drop`` or
  ``tenant_surge``) when a tenant's activity drops or surges against its profile.
* **Feedback sentiment** (:mod:`models.sentiment`): a surge of negative feedback for a
  (service, region) is health evidence, not a decision of its own: feedback is sparse and
  a symptom, and the burn of the same incident already makes the decision.

Every interaction also adds to the region's success tally; every ``health_every_s`` of event
time a region gets its tally, its SLO burn rate (the median over its services of the 1h/5m
rule's burn, so one failing service is a remediation matter rather than a regional failure)
and any feedback surge, as :class:`HealthEvidence` for the failover models
(:class:`models.region_health.RegionHealthBank`).

Privacy: tenant names are replaced by keyed pseudonyms (:func:`pseudonym`) before anything
is learned, so neither the decisions nor the learned state hold them; user ids are not used,
and feedback text is scored and dropped.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.behaviour import BehaviourAnomaly, TenantBehaviour
from models.region_health import RegionHealthBank
from models.sentiment import FeedbackMonitor, FeedbackScorer
from models.slo import SLO, BurnAlert, BurnRateMonitor
from models.usage import ScheduledPeak, UsageModel
from schemas import Decision, Interaction, decision_id_for

__all__ = [
    "BEHAVIOUR_MODEL_VERSION",
    "SLO_MODEL_VERSION",
    "USAGE_MODEL_VERSION",
    "HealthEvidence",
    "InteractionsBrain",
    "InteractionsOutput",
    "pseudonym",
]

SLO_MODEL_VERSION = "slo-burn-multiwindow/1"
USAGE_MODEL_VERSION = "usage-hour-of-week/1"
BEHAVIOUR_MODEL_VERSION = "tenant-behaviour/1"
_STATE_VERSION = 1


def pseudonym(tenant: str, salt: bytes) -> str:
    """A stable pseudonymous id for ``tenant``: ``t_`` and 12 hex digits of a keyed BLAKE2b.

    Without the salt the ids cannot be recomputed from a list of tenant names; changing the
    salt changes every id (and orphans learned state keyed by them).

    >>> pseudonym("acme", b"s3cret"), pseudonym("acme", b"other") == pseudonym("acme", b"s3cret")
    ('t_c162214972b5', False)
    """
    if not 0 < len(salt) <= 64:
        raise ValueError("the salt must be 1 to 64 bytes (a BLAKE2b key)")
    return "t_" + hashlib.blake2b(tenant.encode(), key=salt, digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class HealthEvidence:
    """One piece of region-health evidence; :meth:`apply` hands it to the failover models.

    Attributes
    ----------
    kind
        ``interactions`` (a success tally), ``slo_burn`` (the region's burn rate) or
        ``feedback`` (a surge of negative feedback for one service, with a score in [0, 1)).
    ts, region
        When and where.
    successes, total
        The tally, for ``interactions``.
    value
        The burn rate (``slo_burn``) or the score (``feedback``).
    service
        The service, for ``feedback``.
    """

    kind: str
    ts: float
    region: str
    successes: int = 0
    total: int = 0
    value: float = 0.0
    service: str | None = None

    def apply(self, bank: RegionHealthBank) -> None:
        """Pass the evidence to the matching ``RegionHealthBank.observe_*`` method.

        Feedback goes in as an anomaly score of its service: it corroborates, it does not
        fail a region on its own.
        """
        if self.kind == "interactions":
            bank.observe_interactions(self.ts, self.region, self.successes, self.total)
        elif self.kind == "slo_burn":
            bank.observe_slo_burn(self.ts, self.region, self.value)
        else:
            bank.observe_anomaly(self.ts, self.region, self.service or "", self.value)


@dataclass(frozen=True, slots=True)
class InteractionsOutput:
    """What one interaction caused: decisions to publish and evidence for region health."""

    decisions: list[Decision] = field(default_factory=list)
    health: list[HealthEvidence] = field(default_factory=list)


class _Region:
    __slots__ = ("flushed_ts", "services", "successes", "total")

    def __init__(self, ts: float) -> None:
        self.successes = 0
        self.total = 0
        self.flushed_ts = ts
        self.services: OrderedDict[str, float] = OrderedDict()  # service -> last event time


class InteractionsBrain:
    """SLO burn, usage patterns, tenant behaviour and feedback sentiment from interactions.

    Parameters
    ----------
    salt
        Key of the tenant pseudonyms (1 to 64 bytes); keep it secret and stable.
    slo
        Burn-rate monitor; the default watches 99.9 % of requests within 300 ms over 30 days
        with the SRE Workbook's 1h/5m and 6h/30m rules. Its SLO is the default one, and the
        one of every tenant.
    slos
        The SLO of each service that has its own (target and latency), e.g.
        ``{"checkout": SLO(target=0.995, latency_ms=1000.0)}``: a request is judged by its
        service's SLO, in its (service, region) budget and in its tenant's.
    usage, behaviour, feedback, scorer
        The other models; defaults as documented in their modules.
    health_every_s
        Event seconds between two health flushes of a region.
    health_tallies
        Whether health flushes carry the region's success tally (``interactions``
        evidence); turn it off when something else already gives region health every
        interaction, so they are not counted twice.
    check_every_s
        Event seconds between two checks of every tenant for drops (silence).
    fresh_s
        A service counts in its region's burn while it had an interaction this recently.
    max_regions, max_services
        Regions tracked for health, and services per region; least recent dropped first.

    Notes
    -----
    Memory is bounded by the models': about 5.8 KiB per (service, region) and per tenant
    for the burn windows, 2 KiB per (tenant, service) and per (service, region) for usage
    profiles, 2 KiB per tenant for behaviour, a few hundred bytes per (service, region) for
    feedback, each model capping its keys and evicting idle ones (:meth:`evict_idle`).

    Examples
    --------
    >>> brain = InteractionsBrain(salt=b"doctest")
    >>> out = brain.observe(Interaction(1_704_067_200.0, "eu-west", "acme", "checkout",
    ...                                 "u-1", "pay", 42.0, True, "page would not load"))
    >>> out.decisions, [(e.kind, e.region, e.total) for e in out.health]
    ([], [])
    >>> later = brain.observe(Interaction(1_704_067_206.0, "eu-west", "acme", "checkout",
    ...                                   "u-1", "pay", 40.0, True))
    >>> [(e.kind, e.region) for e in later.health]  # five seconds later: a health flush
    [('interactions', 'eu-west'), ('slo_burn', 'eu-west')]
    >>> later.health[0].successes, later.health[0].total, later.health[1].value
    (2, 2, 0.0)
    """

    def __init__(
        self,
        *,
        salt: bytes,
        slo: BurnRateMonitor | None = None,
        slos: Mapping[str, SLO] | None = None,
        usage: UsageModel | None = None,
        behaviour: TenantBehaviour | None = None,
        feedback: FeedbackMonitor | None = None,
        scorer: FeedbackScorer | None = None,
        health_every_s: float = 5.0,
        health_tallies: bool = True,
        check_every_s: float = 60.0,
        fresh_s: float = 300.0,
        max_regions: int = 256,
        max_services: int = 256,
    ) -> None:
        pseudonym("", salt)  # validates the salt
        self._salt = salt
        self.slo = BurnRateMonitor() if slo is None else slo
        self.slos = dict(slos or {})
        self.usage = UsageModel() if usage is None else usage
        self.behaviour = TenantBehaviour() if behaviour is None else behaviour
        self.feedback = FeedbackMonitor() if feedback is None else feedback
        self.scorer = FeedbackScorer() if scorer is None else scorer
        self.health_every_s = health_every_s
        self.health_tallies = health_tallies
        self.check_every_s = check_every_s
        self.fresh_s = fresh_s
        self.max_regions = max_regions
        self.max_services = max_services
        self._regions: OrderedDict[str, _Region] = OrderedDict()
        self.watermark = -math.inf
        self._checked_ts = -math.inf

    def pseudonym(self, tenant: str) -> str:
        """The pseudonym this brain uses for ``tenant``."""
        return pseudonym(tenant, self._salt)

    # ---------------------------------------------------------------------------- input
    def observe(self, interaction: Interaction) -> InteractionsOutput:
        """Learn from one interaction; return the decisions and health evidence it causes."""
        i = interaction
        ts = i.ts
        tenant = self.pseudonym(i.tenant)
        decisions: list[Decision] = []
        slo = self.slos.get(i.service, self.slo.slo)
        good = slo.is_good(i.success, i.latency_ms)
        service_key = ("service", i.service, i.region)
        for alert in self.slo.learn_one(service_key, ts, good, slo=slo):
            decisions.append(self._burn_decision(alert, {"service": i.service, "region": i.region}))
        for alert in self.slo.learn_one(("tenant", tenant), ts, good):
            decisions.append(self._burn_decision(alert, {"tenant": tenant}))

        peak = self.usage.learn_one(ts, tenant, i.service, i.region)
        if peak is not None:
            decisions.append(self._scheduled_decision(peak))
        anomaly = self.behaviour.learn_one(ts, tenant)
        if anomaly is not None:
            decisions.append(_behaviour_decision(anomaly))

        if i.feedback_text:
            # The text is scored and dropped here: only the boolean goes further.
            negative = self.scorer.is_negative(i.feedback_text)
            self.feedback.learn_one(ts, i.service, i.region, negative)

        self.watermark = max(self.watermark, ts)
        if self.watermark - self._checked_ts >= self.check_every_s:
            self._checked_ts = self.watermark
            decisions.extend(_behaviour_decision(a) for a in self.behaviour.check(self.watermark))

        region = self._region(ts, i.region, i.service)
        region.total += 1
        region.successes += 1 if i.success else 0
        health = []
        if ts - region.flushed_ts >= self.health_every_s:
            health = self._flush(ts, i.region, region)
        return InteractionsOutput(decisions, health)

    def _region(self, ts: float, name: str, service: str) -> _Region:
        region = self._regions.get(name)
        if region is None:
            region = self._regions[name] = _Region(ts)
            if len(self._regions) > self.max_regions:
                self._regions.popitem(last=False)
        else:
            self._regions.move_to_end(name)
        region.services[service] = max(region.services.get(service, ts), ts)
        region.services.move_to_end(service)
        if len(region.services) > self.max_services:
            region.services.popitem(last=False)
        return region

    def _flush(self, ts: float, name: str, region: _Region) -> list[HealthEvidence]:
        evidence = []
        if self.health_tallies and region.total:
            evidence.append(
                HealthEvidence(
                    "interactions", ts, name, successes=region.successes, total=region.total
                )
            )
        region.successes = region.total = 0
        region.flushed_ts = ts
        fresh = [s for s, last in region.services.items() if ts - last <= self.fresh_s]
        burns = [self.slo.effective_burn(("service", s, name)) for s in fresh]
        if burns:
            evidence.append(HealthEvidence("slo_burn", ts, name, value=statistics.median(burns)))
        for service in fresh:
            if self.feedback.is_surging(service, name, ts):
                share = self.feedback.negative_share(service, name) or 0.0
                evidence.append(
                    HealthEvidence(
                        "feedback", ts, name, value=share / (share + 0.2), service=service
                    )
                )
        return evidence

    def flush(self, now: float) -> list[HealthEvidence]:
        """Health evidence of every region now, tallies included (e.g. on a timer)."""
        out: list[HealthEvidence] = []
        for name, region in self._regions.items():
            out.extend(self._flush(now, name, region))
        return out

    def check(self, now: float) -> list[Decision]:
        """Tenant drops as of ``now`` (call from a timer when interactions stop altogether)."""
        self._checked_ts = max(self._checked_ts, now)
        return [_behaviour_decision(a) for a in self.behaviour.check(now)]

    # -------------------------------------------------------------------------- queries
    def prior_for(self, service: str, region: str | None = None) -> list[float] | None:
        """Seasonal prior for the load forecaster of (service, region); see
        :meth:`models.usage.UsageModel.prior_for`."""
        return self.usage.prior_for(service, region)

    def evict_idle(self, now: float) -> int:
        """Drop idle keys from every model; return how many."""
        dropped = (
            self.slo.evict_idle(now)
            + self.usage.evict_idle(now)
            + self.behaviour.evict_idle(now)
            + self.feedback.evict_idle(now)
        )
        for name in [n for n, r in self._regions.items() if now - r.flushed_ts > self.slo.ttl_s]:
            del self._regions[name]
            dropped += 1
        return dropped

    # ---------------------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every model (tenants appear as pseudonyms only)."""
        return {
            "v": _STATE_VERSION,
            "slo": self.slo.to_state(),
            "usage": self.usage.to_state(),
            "behaviour": self.behaviour.to_state(),
            "feedback": self.feedback.to_state(),
            "regions": [
                [name, r.successes, r.total, r.flushed_ts, list(r.services.items())]
                for name, r in self._regions.items()
            ],
            "watermark": self.watermark if math.isfinite(self.watermark) else None,
            "checked_ts": self._checked_ts if math.isfinite(self._checked_ts) else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **settings: Any) -> InteractionsBrain:
        """Rebuild a brain from :meth:`to_state`; ``settings`` as for the constructor (the
        same salt and model settings as the brain that wrote it)."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported interactions brain state version {state.get('v')!r}")
        brain = cls(**settings)
        brain.slo.load_state(state["slo"])
        brain.usage.load_state(state["usage"])
        brain.behaviour.load_state(state["behaviour"])
        brain.feedback.load_state(state["feedback"])
        for name, successes, total, flushed_ts, services in state["regions"]:
            region = _Region(flushed_ts)
            region.successes, region.total = successes, total
            region.services = OrderedDict((s, t) for s, t in services)
            brain._regions[name] = region
        brain.watermark = -math.inf if state["watermark"] is None else state["watermark"]
        brain._checked_ts = -math.inf if state["checked_ts"] is None else state["checked_ts"]
        return brain

    # ------------------------------------------------------------------------ decisions
    def _burn_decision(self, alert: BurnAlert, subject: dict[str, str]) -> Decision:
        slo = alert.slo
        rule = alert.rule
        params = {"rule": rule.name, "severity": rule.severity, "slo_target": slo.target}
        burn = min(alert.long.burn_rate, alert.short.burn_rate)
        what = (
            f"{subject['service']} in {subject['region']}"
            if "service" in subject
            else f"tenant {subject['tenant']}"
        )
        latency = "" if slo.latency_ms is None else f" within {slo.latency_ms:g} ms"
        reason = (
            f"{what} is burning its {slo.target:.4g} SLO (good{latency}) error budget "
            f"{alert.long.burn_rate:.1f}x too fast over {_span(rule.long_s)} and "
            f"{alert.short.burn_rate:.1f}x over {_span(rule.short_s)} (rule {rule.name}, "
            f"{rule.severity} at {rule.factor:g}x): {alert.budget_consumed:.1%} of the "
            f"{slo.period_s / 86_400:g}-day budget spent in {_span(rule.long_s)}."
        )
        return Decision(
            decision_id=decision_id_for("slo_burn", subject, rule.severity, params, [alert.ts]),
            kind="slo_burn",
            ts=alert.ts,
            subject=subject,
            action=rule.severity,
            params=params,
            mode="recommend",
            # 0.5 at the threshold, approaching 1 as the burn far exceeds it.
            confidence=round(1.0 - 0.5 * rule.factor / burn, 4),
            reason=reason,
            evidence=alert.to_dict(),
            model_version=SLO_MODEL_VERSION,
        )

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


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


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
