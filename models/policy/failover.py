"""Failover policy: when to move a region's traffic, where to, and when to bring it back.

A region is declared failed after ``fail_after`` consecutive unhealthy evaluations and
recovered after ``recover_after`` consecutive healthy ones, a longer run (hysteresis): a
region alternating between good and bad minutes is failed over once and stays so until it has
been stable for a while. Silence is the exception to waiting: a region whose telemetry has
stopped for ``silence_fail_s`` while the others report is failed at the first evaluation
that sees it. The run of unhealthy evaluations is there to wait out transients (a GC pause,
a glitch, an availability zone drained by its load balancer) that one metrics sample cannot
tell from an outage; silence measured in seconds has already lasted that long, and the
health's grace (:class:`~models.health.region.HealthConfig`) has already excused producer
lag. Each relapse soon after a failback (within ``relapse_window_s``)
doubles the recovery run required, up to ``2 ** max_backoff`` times, so a region that keeps
failing soon after it is trusted again is trusted ever more slowly.

When a region fails, each data class of its traffic moves on its own to the best target
among the regions that are healthy, not failed themselves, have headroom, and may serve that
data class under the residency rules (:meth:`~schemas.config.regions.RegionConfig.allows`).
Candidates are ranked by ``score = w_latency * L / (L + latency_ms) + w_headroom * headroom +
w_cost * cheapest_cost / cost`` (``L = latency_scale_ms``); the ranking, the excluded regions
and why they were excluded are in the evidence. A data class without any compliant healthy
target is not moved: the policy emits ``failover_blocked`` for it, saying why, and moves it
as soon as such a target appears. Failback, when the region has recovered, is a decision too.

Every transition yields exactly one draft. The state (:meth:`FailoverPolicy.to_state`) is
JSON-friendly so that a worker can persist it and not repeat a failover after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models.health.region import HealthReport
from schemas.config.regions import DEFAULT_DATA_CLASS, RegionConfig
from schemas.decision import Decision, decision_id_for

__all__ = [
    "MODEL_VERSION",
    "FailoverDecisionDraft",
    "FailoverPolicy",
    "TargetRanking",
]

MODEL_VERSION = "failover-policy-1"
"""Version of the policy, as written in decisions."""

_STATE_VERSION = 1

# Why a region cannot take traffic, in the order they are reported.
_RESIDENCY = "residency"
_FAILED = "failed_over"
_NO_REPORT = "no_report"
_UNHEALTHY = "unhealthy"
_NO_HEADROOM = "no_headroom"


@dataclass(frozen=True, slots=True)
class TargetRanking:
    """Where one data class of a failed region could go.

    ``candidates`` are dicts (``region``, ``jurisdiction``, ``latency_ms``, ``headroom``,
    ``cost``, ``health``, ``score``), best first; ``excluded`` are dicts (``region``,
    ``jurisdiction``, ``reasons``) with reasons among ``residency``, ``failed_over``,
    ``no_report``, ``unhealthy`` and ``no_headroom``.
    """

    data_class: str
    allowed_jurisdictions: tuple[str, ...]
    candidates: tuple[dict[str, Any], ...]
    excluded: tuple[dict[str, Any], ...]

    @property
    def best(self) -> str | None:
        """The chosen target, ``None`` when there is no compliant healthy region."""
        return self.candidates[0]["region"] if self.candidates else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed_jurisdictions": list(self.allowed_jurisdictions),
            "candidates": [dict(c) for c in self.candidates],
            "excluded": [dict(e) for e in self.excluded],
        }


@dataclass(frozen=True, slots=True)
class FailoverDecisionDraft:
    """A failover, blocked failover or failback, with everything that explains it.

    ``kind`` is ``failover`` (``target`` chosen), ``failover_blocked`` (``target`` is
    ``None``; the data classes stay where they are) or ``failback`` (traffic returns to
    ``region``, which is then also ``target``). :meth:`to_decision` makes the
    :class:`~schemas.decision.Decision` to publish.
    """

    kind: str
    ts: float
    region: str
    action: str
    target: str | None
    data_classes: tuple[str, ...]
    confidence: float
    reason: str
    params: dict[str, Any]
    evidence: dict[str, Any]
    tick: float | None = None
    """The evaluation tick that took the transition, on the region brain's grid, when a
    brain evaluates on one: the id's basis then, rather than ``ts``. ``ts`` is the latest
    sample applied by the tick, and which one that is depends on how the telemetry's
    partitions were read (a sample that comes late is applied at the next tick), so with one
    worker or three the same transition at the same tick had ``ts`` a fraction of a second
    apart."""

    def to_decision(
        self, *, mode: str = "recommend", model_version: str = MODEL_VERSION
    ) -> Decision:
        """The decision envelope; its id is a function of the transition, so replays dedupe."""
        subject = {"region": self.region}
        at = self.ts if self.tick is None else self.tick
        basis = [at, self.region, list(self.data_classes), self.target]
        return Decision(
            decision_id=decision_id_for(self.kind, subject, self.action, self.params, basis),
            kind=self.kind,
            ts=self.ts,
            subject=subject,
            action=self.action,
            params=self.params,
            mode=mode,
            confidence=self.confidence,
            reason=self.reason,
            evidence=self.evidence,
            model_version=model_version,
        )


@dataclass(slots=True)
class _RegionState:
    failed: bool = False
    unhealthy_run: int = 0
    healthy_run: int = 0
    failed_at: float | None = None
    # Data class -> region now serving it; None while blocked.
    placements: dict[str, str | None] = field(default_factory=dict)
    last_failback: float | None = None
    relapses: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "failed": self.failed,
            "unhealthy_run": self.unhealthy_run,
            "healthy_run": self.healthy_run,
            "failed_at": self.failed_at,
            "placements": dict(self.placements),
            "last_failback": self.last_failback,
            "relapses": self.relapses,
        }


class FailoverPolicy:
    """Region failover and failback with hysteresis, residency rules and ranked targets.

    Parameters
    ----------
    config
        Regions, latencies and residency rules; regions outside it are never acted on.
    fail_after
        Consecutive unhealthy evaluations that declare a region failed.
    recover_after
        Consecutive healthy evaluations that declare a failed region recovered; more than
        ``fail_after``.
    relapse_window_s
        A failure within this many event seconds of the region's last failback is a relapse.
    max_backoff
        Relapses double the recovery run at most this many times.
    weights
        ``(latency, headroom, cost)`` weights of the target score.
    latency_scale_ms
        Latency at which the latency term is half its best.
    interval_s
        Evaluation period in event seconds. An evaluation less than half of it after the
        previous one counts for nothing, so a timer firing while event time stands still (a
        stalled pipeline, a restart replaying the last tick) adds no evidence.
    silence_fail_s
        An unhealthy region silent for at least this many event seconds is failed at once
        (``None``: never). The default, 12.5 s, is the default health's grace for producer
        lag (10 s) plus its silence tolerance (2.5 s): the silence at which silence alone
        turns a region unhealthy. Waiting for ``fail_after`` evaluations as well would take
        10 s more and excuse no more lag: the grace is the knob for that (the bench's lag
        episodes reach 8 s; its healthy days show at most 9.8 s of silence). Silence of the
        whole pipeline stops the watermark, so it never reaches this; and for the first
        ``fail_after`` evaluations after event time stood still, while the held telemetry
        of the regions arrives unevenly, silence waits for the usual run too.

    Notes
    -----
    Memory is bounded by the configuration: per region a few counters and one entry per
    data class of its traffic while it is failed over.

    Examples
    --------
    >>> from schemas.config.regions import load_region_config
    >>> from models.health.region import HealthReport
    >>> config = load_region_config()
    >>> def report(region, ok):
    ...     return HealthReport(region, 0.0, 0.9 if ok else 0.1, ok, {}, 0.0, {})
    >>> policy = FailoverPolicy(config, fail_after=2, recover_after=4)
    >>> traffic = {"us-east": {"default"}, "eu-west": {"eu-personal"}}
    >>> def step(ts, *down):
    ...     reports = {r: report(r, r not in down) for r in config.names}
    ...     return policy.evaluate(ts, reports, traffic)
    >>> step(5.0, "us-east")
    []
    >>> [(d.kind, d.region, d.target) for d in step(10.0, "us-east")]
    [('failover', 'us-east', 'eu-west')]
    >>> step(15.0, "us-east")
    []

    eu-west holds only ``eu-personal`` traffic and is the only EU region:

    >>> step(20.0, "eu-west")
    []
    >>> [d] = step(25.0, "eu-west")
    >>> d.kind, d.target, d.data_classes
    ('failover_blocked', None, ('eu-personal',))

    us-east has been healthy since 20.0; it fails back at the fourth healthy evaluation in a
    row:

    >>> step(30.0, "eu-west")
    []
    >>> [(d.kind, d.region, d.data_classes) for d in step(35.0, "eu-west")]
    [('failback', 'us-east', ('default',))]

    """

    def __init__(
        self,
        config: RegionConfig,
        *,
        fail_after: int = 3,
        recover_after: int = 60,
        relapse_window_s: float = 1800.0,
        max_backoff: int = 3,
        weights: tuple[float, float, float] = (0.5, 0.3, 0.2),
        latency_scale_ms: float = 100.0,
        interval_s: float = 5.0,
        silence_fail_s: float | None = 12.5,
    ) -> None:
        if fail_after < 1:
            raise ValueError("fail_after must be >= 1")
        if recover_after <= fail_after:
            raise ValueError("recover_after must be > fail_after (hysteresis)")
        if max_backoff < 0 or relapse_window_s < 0:
            raise ValueError("max_backoff and relapse_window_s must be >= 0")
        if len(weights) != 3 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("weights must be three non-negative numbers, not all 0")
        if latency_scale_ms <= 0 or interval_s <= 0:
            raise ValueError("latency_scale_ms and interval_s must be > 0")
        if silence_fail_s is not None and not silence_fail_s > 0:
            raise ValueError("silence_fail_s must be > 0 or None")
        self.config = config
        self.fail_after = fail_after
        self.recover_after = recover_after
        self.relapse_window_s = relapse_window_s
        self.max_backoff = max_backoff
        self.weights = tuple(float(w) for w in weights)
        self.latency_scale_ms = latency_scale_ms
        self.interval_s = interval_s
        self.silence_fail_s = silence_fail_s
        self._last_eval: float | None = None
        # Evaluations in a row at the regular pace of event time: after event time stood
        # still (a stalled pipeline, our own partition), it catches up on a backlog.
        self._steady = 0
        self._cheapest = min((r.cost for r in config.regions.values()), default=1.0)
        self._state: dict[str, _RegionState] = {name: _RegionState() for name in config.names}

    @property
    def last_evaluation_ts(self) -> float | None:
        """Event time of the latest evaluation that counted (see ``interval_s``)."""
        return self._last_eval

    @property
    def failed_regions(self) -> tuple[str, ...]:
        """Regions currently failed over, sorted."""
        return tuple(name for name, s in sorted(self._state.items()) if s.failed)

    def placements(self, region: str) -> dict[str, str | None]:
        """Data class -> region serving it, for a failed region (``None``: blocked)."""
        return dict(self._state[region].placements)

    def recovery_needed(self, region: str) -> int:
        """Consecutive healthy evaluations ``region`` needs to be declared recovered."""
        relapses = min(self._state[region].relapses, self.max_backoff)
        return self.recover_after * 2**relapses

    # ---------------------------------------------------------------------------- ranking
    def rank(
        self, region: str, data_class: str, reports: Mapping[str, HealthReport]
    ) -> TargetRanking:
        """Rank the regions that could take ``data_class`` traffic away from ``region``."""
        config = self.config
        w_latency, w_headroom, w_cost = self.weights
        candidates: list[dict[str, Any]] = []
        excluded: list[dict[str, Any]] = []
        for name in config.names:
            if name == region:
                continue
            info = config.regions[name]
            report = reports.get(name)
            reasons = []
            if not config.allows(data_class, name):
                reasons.append(_RESIDENCY)
            if self._state[name].failed:
                reasons.append(_FAILED)
            if report is None:
                reasons.append(_NO_REPORT)
            elif not report.healthy:
                reasons.append(_UNHEALTHY)
            if info.headroom <= 0.0:
                reasons.append(_NO_HEADROOM)
            if reasons:
                excluded.append(
                    {"region": name, "jurisdiction": info.jurisdiction, "reasons": reasons}
                )
                continue
            latency = config.latency(region, name)
            score = (
                w_latency * self.latency_scale_ms / (self.latency_scale_ms + latency)
                + w_headroom * info.headroom
                + w_cost * self._cheapest / info.cost
            ) / sum(self.weights)
            candidates.append(
                {
                    "region": name,
                    "jurisdiction": info.jurisdiction,
                    "latency_ms": latency,
                    "headroom": info.headroom,
                    "cost": info.cost,
                    "health": round(report.score, 4),
                    "score": round(score, 4),
                }
            )
        candidates.sort(key=lambda c: (-c["score"], c["region"]))
        return TargetRanking(
            data_class=data_class,
            allowed_jurisdictions=tuple(sorted(config.allowed_jurisdictions(data_class))),
            candidates=tuple(candidates),
            excluded=tuple(excluded),
        )

    # --------------------------------------------------------------------------- evaluate
    def evaluate(
        self,
        now: float,
        reports: Mapping[str, HealthReport],
        traffic: Mapping[str, Iterable[str]],
    ) -> list[FailoverDecisionDraft]:
        """Take one evaluation of every region's health; return the transitions it causes.

        Parameters
        ----------
        now
            Event time of the evaluation (the watermark); see ``interval_s``.
        reports
            Region -> its latest :class:`~models.health.region.HealthReport`. A configured
            region without a report keeps its counters and cannot be a target.
        traffic
            Region -> data classes of the traffic it serves. A region failing with no
            traffic known serves :data:`~schemas.config.regions.DEFAULT_DATA_CLASS` traffic; classes
            that appear while it is failed are moved (or blocked) as they appear.

        Returns
        -------
        list of FailoverDecisionDraft
            Failbacks first, then per failed region its failovers (one per target) and at
            most one ``failover_blocked``; empty when nothing changed.
        """
        if self._last_eval is not None and now - self._last_eval < self.interval_s / 2:
            return []
        steady = self._last_eval is not None and now - self._last_eval <= 2 * self.interval_s
        self._steady = self._steady + 1 if steady else 0
        self._last_eval = now
        recovered: list[str] = []
        newly_failed: list[str] = []
        for name, state in sorted(self._state.items()):
            report = reports.get(name)
            if report is None:
                continue
            if report.healthy:
                state.healthy_run += 1
                state.unhealthy_run = 0
            else:
                state.unhealthy_run += 1
                state.healthy_run = 0
            if state.failed and state.healthy_run >= self.recovery_needed(name):
                recovered.append(name)
            elif not state.failed and (
                state.unhealthy_run >= self.fail_after or self._silent(report)
            ):
                newly_failed.append(name)

        drafts = [self._failback(now, name, reports[name]) for name in recovered]
        for name in newly_failed:
            state = self._state[name]
            recent = (
                state.last_failback is not None
                and now - state.last_failback <= self.relapse_window_s
            )
            state.relapses = state.relapses + 1 if recent else 0
            state.failed = True
            state.failed_at = now
            state.placements = {}
        for name, state in sorted(self._state.items()):
            if not state.failed:
                continue
            classes = set(traffic.get(name, ()))
            if name in newly_failed and not classes:
                classes = {DEFAULT_DATA_CLASS}
            # Later, only classes actually seen are placed: a failed region serves little,
            # and an empty traffic map then must not read as new default traffic.
            drafts.extend(self._place(now, name, sorted(classes), reports))
        return drafts

    def _silent(self, report: HealthReport) -> bool:
        """Whether ``report`` shows a region unhealthy and silent for ``silence_fail_s``,
        while event time has moved at its regular pace for ``fail_after`` evaluations.

        When every region goes quiet at once (our own outage), event time stops; when it
        resumes, the regions' held telemetry arrives over a few seconds, and a minute of
        event time passes in one of them: a region whose backlog comes a few seconds late
        looks silent for a minute. That silence is ours, not the region's, so until event
        time is steady again silence waits for the usual run of evaluations.
        """
        return (
            self.silence_fail_s is not None
            and not report.healthy
            and report.silent_for_s >= self.silence_fail_s
            and self._steady >= self.fail_after
        )

    def _place(
        self, now: float, region: str, classes: list[str], reports: Mapping[str, HealthReport]
    ) -> list[FailoverDecisionDraft]:
        """Move the data classes not yet moved; announce newly blocked ones."""
        state = self._state[region]
        pending = [dc for dc in classes if state.placements.get(dc) is None]
        if not pending:
            return []
        rankings = {dc: self.rank(region, dc, reports) for dc in pending}
        by_target: dict[str, list[str]] = {}
        blocked: list[str] = []
        for dc in pending:
            target = rankings[dc].best
            if target is not None:
                by_target.setdefault(target, []).append(dc)
            elif dc not in state.placements:
                blocked.append(dc)
        report = reports.get(region)
        drafts = []
        for target, moved in sorted(by_target.items()):
            for dc in moved:
                state.placements[dc] = target
            drafts.append(self._failover(now, region, target, moved, rankings, report))
        if blocked:
            for dc in blocked:
                state.placements[dc] = None
            drafts.append(self._blocked(now, region, blocked, rankings, report))
        return drafts

    # ----------------------------------------------------------------------------- drafts
    def _evidence(
        self,
        region: str,
        report: HealthReport | None,
        rankings: Mapping[str, TargetRanking] | None = None,
    ) -> dict[str, Any]:
        state = self._state[region]
        evidence: dict[str, Any] = {
            "health": None if report is None else report.to_dict(),
            "consecutive_unhealthy": state.unhealthy_run,
            "consecutive_healthy": state.healthy_run,
            "thresholds": {
                "fail_after": self.fail_after,
                "silence_fail_s": self.silence_fail_s,
                "recover_after": self.recovery_needed(region),
                "relapses": state.relapses,
                "relapse_window_s": self.relapse_window_s,
            },
            "failed_at": state.failed_at,
        }
        if rankings is not None:
            evidence["ranking"] = {dc: r.to_dict() for dc, r in sorted(rankings.items())}
        return evidence

    def _why_failed(self, region: str, report: HealthReport | None) -> str:
        run = self._state[region].unhealthy_run
        if run < self.fail_after and report is not None and self._silent(report):
            return f"has been silent for {report.silent_for_s:.0f} s while the others report"
        return f"was unhealthy for {run} consecutive evaluations"

    def _failover(
        self,
        now: float,
        region: str,
        target: str,
        moved: list[str],
        rankings: Mapping[str, TargetRanking],
        report: HealthReport | None,
    ) -> FailoverDecisionDraft:
        best = rankings[moved[0]].candidates[0]
        score = 0.0 if report is None else report.score
        reason = (
            f"{region} {self._why_failed(region, report)} ({_health_phrase(report)}), so its "
            f"{', '.join(moved)} traffic moves to "
            f"{target}, the best healthy region allowed to serve it ({best['latency_ms']:g} ms "
            f"away, {best['headroom']:.0%} headroom, cost {best['cost']:g})."
        )
        return FailoverDecisionDraft(
            kind="failover",
            ts=now,
            region=region,
            action="shift_traffic",
            target=target,
            data_classes=tuple(moved),
            confidence=_clip01(1.0 - score),
            reason=reason,
            params={"from": region, "to": target, "data_classes": list(moved)},
            evidence=self._evidence(region, report, {dc: rankings[dc] for dc in moved}),
        )

    def _blocked(
        self,
        now: float,
        region: str,
        blocked: list[str],
        rankings: Mapping[str, TargetRanking],
        report: HealthReport | None,
    ) -> FailoverDecisionDraft:
        whys = []
        for dc in blocked:
            ranking = rankings[dc]
            allowed = ", ".join(ranking.allowed_jurisdictions) or "nowhere"
            others = "; ".join(
                f"{e['region']} ({e['jurisdiction']}): {', '.join(e['reasons'])}"
                for e in ranking.excluded
            )
            whys.append(f"{dc} may be served in {allowed} only [{others or 'no other region'}]")
        score = 0.0 if report is None else report.score
        reason = (
            f"{region} {self._why_failed(region, report)} ({_health_phrase(report)}) but its "
            f"{', '.join(blocked)} traffic stays: "
            f"no healthy region allowed to serve it can take it: {'; '.join(whys)}."
        )
        return FailoverDecisionDraft(
            kind="failover_blocked",
            ts=now,
            region=region,
            action="hold_traffic",
            target=None,
            data_classes=tuple(blocked),
            confidence=_clip01(1.0 - score),
            reason=reason,
            params={"from": region, "data_classes": list(blocked)},
            evidence=self._evidence(region, report, {dc: rankings[dc] for dc in blocked}),
        )

    def _failback(self, now: float, region: str, report: HealthReport) -> FailoverDecisionDraft:
        state = self._state[region]
        sources = {dc: t for dc, t in sorted(state.placements.items()) if t is not None}
        evidence = self._evidence(region, report)
        evidence["held"] = sorted(dc for dc, t in state.placements.items() if t is None)
        if sources:
            where = ", ".join(f"{dc} from {t}" for dc, t in sources.items())
            moves = f"its traffic returns ({where})"
        else:
            moves = "no traffic had moved away, so nothing returns"
        reason = (
            f"{region} has been healthy for {state.healthy_run} consecutive evaluations "
            f"(health {report.score:.2f}), so it is recovered and {moves}."
        )
        draft = FailoverDecisionDraft(
            kind="failback",
            ts=now,
            region=region,
            action="return_traffic",
            target=region,
            data_classes=tuple(sources),
            confidence=_clip01(report.score),
            reason=reason,
            params={"to": region, "from": sources, "data_classes": list(sources)},
            evidence=evidence,
        )
        state.failed = False
        state.failed_at = None
        state.placements = {}
        state.last_failback = now
        return draft

    # ------------------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """JSON-friendly snapshot of the policy's state (settings and config not included)."""
        return {
            "v": _STATE_VERSION,
            "last_eval": self._last_eval,
            "steady": self._steady,
            "regions": {name: s.to_dict() for name, s in sorted(self._state.items())},
        }

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], config: RegionConfig, **settings: Any
    ) -> FailoverPolicy:
        """Rebuild a policy from :meth:`to_state`; ``settings`` as for the constructor.

        Regions no longer in ``config`` are dropped; new ones start active.
        """
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported failover policy state version {state.get('v')!r}")
        policy = cls(config, **settings)
        policy._last_eval = state["last_eval"]
        policy._steady = int(state.get("steady", 0))
        for name, raw in state["regions"].items():
            if name not in policy._state:
                continue
            placements = {
                dc: (t if t in policy._state else None) for dc, t in raw["placements"].items()
            }
            policy._state[name] = _RegionState(
                failed=bool(raw["failed"]),
                unhealthy_run=int(raw["unhealthy_run"]),
                healthy_run=int(raw["healthy_run"]),
                failed_at=raw["failed_at"],
                placements=placements,
                last_failback=raw["last_failback"],
                relapses=int(raw["relapses"]),
            )
        return policy


def _health_phrase(report: HealthReport | None) -> str:
    """``health 0.03, worst: silent for 25 s``: the score and its weakest component."""
    if report is None:
        return "no health report"
    if not report.components:
        return f"health {report.score:.2f}"
    name, value = min(report.components.items(), key=lambda item: item[1])
    worst = (
        f"silent for {report.silent_for_s:.0f} s" if name == "silence" else f"{name} {value:.2f}"
    )
    return f"health {report.score:.2f}, worst: {worst}"


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))
