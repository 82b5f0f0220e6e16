"""Closed-loop remediation simulation, without Kafka: does the policy learn, and safely?

Each fault type of the simulator (:data:`streams.lab.scenario.FAULT_TYPES`) has a hidden best
action (success probability ``p_best``, 0.95), a second-best (``p_second``, 0.6); opening an
incident works with ``p_open`` (0.3) and any other action with ``p_other`` (0.1). Incidents
arrive in random order, ``incidents_per_fault`` of each fault type (the learning phase), then
``after_incidents_per_fault`` more of each (the phase after it, still learning online), each
on a random service and region, with one of its fault's error templates. Around some, the
evidence a real burst would have is planted in a :class:`~models.health.root_cause.CauseContext` (a
deploy shortly before, a metric anomaly, the same template bursting in other regions), and
the top hint of :func:`~models.health.root_cause.rank_causes` becomes the context's cause, as the
worker is meant to build it.

Three policies face the same incidents and the same luck (common random numbers: one
uniform draw per incident and action decides whether that action would work):

* **learned**: :class:`~models.policy.remediation.RemediationPolicy`, told each outcome by decision
  id after a random delay of 0 to ``max_feedback_delay`` incidents, as feedback arrives late;
* **rule_table**: a fixed runbook by error type, with "roll back after a recent deploy"
  first, right for some faults and wrong for others;
* **random**: a uniformly random action.

Reported: success rates, cumulative regret against the oracle that always takes the best
action (expected, ``sum(p_best - p_chosen)``, and realised), the success rate of ``auto``
decisions, and whether any ``auto`` decision came before its evidence allowed, checked
against the simulation's own tally of the outcomes the policy had been told: recomputed
with :func:`~models.policy.remediation.borrow` from that tally at the decision's level and the
level it borrowed from, at least ``min_obs`` outcomes of that action, ``min_own`` successes
at the level itself, and the Beta lower bound at least ``auto_lower``. The policies see what
a worker would (service, region, error type, template, root-cause hint), never the fault.

:func:`run_bench_remediation_seeds` runs several seeds and gives their mean.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from models.detect.bursts import Burst
from models.health.root_cause import CauseContext, rank_causes
from models.policy.remediation import (
    ACTIONS,
    RemediationChoice,
    RemediationContext,
    RemediationPolicy,
    beta_quantile,
    borrow,
)
from models.text.templates import template_id_for
from streams.lab.scenario import FAULT_TYPES

__all__ = [
    "FAULT_MODELS",
    "RULE_TABLE",
    "FaultModel",
    "format_bench_remediation",
    "format_bench_remediation_seeds",
    "rule_table_action",
    "run_bench_remediation",
    "run_bench_remediation_seeds",
]


@dataclass(frozen=True, slots=True)
class FaultModel:
    """How a fault type shows up and what fixes it (hidden from the policies).

    ``deploy_share`` of its incidents follow a deploy of the service (all of them when the
    deploy causes it), ``anomaly_share`` come with a metric anomaly and
    ``multi_region_share`` burst in other regions too.
    """

    error_type: str
    templates: int
    best: str
    second: str
    deploy_share: float = 0.15
    anomaly_share: float = 0.0
    multi_region_share: float = 0.0


FAULT_MODELS: dict[str, FaultModel] = {
    "db_connection_pool_exhausted": FaultModel(
        "TimeoutError", 3, "scale_out", "restart_instance", anomaly_share=0.8
    ),
    "upstream_timeout": FaultModel(
        "TimeoutError", 2, "failover_region", "scale_out", multi_region_share=0.3
    ),
    "dependency_unavailable": FaultModel(
        "ConnectionRefusedError", 2, "failover_region", "restart_instance", multi_region_share=0.5
    ),
    "health_check_failed": FaultModel(
        "HealthCheckError", 2, "restart_instance", "failover_region", anomaly_share=0.5
    ),
    "out_of_memory": FaultModel(
        "MemoryError", 2, "restart_instance", "scale_out", anomaly_share=0.9
    ),
    "validation_error": FaultModel(
        "ValidationError", 2, "rollback_deploy", "open_incident", deploy_share=1.0
    ),
    "rate_limited": FaultModel(
        "RateLimitExceeded", 2, "clear_cache", "scale_out", anomaly_share=0.3
    ),
    "null_reference": FaultModel(
        "AttributeError", 2, "rollback_deploy", "clear_cache", deploy_share=1.0
    ),
    "tls_handshake_failure": FaultModel(
        "SSLError", 1, "failover_region", "open_incident", multi_region_share=0.3
    ),
    "disk_full": FaultModel("OSError", 1, "clear_cache", "restart_instance", anomaly_share=0.7),
}
"""The hidden truth of the simulation, one entry per simulator fault type."""

RULE_TABLE: dict[str, str] = {
    "TimeoutError": "scale_out",
    "ConnectionRefusedError": "restart_instance",
    "HealthCheckError": "restart_instance",
    "MemoryError": "restart_instance",
    "ValidationError": "open_incident",
    "RateLimitExceeded": "scale_out",
    "AttributeError": "rollback_deploy",
    "SSLError": "open_incident",
    "OSError": "clear_cache",
}
"""The fixed runbook: error type -> action (after "roll back a recent deploy")."""

_SERVICES = ("checkout", "search", "catalog")
_REGIONS = ("us-east", "eu-west", "ap-south")
_ANOMALY_METRICS = ("cpu_util", "memory_util", "p99_latency_ms", "queue_depth")
_INCIDENT_SPACING_S = 3600.0  # far enough apart that no evidence spills into the next one
_START_TS = 1_700_000_000.0


def rule_table_action(context: RemediationContext) -> str:
    """The runbook's action: roll back after a recent deploy, else by error type."""
    if context.cause == "rollback_candidate":
        return "rollback_deploy"
    return RULE_TABLE.get(context.error_type, "open_incident")


@dataclass(frozen=True, slots=True)
class _Incident:
    fault: str
    context: RemediationContext
    ts: float
    luck: tuple[float, ...]  # one uniform draw per action: it works if draw < p


class _World:
    """Generates incidents and says whether an action works."""

    def __init__(
        self, rng: random.Random, p_best: float, p_second: float, p_open: float, p_other: float
    ) -> None:
        self.rng = rng
        self.p = {"best": p_best, "second": p_second, "open": p_open, "other": p_other}
        self.causes = CauseContext()
        self.versions: dict[tuple[str, str], int] = {}

    def p_success(self, fault: str, action: str) -> float:
        model = FAULT_MODELS[fault]
        if action == model.best:
            return self.p["best"]
        if action == model.second:
            return self.p["second"]
        return self.p["open"] if action == "open_incident" else self.p["other"]

    def incident(self, fault: str, ts: float) -> _Incident:
        rng, model = self.rng, FAULT_MODELS[fault]
        service, region = rng.choice(_SERVICES), rng.choice(_REGIONS)
        template_id = template_id_for(["sim", fault, str(rng.randrange(model.templates))])
        place = (service, region)
        version = self.versions.setdefault(place, 0)
        self.causes.observe_version(service, region, f"v1.{version}.0", ts - 3000.0)
        new_template = False
        if rng.random() < model.deploy_share:
            self.versions[place] = version = version + 1
            self.causes.observe_version(
                service, region, f"v1.{version}.0", ts - rng.uniform(30, 400)
            )
            # A fault the deploy causes is a new error; a coincidental deploy is not.
            new_template = model.deploy_share >= 1.0
        if rng.random() < model.anomaly_share:
            metric = rng.choice(_ANOMALY_METRICS)
            self.causes.observe_anomaly(
                service, region, ts - rng.uniform(0, 120), metric, rng.uniform(0.6, 1.0)
            )
        if rng.random() < model.multi_region_share:
            others = [r for r in _REGIONS if r != region]
            for other in rng.sample(others, rng.randint(1, len(others))):
                self.causes.observe_burst(
                    Burst(template_id, service, other, ts - rng.uniform(0, 60), 20.0, 0.05, ts)
                )
        first_seen = ts - 10.0 if new_template else ts - 10 * 86_400.0
        burst = Burst(template_id, service, region, ts, 20.0, 0.05, first_seen)
        cause = rank_causes(burst, self.causes)[0].kind
        self.causes.observe_burst(burst)
        context = RemediationContext(service, region, model.error_type, template_id, cause)
        luck = tuple(rng.random() for _ in ACTIONS)
        return _Incident(fault, context, ts, luck)

    def works(self, incident: _Incident, action: str) -> bool:
        return incident.luck[ACTIONS.index(action)] < self.p_success(incident.fault, action)


_PHASES = ("learning", "after")
_POLICIES = ("learned", "rule_table", "random", "oracle")


class _Score:
    """Outcomes and regret of one policy in one phase."""

    def __init__(self) -> None:
        self.outcomes: list[bool] = []
        self.expected_regret = 0.0
        self.realised_regret = 0

    def add(self, success: bool, p_chosen: float, p_best: float, oracle_success: bool) -> None:
        self.outcomes.append(success)
        self.expected_regret += p_best - p_chosen
        self.realised_regret += oracle_success - success


class _AutoLog:
    """The learned policy's modes and its auto decisions' outcomes in one phase."""

    def __init__(self) -> None:
        self.modes: Counter[str] = Counter()
        self.auto_successes = 0
        self.premature = 0

    def summary(self) -> dict[str, Any]:
        autos = self.modes["auto"]
        return {
            "auto": autos,
            "auto_successes": self.auto_successes,
            "auto_success_rate": self.auto_successes / autos if autos else None,
            "premature_auto": self.premature,
            "recommend": self.modes["recommend"],
            "nothing_known": self.modes["nothing_known"],
        }


def _rate(outcomes: list[bool]) -> float:
    return sum(outcomes) / len(outcomes) if outcomes else 0.0


def run_bench_remediation(
    incidents_per_fault: int = 30,
    seed: int = 0,
    *,
    after_incidents_per_fault: int = 20,
    p_best: float = 0.95,
    p_second: float = 0.6,
    p_open: float = 0.3,
    p_other: float = 0.1,
    max_feedback_delay: int = 3,
    policy_factory: Callable[[int], RemediationPolicy] | None = None,
) -> dict[str, Any]:
    """Run the closed loop and return its figures (see the module docstring).

    The run has two phases: *learning*, ``incidents_per_fault`` incidents of each fault type
    in random order, then *after*, ``after_incidents_per_fault`` more of each, during which
    the policy goes on learning. Figures are given per phase and for the whole run.

    Parameters
    ----------
    incidents_per_fault
        Incidents of each fault type in the learning phase.
    seed
        Seed of everything random: incidents, luck, delays and the policy's sampling.
    after_incidents_per_fault
        Incidents of each fault type in the phase after it.
    p_best, p_second, p_open, p_other
        Success probabilities of the best, second-best, ``open_incident`` and other actions.
    max_feedback_delay
        Outcomes reach the learned policy after 0 to this many further incidents.
    policy_factory
        ``seed -> RemediationPolicy``; the default policy if ``None``.

    Examples
    --------
    >>> r = run_bench_remediation(incidents_per_fault=3, seed=1, after_incidents_per_fault=1)
    >>> r["config"]["incidents"], sorted(r["policies"])
    (40, ['learned', 'oracle', 'random', 'rule_table'])
    >>> r["learned"]["all"]["premature_auto"]
    0
    """
    missing = set(FAULT_TYPES) - set(FAULT_MODELS)
    if missing:
        raise ValueError(f"no fault model for simulator fault types {sorted(missing)}")
    rng = random.Random(seed)
    world = _World(rng, p_best, p_second, p_open, p_other)
    policy = policy_factory(seed) if policy_factory else RemediationPolicy(seed=seed)
    schedule: list[tuple[str, str]] = []
    for phase, per_fault in zip(
        _PHASES, (incidents_per_fault, after_incidents_per_fault), strict=True
    ):
        faults = [f for f in FAULT_TYPES for _ in range(per_fault)]
        rng.shuffle(faults)
        schedule += [(phase, f) for f in faults]
    action_rng = random.Random(seed + 1)

    scores = {(name, phase): _Score() for name in _POLICIES for phase in _PHASES}
    logs = {phase: _AutoLog() for phase in _PHASES}
    # Outcomes the learned policy has been told, per (level fields, context key): successes
    # and failures per action, flattened as the policy keeps them.
    told: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0] * (2 * len(ACTIONS)))
    due: dict[int, list[tuple[str, bool]]] = defaultdict(list)
    unknown = learned_outcomes = 0
    late_choices: dict[str, Counter[str]] = defaultdict(Counter)
    late_rules: dict[str, Counter[str]] = defaultdict(Counter)
    auto_by_fault: Counter[str] = Counter()
    first_auto: dict[str, int] = {}

    def tell(decision_id: str, success: bool, ts: float) -> None:
        nonlocal unknown, learned_outcomes
        pending = policy.learn_outcome(decision_id, success, ts)
        if pending is None:
            unknown += 1
            return
        learned_outcomes += 1
        slot = 2 * ACTIONS.index(pending.action) + (0 if success else 1)
        for level in policy.levels:
            told[(level, pending.context.key(level))][slot] += 1

    def premature_auto(choice: RemediationChoice, context: RemediationContext) -> bool:
        own = told[(choice.level, context.key(choice.level))]
        parent = told[(choice.borrowed_from, context.key(choice.borrowed_from))]
        pooled = borrow(own, parent, policy.prior_weight, policy.alike_odds)
        k = 2 * ACTIONS.index(choice.action)
        s, f = pooled[k], pooled[k + 1]
        lower = beta_quantile(policy.quantile, policy.prior[0] + s, policy.prior[1] + f)
        return (
            s + f < policy.min_obs
            or own[k] < policy.min_own
            or lower < policy.auto_lower
            or not set(policy.auto_fields) <= set(choice.level)
        )

    for i, (phase, fault) in enumerate(schedule):
        ts = _START_TS + i * _INCIDENT_SPACING_S
        for decision_id, success in due.pop(i, ()):
            tell(decision_id, success, ts)
        incident = world.incident(fault, ts)
        context = incident.context
        best = FAULT_MODELS[fault].best
        oracle_success = world.works(incident, best)
        choice = policy.decide(
            context, [ts, context.template_id, context.service, context.region], ts
        )
        picks = {
            "learned": choice.action,
            "rule_table": rule_table_action(context),
            "random": action_rng.choice(ACTIONS),
            "oracle": best,
        }
        for name, action in picks.items():
            scores[(name, phase)].add(
                world.works(incident, action),
                world.p_success(fault, action),
                p_best,
                oracle_success,
            )
        success = world.works(incident, choice.action)
        log = logs[phase]
        log.modes[choice.mode if choice.level else "nothing_known"] += 1
        if phase == "after":
            late_choices[fault][choice.action] += 1
            late_rules[fault][picks["rule_table"]] += 1
        if choice.mode == "auto":
            log.auto_successes += success
            log.premature += premature_auto(choice, context)
            auto_by_fault[fault] += 1
            first_auto.setdefault(fault, i)
        # Told before incident i + 1 + delay: a delay of 0 is before the next incident
        # (due[i] was already handed over above, so an outcome filed there was lost).
        delay = action_rng.randint(0, max_feedback_delay)
        due[i + 1 + delay].append((choice.decision_id, success))

    policies: dict[str, dict[str, Any]] = {}
    for name in _POLICIES:
        learning, after = scores[(name, "learning")], scores[(name, "after")]
        outcomes = learning.outcomes + after.outcomes
        policies[name] = {
            "successes": sum(outcomes),
            "success_rate": _rate(outcomes),
            "success_rate_learning": _rate(learning.outcomes),
            "success_rate_after": _rate(after.outcomes),
            "expected_regret": round(learning.expected_regret + after.expected_regret, 3),
            "expected_regret_learning": round(learning.expected_regret, 3),
            "realised_regret": learning.realised_regret + after.realised_regret,
        }
    total = _AutoLog()
    for log in logs.values():
        total.modes.update(log.modes)
        total.auto_successes += log.auto_successes
        total.premature += log.premature
    learned = {phase: logs[phase].summary() for phase in _PHASES}
    learned["all"] = total.summary()
    learned["unknown_outcomes"] = unknown  # type: ignore[assignment]
    # Every decision's outcome is told, but for those due after the last incident.
    learned["learned_outcomes"] = learned_outcomes  # type: ignore[assignment]
    learned["outcomes_due_after_the_run"] = sum(map(len, due.values()))  # type: ignore[assignment]

    n = len(schedule)
    tenths = sorted({max(1, round(n * k / 10)) for k in range(1, 11)}) if n else []
    series = {
        name: scores[(name, "learning")].outcomes + scores[(name, "after")].outcomes
        for name in _POLICIES
    }
    curve = [
        {
            "incidents": upto,
            **{name: _rate(series[name][lo:upto]) for name in ("learned", "rule_table", "random")},
        }
        for lo, upto in zip([0, *tenths[:-1]], tenths, strict=True)
    ]
    per_fault = {
        fault: {
            "best": FAULT_MODELS[fault].best,
            "learned_after": late_choices[fault].most_common(1)[0][0]
            if late_choices[fault]
            else None,
            "rule_table_after": late_rules[fault].most_common(1)[0][0]
            if late_rules[fault]
            else None,
            "auto": auto_by_fault[fault],
            "first_auto_incident": first_auto.get(fault),
        }
        for fault in FAULT_TYPES
    }
    rate_all = learned["all"]["auto_success_rate"]
    after = learned["after"]
    rate_after = after["auto_success_rate"]
    n_after = sum(after[k] for k in ("auto", "recommend", "nothing_known"))
    return {
        "config": {
            "incidents_per_fault": incidents_per_fault,
            "after_incidents_per_fault": after_incidents_per_fault,
            "incidents": n,
            "fault_types": len(FAULT_TYPES),
            "seed": seed,
            "p_best": p_best,
            "p_second": p_second,
            "p_open": p_open,
            "p_other": p_other,
            "max_feedback_delay": max_feedback_delay,
            "min_obs": policy.min_obs,
            "auto_lower": policy.auto_lower,
            "quantile": policy.quantile,
        },
        "policies": policies,
        "learned": learned,
        "curve": curve,
        "per_fault": per_fault,
        "auto_share_after": after["auto"] / n_after if n_after else 0.0,
        "meets": {
            "auto_success_rate_at_least_0.9": rate_all is not None and rate_all >= 0.9,
            "no_premature_auto": total.premature == 0,
            **_targets(policies, after["auto"] / n_after if n_after else 0.0, rate_after),
        },
    }


def _targets(
    policies: dict[str, dict[str, Any]], auto_share: float, auto_rate: float | None
) -> dict[str, bool]:
    """Issue 21's targets for the learned policy, from the figures of one run or a mean."""
    learned = policies["learned"]
    return {
        "after_success_at_least_0.9": learned["success_rate_after"] >= 0.9,
        "overall_above_rule_table": learned["success_rate"]
        > policies["rule_table"]["success_rate"],
        "auto_share_after_at_least_0.5": auto_share >= 0.5,
        "auto_success_after_at_least_0.95": auto_rate is not None and auto_rate >= 0.95,
    }


def run_bench_remediation_seeds(seeds: Sequence[int], **settings: Any) -> dict[str, Any]:
    """:func:`run_bench_remediation` for each seed, and the mean of the headline figures.

    The mean of a rate is over the seeds' rates (each seed the same number of incidents).

    Examples
    --------
    >>> r = run_bench_remediation_seeds([0, 1], incidents_per_fault=3, after_incidents_per_fault=1)
    >>> r["seeds"], sorted(r["mean"]["policies"]), r["mean"]["premature_auto"]
    ([0, 1], ['learned', 'oracle', 'random', 'rule_table'], 0)
    """
    runs = [run_bench_remediation(seed=seed, **settings) for seed in seeds]
    if not runs:
        raise ValueError("need at least one seed")

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    policies = {
        name: {
            key: mean([r["policies"][name][key] for r in runs])
            for key in ("success_rate", "success_rate_learning", "success_rate_after")
        }
        for name in _POLICIES
    }
    auto_rates = [r["learned"]["after"]["auto_success_rate"] for r in runs]
    known = [x for x in auto_rates if x is not None]
    auto_share = mean([r["auto_share_after"] for r in runs])
    auto_rate = mean(known) if known else None
    summary = {
        "policies": policies,
        "auto_share_after": auto_share,
        "auto_success_rate_after": auto_rate,
        "premature_auto": sum(r["learned"]["all"]["premature_auto"] for r in runs),
    }
    summary["meets"] = {
        "no_premature_auto": summary["premature_auto"] == 0,
        **_targets(policies, auto_share, auto_rate),
    }
    return {
        "seeds": list(seeds),
        "per_seed": {
            str(r["config"]["seed"]): {
                "policies": r["policies"],
                "learned": r["learned"],
                "auto_share_after": r["auto_share_after"],
                "meets": r["meets"],
            }
            for r in runs
        },
        "mean": summary,
        "config": runs[0]["config"] | {"seed": None},
    }


def format_bench_remediation_seeds(result: dict[str, Any]) -> str:
    """One line per seed and the mean, with the targets the mean meets."""
    lines = [
        f"Remediation closed loop over seeds {', '.join(map(str, result['seeds']))} "
        f"({result['config']['incidents']} incidents each)",
        "",
        f"  {'seed':<6}{'learned':>9}{'after':>8}{'rule':>8}{'oracle':>8}"
        f"{'auto share':>12}{'auto ok':>9}{'premature':>11}",
    ]

    def row(name: str, policies: dict, share: float, rate: float | None, premature: int) -> str:
        return (
            f"  {name:<6}{policies['learned']['success_rate']:>9.1%}"
            f"{policies['learned']['success_rate_after']:>8.1%}"
            f"{policies['rule_table']['success_rate']:>8.1%}"
            f"{policies['oracle']['success_rate_after']:>8.1%}{share:>12.1%}"
            f"{'-' if rate is None else f'{rate:.1%}':>9}{premature:>11d}"
        )

    for seed, r in result["per_seed"].items():
        after = r["learned"]["after"]
        lines.append(
            row(
                seed,
                r["policies"],
                r["auto_share_after"],
                after["auto_success_rate"],
                r["learned"]["all"]["premature_auto"],
            )
        )
    m = result["mean"]
    share, rate = m["auto_share_after"], m["auto_success_rate_after"]
    lines.append(row("mean", m["policies"], share, rate, m["premature_auto"]))
    lines += [
        "",
        "(learned: success over the run; after: after learning; rule: the rule table over",
        " the run; oracle: after learning; auto share and success: after learning)",
    ]
    lines.append(
        "mean meets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in m["meets"].items())
    )
    return "\n".join(lines)


def format_bench_remediation(result: dict[str, Any]) -> str:
    """Readable tables of :func:`run_bench_remediation`'s result."""
    cfg, learned = result["config"], result["learned"]
    lines = [
        f"Remediation closed loop: {cfg['fault_types']} fault types, {cfg['incidents_per_fault']}"
        f" incidents each to learn, then {cfg['after_incidents_per_fault']} each after "
        f"({cfg['incidents']} in all), seed {cfg['seed']}",
        f"success p: best {cfg['p_best']}, second {cfg['p_second']}, open_incident "
        f"{cfg['p_open']}, other {cfg['p_other']}; feedback 0-{cfg['max_feedback_delay']} "
        "incidents late",
        "",
        f"  {'policy':<12}{'success':>9}{'learning':>10}{'after':>8}"
        f"{'regret exp.':>13}{'(learning)':>12}{'regret real.':>14}",
    ]
    for name in _POLICIES:
        p = result["policies"][name]
        lines.append(
            f"  {name:<12}{p['success_rate']:>9.1%}{p['success_rate_learning']:>10.1%}"
            f"{p['success_rate_after']:>8.1%}{p['expected_regret']:>13.1f}"
            f"{p['expected_regret_learning']:>12.1f}{p['realised_regret']:>14d}"
        )
    lines += ["", "learned policy decisions:"]
    for phase in (*_PHASES, "all"):
        lg = learned[phase]
        rate = lg["auto_success_rate"]
        lines.append(
            f"  {phase:<9} auto {lg['auto']:>3} (succeeded {'-' if rate is None else f'{rate:.1%}'}"
            f"), recommend {lg['recommend']:>3}, open_incident as nothing known "
            f"{lg['nothing_known']:>3}, auto before the evidence allowed {lg['premature_auto']}"
        )
    lines += [
        f"  (auto needs n >= {cfg['min_obs']} outcomes and a {1 - cfg['quantile']:.0%} lower "
        f"bound >= {cfg['auto_lower']}; outcomes with unknown ids: {learned['unknown_outcomes']})",
        "",
        "success rate per tenth of the run (learned / rule_table / random):",
    ]
    lines += [
        f"  up to {c['incidents']:>4}: {c['learned']:>6.1%} {c['rule_table']:>6.1%} "
        f"{c['random']:>6.1%}"
        for c in result["curve"]
    ]
    lines += [
        "",
        "most frequent action after learning, per fault type:",
        f"  {'fault type':<30}{'best (hidden)':<18}{'learned':<18}{'rule_table':<18}{'autos':>6}",
    ]
    for fault, pf in result["per_fault"].items():
        lines.append(
            f"  {fault:<30}{pf['best']:<18}{pf['learned_after'] or '-':<18}"
            f"{pf['rule_table_after'] or '-':<18}{pf['auto']:>6}"
        )
    meets = result["meets"]
    lines += [
        "",
        "auto success >= 90 %: "
        + ("yes" if meets["auto_success_rate_at_least_0.9"] else "NO")
        + "; no auto before its evidence: "
        + ("yes" if meets["no_premature_auto"] else "NO"),
        f"after learning: {result['auto_share_after']:.1%} of decisions auto; targets: "
        + ", ".join(
            f"{k} {'yes' if meets[k] else 'NO'}"
            for k in meets
            if k not in ("auto_success_rate_at_least_0.9", "no_premature_auto")
        ),
    ]
    return "\n".join(lines)
