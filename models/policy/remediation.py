"""A remediation policy that learns which action fixes which error, and knows when it knows.

For a burst of errors the policy picks one of :data:`ACTIONS` from a context (service,
region, error type, error template and the top root-cause hint) and says how sure it is.
Each (context, action) has a Beta posterior over its success probability, from the outcomes
that came back: ``Beta(1 + successes, 1 + failures)``.

Contexts are looked at from fine to coarse (:data:`DEFAULT_LEVELS`). Statistical strength
is shared between them hierarchically (:func:`borrow`): a level borrows its parent level's
outcomes of the sibling contexts (at most ``prior_weight`` per action), scaled by the
posterior probability that it is like them, which its own outcomes decide: a new template
of a known error type starts from what the error type taught, a new service or cause from
what the template taught, and a context whose outcomes contradict its siblings' soon stands
on its own. The root-cause hint is one of the context's fields, so what a deploy or a metric
anomaly shows is learned as context too.

* **auto**: at a level that includes the template (``auto_fields``), finest first, an
  action whose record there (own outcomes and what it borrows) has at least ``min_obs``
  outcomes and a ``quantile`` (5 %) lower bound of at least ``auto_lower`` (0.8), and that
  succeeded at least ``min_own`` times at that level itself, is applied without a human,
  unless a finer context of the burst shows with 95 % confidence that it works less often
  than ``auto_lower`` there. The finest level with such an action is used; among its
  actions, the highest lower bound;
* otherwise an action is drawn by Thompson sampling and *recommended* to a human, whose
  outcome teaches the policy. The draws are from the template's own record (sharpened,
  ``sharpen``, for a short horizon) and what it borrows from its error type; before the
  template has any outcome, from the finest level with ``backoff_obs`` outcomes (or as many
  as any coarser one). They are seeded by the policy's seed and the decision's basis, so a
  replay of the same input on the same statistics (a worker restarted from a checkpoint
  taken before the decision) draws the same action and gets the same decision id;
* when no level has any outcome, nothing is known: the choice is ``open_incident``,
  recommended.

Thompson sampling is our own, over integer-free Beta counts, rather than River's ``bandit``
module: the policy needs per-arm posteriors it can query for a lower bound, back-off between
context levels, counts it can serialise and cap, and pending decisions matched to outcomes.

Outcomes arrive by decision id (:meth:`RemediationPolicy.learn_outcome`): each decision is
kept pending, with a time to live and a cap, until its outcome comes; an outcome for an id
that is not pending (unknown, expired, or already answered) is refused, and the caller
dead-letters it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.decision import decision_id_for

__all__ = [
    "ACTIONS",
    "DEFAULT_LEVELS",
    "ActionEstimate",
    "PendingDecision",
    "RemediationChoice",
    "RemediationContext",
    "RemediationPolicy",
    "beta_cdf",
    "beta_quantile",
    "borrow",
]

ACTIONS = (
    "restart_instance",
    "rollback_deploy",
    "scale_out",
    "failover_region",
    "clear_cache",
    "open_incident",
)
"""What the policy may do; ``open_incident`` hands the problem to a human."""

FALLBACK_ACTION = "open_incident"

DEFAULT_LEVELS: tuple[tuple[str, ...], ...] = (
    ("template_id", "cause", "service"),
    ("template_id", "cause"),
    ("template_id",),
    ("error_type",),
)
"""Context levels, finest first, as fields of :class:`RemediationContext`."""

_STATE_VERSION = 1
_CONTEXT_FIELDS = ("service", "region", "error_type", "template_id", "cause")


# ------------------------------------------------------------------ Beta distribution
def _scaled(counts: list[float], most: float) -> list[float]:
    """Pairs of (successes, failures) scaled down to at most ``most`` outcomes each."""
    out = list(counts)
    for k in range(0, len(out), 2):
        n = out[k] + out[k + 1]
        if n > most:
            out[k] *= most / n
            out[k + 1] *= most / n
    return out


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def borrow(own: list[float], parent: list[float], most: float, odds: float) -> list[float]:
    """A context's own counts plus what it borrows from its parent context's.

    ``own`` and ``parent`` are (successes, failures) per action, flattened; the parent
    counts the context's outcomes too, so its siblings' outcomes are ``parent - own``. The
    context borrows them scaled down to at most ``most`` outcomes per action, times the
    probability that it is like its siblings (:func:`_agreement`): a context that has
    shown it is not stops borrowing.

    Examples
    --------
    Action 0 worked 3 of 3 times here and 23 of 24 in the parent context (so 20 of 21 for
    the siblings), action 1 failed 4 times there: up to 10 outcomes of each are lent.

    >>> [round(x, 1) for x in borrow([3.0, 0.0, 0.0, 0.0], [23.0, 1.0, 0.0, 4.0], 10.0, 10.0)]
    [12.2, 0.5, 0.0, 4.0]

    Here action 0 failed 4 times of 4, where it works for the siblings: almost nothing is
    lent.

    >>> [round(x, 1) for x in borrow([0.0, 4.0, 0.0, 0.0], [20.0, 5.0, 0.0, 0.0], 10.0, 10.0)]
    [0.2, 4.0, 0.0, 0.0]
    """
    others = [max(0.0, p - o) for p, o in zip(parent, own, strict=True)]
    lent = _scaled(others, most * _agreement(own, others, odds))
    return [o + b for o, b in zip(own, lent, strict=True)]


def _agreement(own: list[float], others: list[float], odds: float) -> float:
    """Probability that a context is like its siblings, given its own outcomes.

    Two hypotheses for each action's success rate in this context: the siblings' rate (a
    ``Beta(1 + S, 1 + F)`` from their outcomes) or a rate of its own (uniform prior); the
    own outcomes' marginal likelihood under each, with prior odds ``odds`` for alike, gives
    the posterior probability of alike. Near 1 while the context behaves like its siblings;
    near 0 once it has shown it does not (an action that works for the others fails here,
    or the reverse), and then it stops borrowing their outcomes.
    """
    log_same = log_own = 0.0
    for k in range(0, len(own), 2):
        s, f = own[k], own[k + 1]
        if s + f <= 0.0:
            continue
        a, b = 1.0 + others[k], 1.0 + others[k + 1]
        log_same += _log_beta(a + s, b + f) - _log_beta(a, b)
        log_own += _log_beta(1.0 + s, 1.0 + f)
    return 1.0 / (1.0 + math.exp(min(700.0, log_own - log_same)) / odds)


def _where(level: Sequence[str], context: RemediationContext) -> str:
    return ", ".join(
        f"{name}={value}" for name, value in zip(level, context.key(level), strict=True)
    )


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, by Lentz's method.

    As in Press et al., *Numerical Recipes*, 3rd ed., section 6.4; converges fast for
    ``x < (a + 1) / (a + b + 2)``.
    """
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """The CDF of ``Beta(a, b)`` at ``x``: the regularised incomplete beta function.

    Examples
    --------
    >>> round(beta_cdf(0.5, 2.0, 2.0), 12), round(beta_cdf(0.9, 1.0, 1.0), 12)
    (0.5, 0.9)
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


# Hand-written rather than on river.proba.Beta (#16), measured with river 0.26.1: River's
# Beta has no quantile, and a bisection on its cdf (scipy's betainc, 4.6 µs a call against
# 11.6 here) takes 206 µs uncached against 612, but gave other last bits in 47 of 72 866
# quantiles (up to 9e-13); cached, both are 0.3 µs. Decisions must not change: kept.
@functools.lru_cache(maxsize=8192)
def beta_quantile(q: float, a: float, b: float) -> float:
    """The ``q`` quantile of ``Beta(a, b)``, by bisection to 1e-12.

    Examples
    --------
    >>> round(beta_quantile(0.05, 1.0, 1.0), 9)  # uniform
    0.05
    >>> round(beta_quantile(0.05, 20.0, 1.0), 4)  # 19 successes of 19: 0.05 ** (1 / 20)
    0.8609
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    lo, hi = 0.0, 1.0
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------ records
@dataclass(frozen=True, slots=True)
class RemediationContext:
    """What the policy knows about a burst when it decides.

    ``cause`` is the kind of the top root-cause hint (see :mod:`models.health.root_cause`), or
    ``"none"``.
    """

    service: str
    region: str
    error_type: str
    template_id: str
    cause: str = "none"

    def key(self, level: Sequence[str]) -> tuple[str, ...]:
        """The values of the fields of ``level``."""
        return tuple(getattr(self, name) for name in level)

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in _CONTEXT_FIELDS}


@dataclass(frozen=True, slots=True)
class ActionEstimate:
    """An action's posterior in one context: mean, lower bound and the counts behind them."""

    action: str
    p_success: float
    lower: float
    successes: float
    failures: float

    @property
    def n_obs(self) -> int:
        """Outcomes observed (rounded down when counts were scaled by the cap)."""
        return int(self.successes + self.failures + 1e-9)


@dataclass(frozen=True, slots=True)
class RemediationChoice:
    """A decision: the action, how it is applied, and the evidence for it.

    Attributes
    ----------
    decision_id
        Deterministic id of the decision; outcomes must quote it.
    action
        One of :data:`ACTIONS`.
    mode
        ``"auto"`` or ``"recommend"``.
    p_success
        Posterior mean success probability of the action in the context used.
    lower
        Lower bound (the policy's ``quantile``) of that probability.
    n_obs
        Outcomes of this action in the context used.
    level
        Fields of the context level used; empty when nothing was known.
    reason
        One sentence for a human.
    estimates
        Every action's estimate at that level, highest mean first.
    borrowed_from
        For an ``auto`` decision, the coarser level whose outcomes the estimates borrowed
        (see :func:`borrow`); empty when none.
    own_n_obs
        Outcomes of the action at ``level`` itself, without borrowed ones.
    """

    decision_id: str
    action: str
    mode: str
    p_success: float
    lower: float
    n_obs: int
    successes: float
    failures: float
    level: tuple[str, ...]
    reason: str
    estimates: tuple[ActionEstimate, ...]
    borrowed_from: tuple[str, ...] = ()
    own_n_obs: int = 0

    def evidence(self) -> dict[str, Any]:
        """A JSON-ready summary for a decision's ``evidence``."""
        return {
            "p_success": round(self.p_success, 4),
            "lower_bound": round(self.lower, 4),
            "n_obs": self.n_obs,
            "context_level": list(self.level),
            "own_n_obs": self.own_n_obs,
            "borrowed_from": list(self.borrowed_from),
            "estimates": {
                e.action: {"p_success": round(e.p_success, 4), "n_obs": e.n_obs}
                for e in self.estimates
            },
        }


@dataclass(frozen=True, slots=True)
class PendingDecision:
    """A decision waiting for its outcome."""

    decision_id: str
    context: RemediationContext
    action: str
    ts: float


# ------------------------------------------------------------------ policy
class RemediationPolicy:
    """Thompson sampling over Beta posteriors per (context level, action), with auto gating.

    Parameters
    ----------
    actions
        The arms; must include ``open_incident``.
    levels
        Context levels, finest first, as tuples of :class:`RemediationContext` fields.
    min_obs
        Outcomes an action needs in a context before it may be applied in mode ``auto``.
    auto_lower
        Lower bound its success probability needs for mode ``auto``.
    quantile
        The posterior quantile used as the lower bound (0.05: 95 % one-sided).
    backoff_obs
        Outcomes (any action) a context level needs to be used rather than a coarser one;
        ``2 * min_obs`` if ``None``, so that a finer context is used once it can hold the
        evidence an ``auto`` decision needs besides what exploring cost.
    auto_fields
        Context fields a level must include for an ``auto`` decision there: by default the
        error template, so that an error type's pooled record never applies an action
        automatically to a template that may need another one.
    prior_weight
        Most outcomes per action a context level borrows from the next coarser one (its
        sibling contexts' outcomes), for the sampling and for the auto gate (0 disables it);
        see :func:`borrow`.
    alike_odds
        Prior odds that a context is like its siblings; the outcomes it borrows are scaled
        by the posterior probability of that (see :func:`_agreement`).
    min_own
        Successes an action needs in the context level itself before it may be applied
        in mode ``auto`` there, whatever it borrowed: a template is never automated on its
        error type's record alone.
    sharpen
        The sampling draws from posteriors whose own counts are multiplied by this (those
        borrowed are not): Thompson sampling that explores less, for the short horizon of
        a template's few dozen incidents among six actions (1.0 is plain Thompson
        sampling).
    max_obs
        Counts of an arm are scaled down to this many outcomes, so that old outcomes fade
        once it is reached and the policy keeps adapting.
    max_contexts
        Most (level, context) entries kept; the least recently updated is forgotten.
    max_pending
        Most decisions awaiting an outcome; the oldest is forgotten beyond it.
    pending_ttl_s
        Decisions older than this (event time) stop waiting for their outcome.
    seed
        Seed of the sampling; with a decision's basis, it seeds that decision's draws.

    Notes
    -----
    Memory is bounded: ``max_contexts`` entries of ``2 * len(actions)`` numbers (about
    350 bytes each with their key) and ``max_pending`` pending decisions (about 400 bytes
    each).

    Examples
    --------
    >>> policy = RemediationPolicy(seed=1)
    >>> ctx = RemediationContext("checkout", "eu-west", "TimeoutError", "a1b2c3d4e5f6", "regional")
    >>> first = policy.decide(ctx, basis=[1.0, "burst-1"], ts=1.0)
    >>> first.action, first.mode, first.n_obs  # nothing known yet
    ('open_incident', 'recommend', 0)
    >>> for _ in range(20):
    ...     policy.record_outcome(ctx, "scale_out", True)
    >>> choice = policy.decide(ctx, basis=[2.0, "burst-2"], ts=2.0)
    >>> choice.action, choice.mode, choice.n_obs, round(choice.lower, 3)
    ('scale_out', 'auto', 20, 0.867)
    >>> policy.learn_outcome(choice.decision_id, success=True, ts=3.0).action
    'scale_out'
    >>> policy.learn_outcome("0" * 32, success=True, ts=3.0) is None  # unknown: dead-letter it
    True
    """

    def __init__(
        self,
        *,
        actions: Sequence[str] = ACTIONS,
        levels: Sequence[Sequence[str]] = DEFAULT_LEVELS,
        min_obs: int = 10,
        auto_lower: float = 0.8,
        quantile: float = 0.05,
        backoff_obs: int | None = None,
        auto_fields: Sequence[str] = ("template_id",),
        prior: tuple[float, float] = (1.0, 1.0),
        prior_weight: float = 20.0,
        alike_odds: float = 10.0,
        min_own: int = 3,
        sharpen: float = 4.0,
        max_obs: float = 500.0,
        max_contexts: int = 50_000,
        max_pending: int = 100_000,
        pending_ttl_s: float = 86_400.0,
        seed: int | None = None,
    ) -> None:
        self.actions = tuple(actions)
        if FALLBACK_ACTION not in self.actions or len(set(self.actions)) != len(self.actions):
            raise ValueError(f"actions must be distinct and include {FALLBACK_ACTION!r}")
        self.levels = tuple(tuple(level) for level in levels)
        if not self.levels or any(
            not level or not set(level) <= set(_CONTEXT_FIELDS) for level in self.levels
        ):
            raise ValueError(f"levels must be non-empty tuples of {', '.join(_CONTEXT_FIELDS)}")
        if min_obs < 1 or not 0.0 < auto_lower < 1.0 or not 0.0 < quantile < 0.5:
            raise ValueError("need min_obs >= 1, 0 < auto_lower < 1 and 0 < quantile < 0.5")
        if max_obs < max(min_obs, 2) or min(max_contexts, max_pending) < 1 or pending_ttl_s <= 0:
            raise ValueError("need max_obs >= min_obs, positive caps and pending_ttl_s > 0")
        self.min_obs = min_obs
        self.auto_lower = auto_lower
        self.quantile = quantile
        self.backoff_obs = 2 * min_obs if backoff_obs is None else backoff_obs
        self.auto_fields = tuple(auto_fields)
        self.prior = (float(prior[0]), float(prior[1]))
        if prior_weight < 0 or alike_odds <= 0 or min_own < 1 or sharpen <= 0:
            raise ValueError("need prior_weight >= 0, alike_odds > 0, min_own >= 1, sharpen > 0")
        self.prior_weight = prior_weight
        self.alike_odds = alike_odds
        self.min_own = min_own
        self.sharpen = sharpen
        self.max_obs = max_obs
        self.max_contexts = max_contexts
        self.max_pending = max_pending
        self.pending_ttl_s = pending_ttl_s
        self.seed = seed
        self._index = {action: i for i, action in enumerate(self.actions)}
        # (level index, *context values) -> [successes, failures] per action, flattened.
        self._stats: OrderedDict[tuple[Hashable, ...], list[float]] = OrderedDict()
        self._pending: OrderedDict[str, PendingDecision] = OrderedDict()
        self._watermark = -math.inf

    # -------------------------------------------------------------- estimates
    def _estimate(self, action: str, counts: list[float] | None) -> ActionEstimate:
        i = self._index[action]
        s, f = (counts[2 * i], counts[2 * i + 1]) if counts else (0.0, 0.0)
        a, b = self.prior[0] + s, self.prior[1] + f
        return ActionEstimate(action, a / (a + b), beta_quantile(self.quantile, a, b), s, f)

    def _level_for(self, context: RemediationContext) -> tuple[int, list[float]] | None:
        """The level to decide at and its counts; ``None`` if no level has any outcome.

        The finest level with ``backoff_obs`` outcomes, or with as many as any coarser
        level (backing off would bring no more evidence); else the coarsest with any.
        """
        found = [
            (i, counts)
            for i, level in enumerate(self.levels)
            if (counts := self._stats.get((i, *context.key(level))))
        ]
        totals = [sum(counts) for _, counts in found]
        for k, (i, counts) in enumerate(found):
            if totals[k] > 0 and (totals[k] >= self.backoff_obs or totals[k] >= max(totals[k:])):
                return i, counts
        return None

    def _hierarchical(
        self, context: RemediationContext, level: int
    ) -> tuple[list[float], list[float]]:
        """Own counts per arm at ``level`` and what it borrows from the coarser levels.

        From the coarsest level down, each level adds to its own outcomes what
        :func:`borrow` lets it take from its parent's counts (the parent's own and what it
        borrowed in turn): a new template starts from what its error type taught, and a
        context that shows it is unlike its siblings soon stands on its own outcomes.
        """
        width = 2 * len(self.actions)
        counts = [0.0] * width
        for i in range(len(self.levels) - 1, level, -1):
            own = self._stats.get((i, *context.key(self.levels[i]))) or [0.0] * width
            counts = borrow(own, counts, self.prior_weight, self.alike_odds)
        own = self._stats.get((level, *context.key(self.levels[level]))) or [0.0] * width
        pooled = borrow(own, counts, self.prior_weight, self.alike_odds)
        return own, [p - o for p, o in zip(pooled, own, strict=True)]

    def _sampling_level(self, context: RemediationContext, level: tuple[str, ...]) -> int:
        """The level a recommendation is drawn at: the coarsest that includes
        ``auto_fields`` (the template's own record) once it has outcomes, else ``level``.

        Not the error type's pooled record, even while the template has few outcomes: two
        faults behind one error type would keep the template on the action that works for
        the other one; what the error type taught still comes in, borrowed (see
        :meth:`_hierarchical`), as long as the template behaves like its siblings.
        """
        for i in range(len(self.levels) - 1, -1, -1):
            if set(self.auto_fields) <= set(self.levels[i]):
                if self._stats.get((i, *context.key(self.levels[i]))):
                    return i
                break
        return self.levels.index(level)

    def estimates(
        self, context: RemediationContext
    ) -> tuple[tuple[str, ...], list[ActionEstimate]]:
        """The level the policy would decide at and every action's estimate there."""
        found = self._level_for(context)
        if found is None:
            return (), [self._estimate(a, None) for a in self.actions]
        i, counts = found
        return self.levels[i], [self._estimate(a, counts) for a in self.actions]

    # -------------------------------------------------------------- deciding
    def _draws_for(self, basis: Any) -> random.Random:
        """The random source of one decision's draws: a function of the seed and its basis.

        A generator carried from decision to decision would draw differently when a worker
        restarted from a checkpoint replays an input it had already decided on: the replay
        would publish another action, under another decision id, for the same burst.
        """
        canonical = orjson.dumps(
            [self.seed, basis], option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
        )
        return random.Random(hashlib.blake2b(canonical, digest_size=16).digest())

    def _eligible(self, estimate: ActionEstimate) -> bool:
        """Whether an action's record (own and borrowed) allows applying it automatically."""
        return estimate.n_obs >= self.min_obs and estimate.lower >= self.auto_lower

    def _auto(
        self, context: RemediationContext
    ) -> tuple[int, int | None, list[ActionEstimate], list[ActionEstimate]] | None:
        """The level an ``auto`` decision rests on, if any level allows one.

        Returns the level's index, the index of the level it borrowed from (``None`` if
        none), the estimates from its own and borrowed outcomes, and those from its own.
        At each level that includes ``auto_fields``, from the finest, an action is eligible
        when :func:`borrow`'s record of it (own outcomes and what the next coarser level
        with any lends) has ``min_obs`` outcomes and a lower bound of at least
        ``auto_lower``, it succeeded at least ``min_own`` times at that level itself, and
        no finer context of this burst shows, with 95 % confidence, that it works less
        often than ``auto_lower`` there. The finest level with an eligible action is used,
        so that what a service or cause taught prevails over the pooled template.
        """
        vetoed: set[str] = set()
        found = [
            (i, counts)
            for i, level in enumerate(self.levels)
            if (counts := self._stats.get((i, *context.key(level))))
        ]
        for k, (i, own) in enumerate(found):
            if set(self.auto_fields) <= set(self.levels[i]):
                parent_index = found[k + 1][0] if k + 1 < len(found) else None
                parent = found[k + 1][1] if parent_index is not None else own
                pooled = borrow(own, parent, self.prior_weight, self.alike_odds)
                estimates = [self._estimate(a, pooled) for a in self.actions]
                own_estimates = [self._estimate(a, own) for a in self.actions]
                if any(
                    self._eligible(e) and e.action not in vetoed and o.successes >= self.min_own
                    for e, o in zip(estimates, own_estimates, strict=True)
                ):
                    return i, parent_index, estimates, own_estimates
            for e in (self._estimate(a, own) for a in self.actions):
                upper = beta_quantile(
                    1.0 - self.quantile, self.prior[0] + e.successes, self.prior[1] + e.failures
                )
                if e.successes + e.failures > 0 and upper < self.auto_lower:
                    vetoed.add(e.action)
        return None

    def decide(self, context: RemediationContext, basis: Any, ts: float) -> RemediationChoice:
        """Choose an action for ``context`` and keep the decision pending its outcome.

        Parameters
        ----------
        context
            What is known about the burst.
        basis
            JSON-encodable identification of the triggering input (e.g. ``[burst_ts,
            template_id, service, region]``); with the context and action it determines
            :attr:`RemediationChoice.decision_id`, which the published decision must carry.
        ts
            Event time of the decision (the burst's), for the pending decisions' time to live.
        """
        level, estimates = self.estimates(context)
        auto = self._auto(context)
        borrowed_from: tuple[str, ...] = ()
        own_n = None
        if auto is not None:
            index, parent_index, estimates, own_estimates = auto
            level = self.levels[index]
            if parent_index is not None:
                borrowed_from = self.levels[parent_index]
            own_by_action = {o.action: o for o in own_estimates}
            chosen = max(
                (
                    e
                    for e in estimates
                    if self._eligible(e) and own_by_action[e.action].successes >= self.min_own
                ),
                key=lambda e: (e.lower, e.p_success),
            )
            own = own_by_action[chosen.action]
            own_n = own.n_obs
            mode = "auto"
            lent = (
                f", and with what {_where(borrowed_from, context)} lends"
                if borrowed_from and chosen.n_obs > own.n_obs
                else ""
            )
            reason = (
                f"{chosen.action} worked {own.successes:.0f} of {own.n_obs} times for "
                f"{_where(level, context)}{lent} its success probability is at least "
                f"{chosen.lower:.2f}."
            )
        elif not level:
            chosen = next(e for e in estimates if e.action == FALLBACK_ACTION)
            mode = "recommend"
            reason = (
                f"Nothing is known yet about {context.error_type} errors: a human should "
                "investigate, and the outcome will teach the policy."
            )
        else:
            index = self._sampling_level(context, level)
            level = self.levels[index]
            own, lent = self._hierarchical(context, index)
            estimates = [self._estimate(a, own) for a in self.actions]
            # Own outcomes sharpened, borrowed ones not: a couple of failures the siblings
            # saw must not read as certainty here.
            counts = [self.sharpen * o + b for o, b in zip(own, lent, strict=True)]
            rng = self._draws_for(basis)
            draws = [
                (
                    rng.betavariate(
                        self.prior[0] + counts[2 * k], self.prior[1] + counts[2 * k + 1]
                    ),
                    e,
                )
                for k, e in enumerate(estimates)
            ]
            chosen = max(draws, key=lambda d: d[0])[1]
            mode = "recommend"
            reason = (
                f"{chosen.action} is recommended for {_where(level, context)} (worked "
                f"{chosen.successes:.0f} of {chosen.n_obs} times); the evidence does not yet "
                f"allow applying an action automatically (needs {self.min_obs} outcomes and a "
                f"lower bound of {self.auto_lower:.2f})."
            )
        subject = {"service": context.service, "region": context.region}
        decision_id = decision_id_for("remediation", subject, chosen.action, {}, basis)
        self._advance(ts)
        self._add_pending(PendingDecision(decision_id, context, chosen.action, ts))
        return RemediationChoice(
            decision_id=decision_id,
            action=chosen.action,
            mode=mode,
            p_success=chosen.p_success,
            lower=chosen.lower,
            n_obs=chosen.n_obs,
            successes=chosen.successes,
            failures=chosen.failures,
            level=level,
            reason=reason,
            estimates=tuple(sorted(estimates, key=lambda e: (-e.p_success, e.action))),
            borrowed_from=borrowed_from,
            own_n_obs=chosen.n_obs if own_n is None else own_n,
        )

    # -------------------------------------------------------------- learning
    def record_outcome(self, context: RemediationContext, action: str, success: bool) -> None:
        """Count one outcome of ``action`` in ``context``, at every context level."""
        i = self._index.get(action)
        if i is None:
            raise ValueError(f"unknown action {action!r}")
        slot = 2 * i + (0 if success else 1)
        for level_index, level in enumerate(self.levels):
            key = (level_index, *context.key(level))
            counts = self._stats.get(key)
            if counts is None:
                counts = self._stats[key] = [0.0] * (2 * len(self.actions))
                if len(self._stats) > self.max_contexts:
                    self._stats.popitem(last=False)
            else:
                self._stats.move_to_end(key)
            counts[slot] += 1.0
            n = counts[2 * i] + counts[2 * i + 1]
            if n > self.max_obs:
                scale = self.max_obs / n
                counts[2 * i] *= scale
                counts[2 * i + 1] *= scale

    def learn_outcome(
        self, decision_id: str, success: bool, ts: float | None = None
    ) -> PendingDecision | None:
        """Learn the outcome of a pending decision.

        Returns the decision it answers, or ``None`` when no decision with that id is
        pending (never made, expired, or already answered): the outcome is then not
        learned and should go to the dead-letter queue.
        """
        if ts is not None:
            self._advance(ts)
        pending = self._pending.pop(decision_id, None)
        if pending is None:
            return None
        self.record_outcome(pending.context, pending.action, success)
        return pending

    def pending(self, decision_id: str) -> PendingDecision | None:
        """The pending decision with this id, if any."""
        return self._pending.get(decision_id)

    def _advance(self, ts: float) -> None:
        """Move event time on to ``ts`` and let decisions past their time to live go."""
        if ts > self._watermark:
            self._watermark = ts
            horizon = ts - self.pending_ttl_s
            while self._pending and next(iter(self._pending.values())).ts < horizon:
                self._pending.popitem(last=False)

    def _add_pending(self, pending: PendingDecision) -> None:
        self._pending.pop(pending.decision_id, None)
        self._pending[pending.decision_id] = pending
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)

    def __len__(self) -> int:
        """Context entries with statistics."""
        return len(self._stats)

    # -------------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume (statistics and pending decisions), JSON-ready."""
        return {
            "version": _STATE_VERSION,
            "params": {
                "actions": list(self.actions),
                "levels": [list(level) for level in self.levels],
                "min_obs": self.min_obs,
                "auto_lower": self.auto_lower,
                "quantile": self.quantile,
                "backoff_obs": self.backoff_obs,
                "auto_fields": list(self.auto_fields),
                "prior": list(self.prior),
                "prior_weight": self.prior_weight,
                "alike_odds": self.alike_odds,
                "min_own": self.min_own,
                "sharpen": self.sharpen,
                "max_obs": self.max_obs,
                "max_contexts": self.max_contexts,
                "max_pending": self.max_pending,
                "pending_ttl_s": self.pending_ttl_s,
                "seed": self.seed,
            },
            "stats": [[key[0], list(key[1:]), counts] for key, counts in self._stats.items()],
            "pending": [
                [p.decision_id, p.context.to_dict(), p.action, p.ts] for p in self._pending.values()
            ],
            "watermark": None if self._watermark == -math.inf else self._watermark,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RemediationPolicy:
        """A policy resumed from :meth:`to_state`'s output."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"unsupported remediation policy state version {state.get('version')!r}"
            )
        policy = cls(**state["params"])
        width = 2 * len(policy.actions)
        for level_index, values, counts in state["stats"]:
            if len(counts) != width:
                raise ValueError("remediation policy state has counts of the wrong width")
            policy._stats[(int(level_index), *map(str, values))] = [float(c) for c in counts]
        for decision_id, context, action, ts in state["pending"]:
            policy._pending[str(decision_id)] = PendingDecision(
                str(decision_id), RemediationContext(**context), str(action), float(ts)
            )
        if state.get("watermark") is not None:
            policy._watermark = float(state["watermark"])
        return policy
