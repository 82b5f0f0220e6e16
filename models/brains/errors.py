"""The errors brain: error events in, at most one remediation decision per burst out.

For each :class:`~schemas.ErrorEvent` it redacts the message
(:class:`~models.text.redact.Redactor`), mines its template
(:class:`~models.text.templates.TemplateMiner`), notes the deploy version the event carried
(:class:`~models.health.root_cause.CauseContext`) and counts it in the burst detector of its
template on its service and region (:class:`~models.detect.bursts.BurstDetector`). On the
rising edge of a burst it ranks the candidate causes
(:func:`~models.health.root_cause.rank_causes`), asks the remediation policy
(:class:`~models.policy.remediation.RemediationPolicy`) for an action in the context of the
error type, template and top cause, and returns the explained :class:`~schemas.Decision`.
Outcomes of those decisions teach the policy through
:meth:`ErrorBrain.learn_outcome`.

One incident on a service often bursts in several templates at once (a pool running dry
logs timeouts, refused acquisitions and failed orders): the bursts of one (service, region)
that start while an earlier one of the same place is still going on join its *episode* and
get no decision of their own, so an incident gets one decision, not one per template.

Only redacted text leaves the brain: the raw message is redacted before anything else sees
it, and decisions carry the template (redacted, numbers masked), never a message.

The brain is pure and synchronous; the errors agent feeds it and publishes what it returns.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from models.detect.bank import deep_sizeof
from models.detect.bursts import Burst, BurstDetector
from models.health.root_cause import CauseContext, CauseHint, rank_causes
from models.policy.remediation import RemediationChoice, RemediationContext, RemediationPolicy
from models.text.redact import Redactor
from models.text.templates import TemplateMatch, TemplateMiner
from schemas import Decision, ErrorEvent, RemediationOutcome

__all__ = ["REMEDIATION_MODEL_VERSION", "ErrorBrain"]

REMEDIATION_MODEL_VERSION = "error-brain/1"

_STATE_VERSION = 1
# Templates remembered per episode: enough for the few templates one fault logs.
_EPISODE_TEMPLATES = 16


class ErrorBrain:
    """Redaction, template mining, bursts, root-cause hints and the remediation policy.

    Parameters
    ----------
    redactor, miner, bursts, causes, policy
        The components; ``None`` builds each with the worker's bounds (see Notes).
    max_episodes
        Most (service, region) places whose last episode is remembered.
    seed
        Seed of the policy's sampling when ``policy`` is ``None``.

    Notes
    -----
    Memory is bounded by the components' own bounds. With the defaults built here: at most
    1,000 templates (about 1.5 KiB each) and a memo of 10,000 masked messages (about
    200 bytes each), 20,000 burst keys (about 350 bytes each), 2,000 places with 8 deploys
    and 8 anomalies each plus 8 bursts for each of 1,000 templates, 10,000 policy contexts
    (about 350 bytes each) and 5,000 pending decisions (about 400 bytes each), and
    ``max_episodes`` episodes: about 25 MiB at most for messages and names of typical
    length, typically well under 1 MiB; messages up to the edge's 8 KiB and names up to
    its 1 KiB make entries larger, not more numerous. :meth:`to_state` is typically tens
    of KiB of JSON and a few MiB with every bound reached.

    Examples
    --------
    >>> from schemas import ErrorEvent
    >>> brain = ErrorBrain(seed=0)
    >>> quiet = [
    ...     brain.observe(ErrorEvent(t, "eu-west", "checkout", "error", "TimeoutError",
    ...                              f"pool exhausted for ann@example.com after {t} ms"))
    ...     for t in range(1_700_000_000, 1_700_000_600, 60)
    ... ]
    >>> flood = [
    ...     brain.observe(ErrorEvent(1_700_000_600 + i / 10, "eu-west", "checkout", "error",
    ...                              "TimeoutError", f"pool exhausted for bo@x.org after {i} ms"))
    ...     for i in range(100)
    ... ]
    >>> decisions = [d for ds in quiet + flood for d in ds]
    >>> len(decisions), decisions[0].action, decisions[0].mode
    (1, 'open_incident', 'recommend')
    >>> decisions[0].evidence["template"]
    'pool exhausted for <EMAIL> after <NUM> ms'
    """

    def __init__(
        self,
        *,
        redactor: Redactor | None = None,
        miner: TemplateMiner | None = None,
        bursts: BurstDetector | None = None,
        causes: CauseContext | None = None,
        policy: RemediationPolicy | None = None,
        max_episodes: int = 10_000,
        seed: int | None = None,
    ) -> None:
        if max_episodes < 1:
            raise ValueError(f"max_episodes must be >= 1, got {max_episodes}")
        # Compared with None: an empty miner, detector or policy has a length of 0.
        self.redactor = Redactor() if redactor is None else redactor
        self.miner = (
            TemplateMiner(max_templates=1_000, memo_size=10_000) if miner is None else miner
        )
        self.bursts = BurstDetector(max_keys=20_000) if bursts is None else bursts
        self.causes = (
            CauseContext(max_places=2_000, max_items=8, max_templates=1_000)
            if causes is None
            else causes
        )
        self.policy = (
            RemediationPolicy(max_contexts=10_000, max_pending=5_000, seed=seed)
            if policy is None
            else policy
        )
        self.max_episodes = max_episodes
        # (service, region) -> templates of its last episode: the one decided on, then
        # those whose bursts joined it.
        self._episodes: OrderedDict[tuple[str, str], list[str]] = OrderedDict()

    # ------------------------------------------------------------------ learning
    def observe(self, event: ErrorEvent) -> list[Decision]:
        """Learn from one error event; return the remediation decision it causes, if any."""
        match = self.miner.learn_one(self.redactor.redact(event.message))
        self.causes.observe_version(event.service, event.region, event.deploy_version, event.ts)
        burst = self.bursts.learn_one(match.template_id, event.service, event.region, event.ts)
        if burst is None:
            return []
        # Never empty: a burst is global_dependency or regional at least.
        hints = rank_causes(burst, self.causes)
        self.causes.observe_burst(burst)
        if self._joins_episode(burst):
            return []
        context = RemediationContext(
            burst.service, burst.region, event.error_type, match.template_id, hints[0].kind
        )
        basis = [burst.ts, burst.template_id, burst.service, burst.region]
        choice = self.policy.decide(context, basis=basis, ts=burst.ts)
        self._open_episode(burst)
        return [self._decision(burst, match, context, hints, choice)]

    def observe_anomaly(
        self, service: str, region: str, ts: float, metric: str, score: float
    ) -> None:
        """Note a metric anomaly of ``service`` in ``region``: evidence for later bursts there."""
        self.causes.observe_anomaly(service, region, ts, metric, score)

    def learn_outcome(self, outcome: RemediationOutcome) -> bool:
        """Teach the policy the outcome of one of its decisions.

        Returns ``False`` when no decision with that id is pending here (never made by this
        brain, expired, or already answered): nothing was learned, and the caller should
        dead-letter the outcome.
        """
        return (
            self.policy.learn_outcome(outcome.decision_id, outcome.success, outcome.ts) is not None
        )

    def _joins_episode(self, burst: Burst) -> bool:
        """Whether ``burst`` belongs to an episode of its place that is still going on."""
        place = (burst.service, burst.region)
        templates = self._episodes.get(place)
        # The burst's own template is bursting by definition: the episode goes on if
        # another of its templates still is.
        if templates is None or not any(
            self.bursts.is_bursting(t, burst.service, burst.region, burst.ts)
            for t in templates
            if t != burst.template_id
        ):
            return False
        if len(templates) < _EPISODE_TEMPLATES and burst.template_id not in templates:
            templates.append(burst.template_id)
        return True

    def _open_episode(self, burst: Burst) -> None:
        place = (burst.service, burst.region)
        self._episodes.pop(place, None)
        self._episodes[place] = [burst.template_id]
        while len(self._episodes) > self.max_episodes:
            self._episodes.popitem(last=False)

    def _decision(
        self,
        burst: Burst,
        match: TemplateMatch,
        context: RemediationContext,
        hints: Sequence[CauseHint],
        choice: RemediationChoice,
    ) -> Decision:
        subject = {"service": burst.service, "region": burst.region}
        why = choice.reason[:1].lower() + choice.reason[1:]
        return Decision(
            decision_id=choice.decision_id,
            kind="remediation",
            ts=burst.ts,
            subject=subject,
            action=choice.action,
            params={},
            mode=choice.mode,
            confidence=round(choice.p_success, 4),
            reason=(
                f"{context.error_type} errors '{match.template}' burst on {burst.service} in "
                f"{burst.region} at {burst.rate:.1f}/s against a baseline of "
                f"{burst.baseline:.2f}/s, most likely because {hints[0].reason}; {why}"
            ),
            evidence={
                "template_id": match.template_id,
                "template": match.template,
                "error_type": context.error_type,
                "burst": burst.to_dict(),
                "causes": [h.to_dict() for h in hints],
                "context": context.to_dict(),
                **choice.evidence(),
                "auto_needs": {
                    "n_obs": self.policy.min_obs,
                    "lower_bound": self.policy.auto_lower,
                    "quantile": self.policy.quantile,
                },
            },
            model_version=REMEDIATION_MODEL_VERSION,
        )

    # ------------------------------------------------------------------ inspection
    def approx_bytes(self) -> int:
        """Approximate bytes of model state held in memory."""
        return deep_sizeof([self.miner, self.bursts, self.causes, self.policy, self._episodes])

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Everything learned, as one JSON-ready dict (templates, bursts, evidence, policy).

        The policy keeps no random state: each decision's draws are seeded by the seed and
        the burst, so a restored brain that sees a burst again decides on it exactly as
        before, under the same decision id.
        """
        return {
            "v": _STATE_VERSION,
            "redactor": [list(p) for p in self.redactor.extra_patterns],
            "miner": self.miner.to_state(),
            "bursts": self.bursts.to_state(),
            "causes": self.causes.to_state(),
            "policy": self.policy.to_state(),
            "max_episodes": self.max_episodes,
            "episodes": [
                [service, region, list(templates)]
                for (service, region), templates in self._episodes.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ErrorBrain:
        """A brain resumed from :meth:`to_state`'s output."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported error brain state version {state.get('v')!r}")
        brain = cls(
            redactor=Redactor([(p, r) for p, r in state["redactor"]]),
            miner=TemplateMiner.from_state(state["miner"]),
            bursts=BurstDetector.from_state(state["bursts"]),
            causes=CauseContext.from_state(state["causes"]),
            policy=RemediationPolicy.from_state(state["policy"]),
            max_episodes=int(state["max_episodes"]),
        )
        for service, region, templates in state["episodes"]:
            brain._episodes[(str(service), str(region))] = [str(t) for t in templates]
        return brain
