"""Root-cause hints for an error burst, ranked from the evidence at hand.

A :class:`CauseContext` remembers, per (service, region), the deploy versions seen and when
each was first seen, recent metric anomalies, and recent bursts. :func:`rank_causes` turns
that evidence into scored :class:`CauseHint` objects for one burst:

``rollback_candidate``
    A version first seen on the same service and region within ``deploy_window_s`` before
    the burst: the new deploy is the prime suspect, all the more if the erroring template
    itself appeared only after it, and the sooner the burst followed it.
``metric_anomaly``
    Anomalies of the same service and region's metrics within ``anomaly_window_s`` of the
    burst (saturation, memory, latency): a resource or load cause.
``global_dependency``
    The same template bursting in other regions within ``burst_window_s``: a shared
    dependency or a global cause, which a regional action such as failover will not fix.
``regional``
    Otherwise the burst is confined to its region; other templates bursting in the same
    region at the same time make that more certain.

Scores are in [0, 1] and comparable across kinds; they are heuristics, stated in
:func:`rank_causes`, meant to order hints and to feed the remediation policy's context, not
calibrated probabilities.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from models.detect.bursts import Burst

__all__ = ["CAUSE_KINDS", "CauseContext", "CauseHint", "rank_causes"]

CAUSE_KINDS = ("rollback_candidate", "metric_anomaly", "global_dependency", "regional")
"""The kinds of hint :func:`rank_causes` gives, as used in remediation contexts."""

_STATE_VERSION = 1
# A template first seen this long before a deploy still counts as new with it: the first
# errors of a new version may be logged by the pods that report the version a bit later.
_NEW_TEMPLATE_SLACK_S = 30.0


@dataclass(frozen=True, slots=True)
class CauseHint:
    """One candidate cause of a burst.

    Attributes
    ----------
    kind
        One of :data:`CAUSE_KINDS`.
    score
        How strongly the evidence points at it, in [0, 1].
    evidence
        The facts behind it, JSON-ready (versions, metrics, regions, times).
    reason
        One sentence for a human.
    """

    kind: str
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "score": round(self.score, 4),
            "evidence": self.evidence,
            "reason": self.reason,
        }


class _Place:
    """What is known about one (service, region)."""

    __slots__ = ("anomalies", "last_ts", "versions")

    def __init__(self, max_items: int) -> None:
        # version -> first event time it was seen; oldest first.
        self.versions: OrderedDict[str | None, float] = OrderedDict()
        # (ts, metric, score), oldest first.
        self.anomalies: deque[tuple[float, str, float]] = deque(maxlen=max_items)
        self.last_ts = -math.inf


class CauseContext:
    """Recent deploys, metric anomalies and bursts, the evidence :func:`rank_causes` uses.

    Parameters
    ----------
    deploy_window_s
        A version first seen at most this long before a burst is a rollback candidate.
    anomaly_window_s
        Anomalies at most this long before (or after) a burst count as evidence.
    burst_window_s
        Bursts of the same template at most this long apart are "at once".
    ttl_s
        Places (service, region) without news for this long are forgotten.
    max_places
        Most (service, region) pairs kept; the least recently updated goes first.
    max_items
        Most versions and anomalies kept per place, and bursts per template and per region.
    max_templates
        Most templates whose recent bursts are kept.

    Notes
    -----
    Memory is bounded by ``max_places * 2 * max_items`` small records for deploys and
    anomalies and ``2 * max_templates * max_items`` for bursts (regions are few; a region's
    burst list is bounded by ``max_items`` too).

    Examples
    --------
    >>> ctx = CauseContext()
    >>> ctx.observe_version("checkout", "eu-west", "v1.4.0", ts=0.0)
    False
    >>> ctx.observe_version("checkout", "eu-west", "v1.5.0", ts=1000.0)  # a change: a deploy
    True
    >>> ctx.recent_deploys("checkout", "eu-west", since=900.0)
    [('v1.5.0', 1000.0)]
    """

    def __init__(
        self,
        *,
        deploy_window_s: float = 600.0,
        anomaly_window_s: float = 600.0,
        burst_window_s: float = 300.0,
        ttl_s: float = 86_400.0,
        max_places: int = 10_000,
        max_items: int = 16,
        max_templates: int = 10_000,
    ) -> None:
        for name, value in (
            ("deploy_window_s", deploy_window_s),
            ("anomaly_window_s", anomaly_window_s),
            ("burst_window_s", burst_window_s),
            ("ttl_s", ttl_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if min(max_places, max_items, max_templates) < 1:
            raise ValueError("max_places, max_items and max_templates must be >= 1")
        self.deploy_window_s = deploy_window_s
        self.anomaly_window_s = anomaly_window_s
        self.burst_window_s = burst_window_s
        self.ttl_s = ttl_s
        self.max_places = max_places
        self.max_items = max_items
        self.max_templates = max_templates
        self._places: OrderedDict[tuple[str, str], _Place] = OrderedDict()
        # template_id -> recent bursts (ts, service, region), oldest first.
        self._by_template: OrderedDict[str, deque[tuple[float, str, str]]] = OrderedDict()
        # region -> recent bursts (ts, template_id, service), oldest first.
        self._by_region: dict[str, deque[tuple[float, str, str]]] = {}
        self._watermark = -math.inf

    def _place(self, service: str, region: str, ts: float) -> _Place:
        key = (service, region)
        place = self._places.get(key)
        if place is None:
            place = self._places[key] = _Place(self.max_items)
        else:
            self._places.move_to_end(key)
        place.last_ts = max(place.last_ts, ts)
        self._watermark = max(self._watermark, ts)
        horizon = self._watermark - self.ttl_s
        while len(self._places) > self.max_places or (
            self._places and next(iter(self._places.values())).last_ts < horizon
        ):
            self._places.popitem(last=False)
        return place

    def observe_version(self, service: str, region: str, version: str | None, ts: float) -> bool:
        """Note the deploy version an event of ``service`` in ``region`` carried at ``ts``.

        Returns whether this is a deploy: a version not seen before on a place seen before
        (with another version or none). The first version seen of a place is not a deploy,
        nor is an old version reappearing, as it does while a rolling update runs.
        """
        place = self._place(service, region, ts)
        version = version or None
        first = place.versions.get(version)
        if first is not None:
            if ts < first:
                place.versions[version] = ts
            return False
        is_deploy = bool(place.versions)
        place.versions[version] = ts
        if len(place.versions) > self.max_items:
            place.versions.popitem(last=False)
        return is_deploy and version is not None

    def observe_anomaly(
        self, service: str, region: str, ts: float, metric: str, score: float
    ) -> None:
        """Note a metric anomaly (``score`` in [0, 1], as the anomaly detector gives)."""
        place = self._place(service, region, ts)
        place.anomalies.append((ts, metric, min(1.0, max(0.0, float(score)))))

    def observe_burst(self, burst: Burst) -> None:
        """Note a burst, for the cross-region and same-region evidence of later bursts."""
        self._watermark = max(self._watermark, burst.ts)
        bursts = self._by_template.get(burst.template_id)
        if bursts is None:
            bursts = self._by_template[burst.template_id] = deque(maxlen=self.max_items)
            if len(self._by_template) > self.max_templates:
                self._by_template.popitem(last=False)
        else:
            self._by_template.move_to_end(burst.template_id)
        bursts.append((burst.ts, burst.service, burst.region))
        in_region = self._by_region.get(burst.region)
        if in_region is None:
            in_region = self._by_region[burst.region] = deque(maxlen=self.max_items)
        in_region.append((burst.ts, burst.template_id, burst.service))

    def recent_deploys(self, service: str, region: str, since: float) -> list[tuple[str, float]]:
        """Versions of a place first seen at or after ``since``: ``(version, ts)``, oldest first."""
        place = self._places.get((service, region))
        if place is None or len(place.versions) < 2:
            return []
        versions = list(place.versions.items())
        # The first version ever seen of a place is where observation began, not a deploy.
        return [(v, ts) for v, ts in versions[1:] if v is not None and ts >= since]

    def recent_anomalies(
        self, service: str, region: str, since: float, until: float
    ) -> list[tuple[float, str, float]]:
        """Anomalies ``(ts, metric, score)`` of a place between ``since`` and ``until``."""
        place = self._places.get((service, region))
        if place is None:
            return []
        return [a for a in place.anomalies if since <= a[0] <= until]

    def bursts_of_template(
        self, template_id: str, since: float, until: float
    ) -> list[tuple[float, str, str]]:
        """Bursts ``(ts, service, region)`` of a template between ``since`` and ``until``."""
        return [b for b in self._by_template.get(template_id, ()) if since <= b[0] <= until]

    def bursts_in_region(
        self, region: str, since: float, until: float
    ) -> list[tuple[float, str, str]]:
        """Bursts ``(ts, template_id, service)`` in a region between ``since`` and ``until``."""
        return [b for b in self._by_region.get(region, ()) if since <= b[0] <= until]

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data."""
        return {
            "version": _STATE_VERSION,
            "params": {
                "deploy_window_s": self.deploy_window_s,
                "anomaly_window_s": self.anomaly_window_s,
                "burst_window_s": self.burst_window_s,
                "ttl_s": self.ttl_s,
                "max_places": self.max_places,
                "max_items": self.max_items,
                "max_templates": self.max_templates,
            },
            "places": [
                [
                    service,
                    region,
                    p.last_ts,
                    list(p.versions.items()),
                    [list(a) for a in p.anomalies],
                ]
                for (service, region), p in self._places.items()
            ],
            "bursts": [[t, [list(b) for b in bs]] for t, bs in self._by_template.items()],
            "regions": [[r, [list(b) for b in bs]] for r, bs in self._by_region.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CauseContext:
        """A context resumed from :meth:`to_state`'s output."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported cause context state version {state.get('version')!r}")
        ctx = cls(**state["params"])
        for service, region, last_ts, versions, anomalies in state["places"]:
            place = _Place(ctx.max_items)
            place.last_ts = float(last_ts)
            place.versions.update((v, float(ts)) for v, ts in versions)
            place.anomalies.extend((float(ts), str(m), float(s)) for ts, m, s in anomalies)
            ctx._places[(str(service), str(region))] = place
            ctx._watermark = max(ctx._watermark, place.last_ts)
        for template_id, bursts in state["bursts"]:
            ctx._by_template[str(template_id)] = deque(
                ((float(ts), str(s), str(r)) for ts, s, r in bursts), maxlen=ctx.max_items
            )
        for region, bursts in state["regions"]:
            ctx._by_region[str(region)] = deque(
                ((float(ts), str(t), str(s)) for ts, t, s in bursts), maxlen=ctx.max_items
            )
        return ctx


def rank_causes(burst: Burst, context: CauseContext) -> list[CauseHint]:
    """Candidate causes of ``burst``, most likely first.

    Scores:

    * ``rollback_candidate``: 0.5, plus up to 0.3 the sooner the burst followed the deploy
      (linearly over ``deploy_window_s``), plus 0.15 when the template was first seen
      after the deploy (a new error, not more of an old one);
    * ``metric_anomaly``: 0.3 plus 0.5 times the strongest anomaly score in the window;
    * ``global_dependency``: 0.5 plus 0.15 per other region where the template burst
      within ``burst_window_s`` (at most 0.9);
    * ``regional`` (given when no other region burst): 0.3 plus 0.1 per other template
      bursting in the same region within ``burst_window_s`` (at most 0.7).

    Examples
    --------
    >>> ctx = CauseContext()
    >>> ctx.observe_version("checkout", "eu-west", "v1.4.0", ts=0.0)
    False
    >>> ctx.observe_version("checkout", "eu-west", "v1.5.0", ts=1000.0)
    True
    >>> burst = Burst("t1", "checkout", "eu-west", ts=1090.0, rate=20.0, baseline=0.0,
    ...               first_seen_ts=1085.0)
    >>> [(h.kind, round(h.score, 2)) for h in rank_causes(burst, ctx)]
    [('rollback_candidate', 0.91), ('regional', 0.3)]
    >>> other = Burst("t1", "checkout", "us-east", ts=1100.0, rate=15.0, baseline=0.0,
    ...               first_seen_ts=0.0)
    >>> ctx.observe_burst(burst)
    >>> [(h.kind, round(h.score, 2)) for h in rank_causes(other, ctx)]
    [('global_dependency', 0.65)]
    """
    hints: list[CauseHint] = []
    ts = burst.ts
    deploys = context.recent_deploys(
        burst.service, burst.region, since=ts - context.deploy_window_s
    )
    deploys = [(v, d_ts) for v, d_ts in deploys if d_ts <= ts]
    if deploys:
        version, deploy_ts = deploys[-1]
        lag = ts - deploy_ts
        new_template = burst.first_seen_ts >= deploy_ts - _NEW_TEMPLATE_SLACK_S
        score = 0.5 + 0.3 * (1.0 - lag / context.deploy_window_s) + (0.15 if new_template else 0.0)
        hints.append(
            CauseHint(
                "rollback_candidate",
                score,
                {
                    "version": version,
                    "deploy_ts": deploy_ts,
                    "lag_s": round(lag, 3),
                    "template_new_since_deploy": new_template,
                },
                f"version {version} was deployed {lag:.0f} s before the burst"
                + (" and the error is new with it" if new_template else ""),
            )
        )
    anomalies = context.recent_anomalies(
        burst.service, burst.region, ts - context.anomaly_window_s, ts + context.anomaly_window_s
    )
    if anomalies:
        strongest = sorted(anomalies, key=lambda a: -a[2])[:3]
        hints.append(
            CauseHint(
                "metric_anomaly",
                0.3 + 0.5 * strongest[0][2],
                {
                    "anomalies": [
                        {"ts": a_ts, "metric": m, "score": round(s, 4)} for a_ts, m, s in strongest
                    ]
                },
                f"{strongest[0][1]} of {burst.service} in {burst.region} was anomalous "
                f"around the burst",
            )
        )
    window = context.burst_window_s
    same_template = context.bursts_of_template(burst.template_id, ts - window, ts + window)
    other_regions = sorted({r for _, _, r in same_template if r != burst.region})
    if other_regions:
        hints.append(
            CauseHint(
                "global_dependency",
                min(0.9, 0.5 + 0.15 * len(other_regions)),
                {"other_regions": other_regions},
                f"the same error burst in {len(other_regions)} other region(s) at the same time",
            )
        )
    else:
        neighbours = {
            t for _, t, _ in context.bursts_in_region(burst.region, ts - window, ts + window)
        } - {burst.template_id}
        hints.append(
            CauseHint(
                "regional",
                min(0.7, 0.3 + 0.1 * len(neighbours)),
                {"region": burst.region, "other_templates_bursting": len(neighbours)},
                f"the error bursts in {burst.region} only"
                + (f", with {len(neighbours)} other error(s)" if neighbours else ""),
            )
        )
    hints.sort(key=lambda h: -h.score)
    return hints
