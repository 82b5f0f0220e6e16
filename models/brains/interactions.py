"""The interactions brain: SLO burn per (service, region), usage series and feedback sentiment.

It turns user interactions into decisions and region-health evidence, and is pure and
synchronous: the interactions agent feeds it and publishes what it returns. It judges what
one (service, region) shows on its own; what a tenant does across services and regions is
the :class:`~models.brains.tenants.TenantBrain`'s to judge, from the :class:`TenantRequest`
each interaction becomes here.

* **SLO burn** (:mod:`models.health.slo`) per (service, region): an ``slo_burn`` decision when a
  multiwindow burn rule starts firing.
* **Usage series** (:mod:`models.forecast.usage`): the hour-of-week profile of each (service,
  region), the seasonal prior of the load forecaster (:meth:`InteractionsBrain.prior_for`).
* **Feedback sentiment** (:mod:`models.text.sentiment`): a surge of negative feedback for a
  (service, region) is health evidence, not a decision of its own: feedback is sparse and
  a symptom, and the burn of the same incident already makes the decision.

Every interaction also adds to the region's success tally; every ``health_every_s`` of event
time a region gets its tally, the SLO burn rate of each of its services heard from lately
(the 1h/5m rule's burn; region health takes their median, so one failing service is a
remediation matter rather than a regional failure) and any feedback surge, as
:class:`HealthEvidence` for the failover models (:class:`models.health.region.RegionHealthBank`).

Privacy: tenant names are replaced by keyed pseudonyms (:func:`pseudonym`) in the
:class:`TenantRequest`, the only place a tenant appears; user ids are not used, and feedback
text is scored and dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.forecast.usage import UsageModel
from models.health.region import RegionHealthBank
from models.health.slo import SLO, BurnAlert, BurnRateMonitor
from models.text.sentiment import FeedbackMonitor, FeedbackScorer
from schemas import Decision, Interaction, decision_id_for

__all__ = [
    "SLO_MODEL_VERSION",
    "HealthEvidence",
    "InteractionsBrain",
    "InteractionsOutput",
    "TenantRequest",
    "burn_decision",
    "pseudonym",
    "requests_in_windows",
]

SLO_MODEL_VERSION = "slo-burn-multiwindow/1"
# 2: the tenant models moved to models.brains.tenants; a version 1 state loses its tenant part.
_STATE_VERSION = 2


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
class TenantRequest:
    """One interaction as the tenant stage sees it: no user, no feedback, no tenant name.

    Attributes
    ----------
    ts
        Event time of the interaction.
    tenant
        The tenant's pseudonym (:func:`pseudonym`).
    service, region
        What served it, and where.
    good
        Whether it met its service's SLO (:meth:`models.health.slo.SLO.is_good`): the tenant's
        burn counts it as its service would.
    """

    ts: float
    tenant: str
    service: str
    region: str
    good: bool


@dataclass(frozen=True, slots=True)
class HealthEvidence:
    """One piece of region-health evidence; :meth:`apply` hands it to the failover models.

    Attributes
    ----------
    kind
        ``interactions`` (a success tally), ``slo_burn`` (a service's burn rate; the
        region's if ``service`` is ``None``) or ``feedback`` (a surge of negative feedback
        for one service, with a score in [0, 1)).
    ts, region
        When and where.
    successes, total
        The tally, for ``interactions``.
    value
        The burn rate (``slo_burn``) or the score (``feedback``).
    service
        The service, for ``slo_burn`` and ``feedback``.
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
            bank.observe_slo_burn(self.ts, self.region, self.value, self.service)
        else:
            bank.observe_anomaly(self.ts, self.region, self.service or "", self.value)


@dataclass(frozen=True, slots=True)
class InteractionsOutput:
    """What one interaction caused: decisions to publish, evidence for region health, and
    the request for the tenant stage (:class:`~models.brains.tenants.TenantBrain`)."""

    tenant: TenantRequest
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
    """SLO burn per (service, region), usage series and feedback sentiment from interactions.

    Parameters
    ----------
    salt
        Key of the tenant pseudonyms (1 to 64 bytes); keep it secret and stable.
    slo
        Burn-rate monitor of the (service, region) keys; the default watches 99.9 % of
        requests within 300 ms over 30 days with the SRE Workbook's 1h/5m and 6h/30m rules.
    slos
        The SLO of each service that has its own (target and latency), e.g.
        ``{"checkout": SLO(target=0.995, latency_ms=1000.0)}``: a request is judged by its
        service's SLO, in its (service, region) budget and (by the tenant stage) in its
        tenant's.
    usage, feedback, scorer
        The other models; defaults as documented in their modules. Only the (service,
        region) profiles of ``usage`` are learned here.
    health_every_s
        Event seconds between two health flushes of a region.
    health_tallies
        Whether health flushes carry the region's success tally (``interactions``
        evidence); turn it off when something else already gives region health every
        interaction, so they are not counted twice.
    fresh_s
        A service counts in its region's burn while it had an interaction this recently.
    burn_z
        A region's burn is judged beyond doubt: each window's error ratio at the lower
        bound of its Wilson interval at ``burn_z``
        (:meth:`~models.health.slo.BurnRateMonitor.effective_burn`), so that one failure
        among a quiet service's few requests does not read as a burning region and fail it
        over. 0 takes the ratios as they are.
    max_regions, max_services
        Regions tracked for health, and services per region; least recent dropped first.

    Notes
    -----
    Memory is bounded by the models': about 5.8 KiB per (service, region) for the burn
    windows, 2 KiB per (service, region) for its usage profile, a few hundred bytes per
    (service, region) for feedback, each model capping its keys and evicting idle ones
    (:meth:`evict_idle`). Nothing is kept per tenant.

    Examples
    --------
    >>> brain = InteractionsBrain(salt=b"doctest")
    >>> out = brain.observe(Interaction(1_704_067_200.0, "eu-west", "acme", "checkout",
    ...                                 "u-1", "pay", 42.0, True, "page would not load"))
    >>> out.decisions, [(e.kind, e.region, e.total) for e in out.health], out.tenant.good
    ([], [], True)
    >>> out.tenant.tenant == pseudonym("acme", b"doctest")
    True
    >>> later = brain.observe(Interaction(1_704_067_206.0, "eu-west", "acme", "checkout",
    ...                                   "u-1", "pay", 400.0, True))
    >>> later.tenant.good  # slower than the default SLO's 300 ms
    False
    >>> [(e.kind, e.region) for e in later.health]  # five seconds later: a health flush
    [('interactions', 'eu-west'), ('slo_burn', 'eu-west')]
    >>> later.health[0].successes, later.health[0].total, later.health[1].value
    (2, 2, 0.0)
    >>> brain.stats()
    {'series': 1, 'requests_in_windows': 2, 'usage_series': 1, 'regions': 1}
    """

    def __init__(
        self,
        *,
        salt: bytes,
        slo: BurnRateMonitor | None = None,
        slos: Mapping[str, SLO] | None = None,
        usage: UsageModel | None = None,
        feedback: FeedbackMonitor | None = None,
        scorer: FeedbackScorer | None = None,
        health_every_s: float = 5.0,
        health_tallies: bool = True,
        fresh_s: float = 300.0,
        burn_z: float = 3.0,
        max_regions: int = 256,
        max_services: int = 256,
    ) -> None:
        pseudonym("", salt)  # validates the salt
        self._salt = salt
        self.slo = BurnRateMonitor() if slo is None else slo
        self.slos = dict(slos or {})
        self.usage = UsageModel() if usage is None else usage
        self.feedback = FeedbackMonitor() if feedback is None else feedback
        self.scorer = FeedbackScorer() if scorer is None else scorer
        self.health_every_s = health_every_s
        self.health_tallies = health_tallies
        self.fresh_s = fresh_s
        self.burn_z = burn_z
        self.max_regions = max_regions
        self.max_services = max_services
        self._regions: OrderedDict[str, _Region] = OrderedDict()
        self.watermark = -math.inf

    def pseudonym(self, tenant: str) -> str:
        """The pseudonym this brain uses for ``tenant``."""
        return pseudonym(tenant, self._salt)

    # ---------------------------------------------------------------------------- input
    def observe(self, interaction: Interaction) -> InteractionsOutput:
        """Learn from one interaction; return the decisions, health evidence and tenant
        request it causes."""
        i = interaction
        ts = i.ts
        decisions: list[Decision] = []
        slo = self.slos.get(i.service, self.slo.slo)
        good = slo.is_good(i.success, i.latency_ms)
        service_key = ("service", i.service, i.region)
        for alert in self.slo.learn_one(service_key, ts, good, slo=slo):
            decisions.append(burn_decision(alert, {"service": i.service, "region": i.region}))
        self.usage.learn_series(ts, i.service, i.region)

        if i.feedback_text:
            # The text is scored and dropped here: only the boolean goes further.
            negative = self.scorer.is_negative(i.feedback_text)
            self.feedback.learn_one(ts, i.service, i.region, negative)

        self.watermark = max(self.watermark, ts)
        region = self._region(ts, i.region, i.service)
        region.total += 1
        region.successes += 1 if i.success else 0
        health = []
        if ts - region.flushed_ts >= self.health_every_s:
            health = self._flush(ts, i.region, region)
        request = TenantRequest(ts, self.pseudonym(i.tenant), i.service, i.region, good)
        return InteractionsOutput(request, decisions, health)

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
        # Each service's burn, not this partition's median of them: the region's services
        # are spread over the partitions, and only region health sees them all.
        for service in fresh:
            burn = self.slo.effective_burn(("service", service, name), z=self.burn_z)
            evidence.append(HealthEvidence("slo_burn", ts, name, value=burn, service=service))
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

    # -------------------------------------------------------------------------- queries
    def prior_for(self, service: str, region: str | None = None) -> list[float] | None:
        """Seasonal prior for the load forecaster of (service, region); see
        :meth:`models.forecast.usage.UsageModel.prior_for`."""
        return self.usage.prior_for(service, region)

    def stats(self) -> dict[str, int]:
        """What the brain holds, in counts: (service, region) burn windows, the requests in
        their longest window, usage series and regions."""
        return {
            "series": len(self.slo),
            "requests_in_windows": requests_in_windows(self.slo),
            "usage_series": sum(1 for _ in self.usage.series()),
            "regions": len(self._regions),
        }

    def evict_idle(self, now: float) -> int:
        """Drop idle keys from every model; return how many."""
        dropped = (
            self.slo.evict_idle(now) + self.usage.evict_idle(now) + self.feedback.evict_idle(now)
        )
        for name in [n for n, r in self._regions.items() if now - r.flushed_ts > self.slo.ttl_s]:
            del self._regions[name]
            dropped += 1
        return dropped

    # ---------------------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every model (no tenant appears in it)."""
        return {
            "v": _STATE_VERSION,
            "slo": self.slo.to_state(),
            "usage": self.usage.to_state(),
            "feedback": self.feedback.to_state(),
            "regions": [
                [name, r.successes, r.total, r.flushed_ts, list(r.services.items())]
                for name, r in self._regions.items()
            ],
            "watermark": self.watermark if math.isfinite(self.watermark) else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **settings: Any) -> InteractionsBrain:
        """Rebuild a brain from :meth:`to_state`; ``settings`` as for the constructor (the
        same salt and model settings as the brain that wrote it).

        A version 1 state (written when this brain also judged tenants) loses its tenant
        part: the tenant brain learns tenants afresh.
        """
        version = state.get("v")
        if version not in (1, _STATE_VERSION):
            raise ValueError(f"unsupported interactions brain state version {version!r}")
        slo_state, usage_state = state["slo"], state["usage"]
        if version == 1:
            slo_state = {
                **slo_state,
                "keys": [k for k in slo_state["keys"] if k["key"][0] == "service"],
            }
            usage_state = {**usage_state, "tenants": []}
        brain = cls(**settings)
        brain.slo.load_state(slo_state)
        brain.usage.load_state(usage_state)
        brain.feedback.load_state(state["feedback"])
        for name, successes, total, flushed_ts, services in state["regions"]:
            region = _Region(flushed_ts)
            region.successes, region.total = successes, total
            region.services = OrderedDict((s, t) for s, t in services)
            brain._regions[name] = region
        brain.watermark = -math.inf if state["watermark"] is None else state["watermark"]
        return brain


def requests_in_windows(monitor: BurnRateMonitor) -> int:
    """Requests counted in the longest burn window of every key of ``monitor``."""
    longest = max(rule.long_s for rule in monitor.rules)
    return sum(
        stats.total for key in monitor if (stats := monitor.window(key, longest)) is not None
    )


def burn_decision(alert: BurnAlert, subject: dict[str, str]) -> Decision:
    """The ``slo_burn`` decision of a burn alert of ``subject``: a (service, region), or a
    tenant (``{"tenant": pseudonym}``)."""
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


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"
