"""Actuation policy: what AWS call a decision becomes, and whether it may be made.

Pure and synchronous: nothing here talks to AWS or Kafka. The executor
(:mod:`streams.actuate.aws`) makes the calls this module plans, and the agent
(:mod:`agents.actuator`) feeds it decisions and publishes the audit records it builds.

A decision goes through these gates, in order, and the first that stops it
decides its audit record:

1. *idempotency*: a ``decision_id`` already handled for the subject is a ``duplicate``;
2. *mode*: only ``mode: auto`` decisions are applied, ``recommend`` ones are refused;
3. *support*: the kind and action must be one the actuator knows how to apply;
4. *allow-list of actions* (``kind:action``);
5. *mapping*: the mapping file must say which resource the decision is about;
6. *allow-list of resources* (shell-style patterns);
7. *order*: a decision older (event time) than one that already passed every gate to make
   the same call (resource and operation) is refused ``superseded``: read late, after a
   restart, it would undo the newer one;
8. *rate limit* of the resource (at most N actions per window).

A decision that passes is remembered before anything is called (so a replay, even
after a crash in the middle, is never applied twice), then either written up as
``dry_run`` or handed to the executor, whose result makes it ``applied`` or ``failed``.

The mapping file it plans from is parsed by :mod:`schemas.config.actuation`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import Decision
from schemas.config.actuation import (
    MAX_WEIGHT,
    SUPPORTED_ACTIONS,
    ActuationConfig,
    RateLimit,
    ServiceTarget,
)

__all__ = [
    "OUTCOMES",
    "ActuationPolicy",
    "AuditRecord",
    "DecisionMemory",
    "Execution",
    "RateLimiter",
    "Step",
    "action_call_record",
    "decode_decision",
    "drained_weights",
    "restored_weights",
    "shifted_weights",
    "unhandled_record",
    "weight_changes",
]

OUTCOMES = ("applied", "dry_run", "refused", "failed", "duplicate", "pending", "rejected")
"""What became of a decision, as written in its audit record.

``pending`` is a recommendation waiting for a human's approval, ``rejected`` one a human
turned down (:mod:`models.policy.approvals`).
"""


@dataclass(frozen=True, slots=True)
class Step:
    """One planned call: to an AWS API (boto3 client name and operation) or to the hook.

    ``params`` are the call's keyword arguments, except for the Route 53 reweighting,
    whose new weights depend on the current ones: the executor reads them and applies
    :func:`shifted_weights` or :func:`restored_weights`. ``idempotent`` says whether
    making the call twice is as good as once (which decides what is retried).
    ``reconciling`` marks a step whose decision was written down before a call whose outcome
    a crash left unknown: the executor first looks whether it took effect.
    """

    api: str
    operation: str
    resource: str
    aws_region: str | None
    params: Mapping[str, Any]
    idempotent: bool
    reconciling: bool = False

    def describe(self) -> dict[str, Any]:
        """The call as the audit record shows it."""
        return {
            "api": self.api,
            "operation": self.operation,
            "region": self.aws_region,
            "params": dict(self.params),
        }


@dataclass(frozen=True, slots=True)
class Execution:
    """What happened when the executor made a :class:`Step`'s call(s).

    ``attempts`` counts every request sent, retries included; ``code`` is the AWS error
    code (or ``http_<status>``, ``exit_<status>``...) of a failure.
    """

    outcome: str
    reason: str
    request_id: str | None = None
    attempts: int = 0
    code: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of ``actions.audit``: what became of one decision, and why.

    ``call`` is the planned call (also for ``dry_run`` and most refusals, so the record
    says what would have been done); ``code`` is a refusal code or an AWS error code.
    ``approval`` is the human verdict (``verdict``, ``by``, ``reason``, ``ts``) the record
    answers, for a recommendation's approval or rejection. ``plugin`` names the action
    plugin whose call the record reports (:func:`action_call_record`); the key is absent
    from the actuator's own records.
    """

    decision_id: str | None
    kind: str | None
    action: str | None
    subject: Mapping[str, str]
    mode: str | None
    resource: str | None
    outcome: str
    reason: str
    code: str | None
    aws_request_id: str | None
    attempts: int
    call: Mapping[str, Any] | None
    dry_run: bool
    ts: float
    approval: Mapping[str, Any] | None = None
    plugin: str | None = None

    @classmethod
    def about(cls, decision: Decision, **fields: Any) -> AuditRecord:
        """The record of what became of ``decision``: its identity, and ``fields``."""
        return cls(
            decision_id=decision.decision_id,
            kind=decision.kind,
            action=decision.action,
            subject=dict(decision.subject),
            mode=decision.mode,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-encodable dict."""
        out = {
            "decision_id": self.decision_id,
            "kind": self.kind,
            "action": self.action,
            "subject": dict(self.subject),
            "mode": self.mode,
            "resource": self.resource,
            "outcome": self.outcome,
            "reason": self.reason,
            "code": self.code,
            "aws_request_id": self.aws_request_id,
            "attempts": self.attempts,
            "call": None if self.call is None else dict(self.call),
            "dry_run": self.dry_run,
            "ts": self.ts,
            "approval": None if self.approval is None else dict(self.approval),
        }
        if self.plugin is not None:
            out["plugin"] = self.plugin
        return out

    def to_bytes(self) -> bytes:
        """The record as JSON."""
        return orjson.dumps(self.to_dict())


def decode_decision(raw: bytes | None) -> Decision | str:
    """The decision in a message of a decision topic, or why it is not one; never raises.

    >>> decode_decision(b'{"kind": "scaling"}')
    "decision lacks field 'decision_id'"
    """
    try:
        decision = Decision.from_bytes(raw or b"")
    except (ValueError, TypeError) as exc:
        return str(exc)[:200]
    typed = (
        isinstance(decision.decision_id, str)
        and isinstance(decision.action, str)
        and isinstance(decision.params, dict)
        and isinstance(decision.subject, dict)
        and all(isinstance(v, str) for v in decision.subject.values())
    )
    if not typed:
        return (
            "decision_id and action must be strings, subject an object of strings, params an object"
        )
    return decision


def action_call_record(
    decision: Decision, plugin: str, ok: bool, detail: str, now: float
) -> AuditRecord:
    """The audit record of one call of an action plugin with ``decision``.

    ``applied`` or ``failed``, with the plugin's one-line ``detail`` as the reason. Plugins
    are bound explicitly in the plugins file, so the actuator's dry run does not apply to
    them.

    >>> from schemas.decision import decision_id_for
    >>> decision = Decision(
    ...     decision_id=decision_id_for("remediation", {"service": "api"}, "restart", {}, [1]),
    ...     kind="remediation", ts=1.0, subject={"service": "api"}, action="restart",
    ...     params={}, mode="auto", confidence=0.9, reason="Crash loop.", evidence={},
    ...     model_version="t",
    ... )
    >>> record = action_call_record(decision, "webhook", False, "HTTP 500 from https://h", 2.0)
    >>> record.outcome, record.code, record.to_dict()["plugin"]
    ('failed', 'action_failed', 'webhook')
    """
    return AuditRecord.about(
        decision,
        resource=None,
        outcome="applied" if ok else "failed",
        reason=detail,
        code=None if ok else "action_failed",
        aws_request_id=None,
        attempts=1,
        call={"plugin": plugin},
        dry_run=False,
        ts=now,
        plugin=plugin,
    )


def unhandled_record(
    outcome: str,
    code: str,
    reason: str,
    now: float,
    dry_run: bool,
    decision: Decision | None = None,
) -> AuditRecord:
    """The audit record of a message the gates never judged.

    That is a message on a decision topic that is not a decision (``refused``,
    ``invalid_decision``), or one the actuator itself failed on (``failed``,
    ``processing_error``).
    """
    return AuditRecord(
        decision_id=None if decision is None else decision.decision_id,
        kind=None if decision is None else decision.kind,
        action=None if decision is None else decision.action,
        subject={} if decision is None else dict(decision.subject),
        mode=None if decision is None else decision.mode,
        resource=None,
        outcome=outcome,
        reason=reason,
        code=code,
        aws_request_id=None,
        attempts=0,
        call=None,
        dry_run=dry_run,
        ts=now,
    )


def _call_of(step: Step) -> str:
    """What decisions made in order must not undo out of order: a resource and an operation."""
    return f"{step.resource} {step.operation}"


class DecisionMemory:
    """The decisions handled for one subject: ``decision_id`` -> (outcome, when), bounded;
    and, per call (resource and operation), the event time of the newest decision that
    passed every gate to make it.

    Only decisions that got past every gate are remembered (refusals are cheap to repeat
    and would crowd the memory out): the oldest entry goes when ``capacity`` is reached.
    The newest event times are one per call the subject's decisions make, a handful.

    Examples
    --------
    >>> memory = DecisionMemory(capacity=2)
    >>> memory.remember("a", "applied", 1.0); memory.remember("b", "applied", 2.0)
    >>> memory.remember("c", "dry_run", 3.0)
    >>> memory.get("a"), memory.get("c")
    (None, ('dry_run', 3.0))
    >>> memory.passed("autoscaling:us-east-1:web SetDesiredCapacity", 1700000000.0)
    >>> restored = DecisionMemory.from_bytes(memory.to_bytes(), capacity=2)
    >>> restored.get("b"), restored.newest("autoscaling:us-east-1:web SetDesiredCapacity")
    (('applied', 2.0), 1700000000.0)
    """

    def __init__(self, capacity: int = 256) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._newest: dict[str, float] = {}

    def passed(self, call: str, ts: float) -> None:
        """A decision of event time ``ts`` passed every gate to make ``call``."""
        self._newest[call] = max(ts, self._newest.get(call, ts))

    def newest(self, call: str) -> float | None:
        """The event time of the newest decision that passed every gate to make ``call``."""
        return self._newest.get(call)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, decision_id: str) -> tuple[str, float] | None:
        """The outcome and time a decision was handled, if it is remembered."""
        return self._entries.get(decision_id)

    def remember(self, decision_id: str, outcome: str, ts: float) -> None:
        """Remember (or update) a decision's outcome as the newest entry."""
        self._entries[decision_id] = (outcome, ts)
        self._entries.move_to_end(decision_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def to_bytes(self) -> bytes:
        """The memory as JSON, oldest entry first (the value stored in the table)."""
        entries = [[k, o, t] for k, (o, t) in self._entries.items()]
        return orjson.dumps({"entries": entries, "newest": self._newest})

    @classmethod
    def from_bytes(cls, data: bytes | None, capacity: int = 256) -> DecisionMemory:
        """Rebuild a memory written by :meth:`to_bytes` (or, before the newest event times
        were kept, a list of its entries); ``None`` gives an empty one."""
        memory = cls(capacity)
        stored = orjson.loads(data) if data else {}
        if isinstance(stored, list):
            stored = {"entries": stored}
        for decision_id, outcome, ts in stored.get("entries", ()):
            memory.remember(decision_id, outcome, ts)
        memory._newest.update(stored.get("newest", {}))
        return memory


class RateLimiter:
    """Per-resource sliding-window limits: at most N admitted actions per window.

    The first override whose pattern matches a resource gives its limit, else the default.
    Memory is bounded by the resources in the mapping file times their ``max_actions``.

    Examples
    --------
    >>> limiter = RateLimiter(RateLimit(2, 60.0), [("route53:*", RateLimit(1, 300.0))])
    >>> [limiter.admit("autoscaling:us-east-1:a", t) for t in (0.0, 1.0, 2.0, 61.0)]
    [True, True, False, True]
    >>> [limiter.admit("route53:Z1", t) for t in (0.0, 200.0, 300.0)]
    [True, False, True]
    """

    def __init__(self, default: RateLimit, overrides: Sequence[tuple[str, RateLimit]] = ()) -> None:
        self.default = default
        self.overrides = tuple(overrides)
        self._admitted: dict[str, deque[float]] = {}

    def limit_for(self, resource: str) -> RateLimit:
        """The limit that applies to ``resource``."""
        for pattern, limit in self.overrides:
            if fnmatch.fnmatchcase(resource, pattern):
                return limit
        return self.default

    def admit(self, resource: str, now: float) -> bool:
        """Count an action on ``resource`` at ``now`` if the limit allows it; say whether it did."""
        limit = self.limit_for(resource)
        stamps = self._admitted.setdefault(resource, deque())
        while stamps and stamps[0] <= now - limit.window_s:
            stamps.popleft()
        if len(stamps) >= limit.max_actions:
            return False
        stamps.append(now)
        return True


def shifted_weights(current: Mapping[str, int], source: str, target: str) -> dict[str, int]:
    """Weights after moving all of ``source``'s weight onto ``target`` (capped at 255).

    >>> shifted_weights({"use1": 100, "euw1": 100, "aps1": 50}, "use1", "euw1")
    {'use1': 0, 'euw1': 200, 'aps1': 50}
    >>> shifted_weights({"use1": 200, "euw1": 100}, "use1", "euw1")["euw1"]
    255
    """
    new = dict(current)
    new[target] = min(MAX_WEIGHT, current.get(target, 0) + current.get(source, 0))
    new[source] = 0
    return new


def drained_weights(current: Mapping[str, int], source: str) -> dict[str, int]:
    """Weights after ``source`` is drained: its traffic spreads over the others by weight.

    Route 53 shares traffic in proportion to the weights, so the others need no change;
    when they are all 0 Route 53 would share equally among every set, the drained one
    included, so the executor refuses that case.

    >>> drained_weights({"use1": 100, "euw1": 100, "aps1": 50}, "use1")
    {'use1': 0, 'euw1': 100, 'aps1': 50}
    """
    return {**current, source: 0}


def restored_weights(
    current: Mapping[str, int], normal: Mapping[str, int], recovered: str, source: str | None
) -> dict[str, int]:
    """Weights after ``recovered`` gets its normal weight back, taken from ``source``.

    ``source`` gives back what it took, but never goes below the lesser of its current and
    normal weights (so a source that has since failed itself is not brought back).

    >>> restored_weights({"use1": 0, "euw1": 200}, {"use1": 100, "euw1": 100}, "use1", "euw1")
    {'use1': 100, 'euw1': 100}
    >>> restored_weights({"use1": 0, "euw1": 0}, {"use1": 100, "euw1": 100}, "use1", "euw1")
    {'use1': 100, 'euw1': 0}
    """
    new = dict(current)
    moved = max(0, normal[recovered] - current.get(recovered, 0))
    new[recovered] = normal[recovered]
    if source is not None and source in current and source in normal:
        floor = min(current[source], normal[source])
        new[source] = max(floor, current[source] - moved)
    return new


def weight_changes(
    record_sets: Sequence[Mapping[str, Any]], weights: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Route 53 ``UPSERT`` changes giving each record set the weight ``weights`` says.

    ``record_sets`` are as ``list_resource_record_sets`` returns them; everything but
    the weight is kept, and sets whose weight is already right are left out.

    >>> sets = [{"Name": "a.", "Type": "A", "SetIdentifier": "x", "Weight": 5, "TTL": 60}]
    >>> weight_changes(sets, {"x": 0})[0]["ResourceRecordSet"]["Weight"]
    0
    >>> weight_changes(sets, {"x": 5})
    []
    """
    changes = []
    for record_set in record_sets:
        set_id = record_set.get("SetIdentifier")
        if set_id in weights and record_set.get("Weight") != weights[set_id]:
            changed = {**record_set, "Weight": weights[set_id]}
            changes.append({"Action": "UPSERT", "ResourceRecordSet": changed})
    return changes


class _Refusal(Exception):
    """Why a decision does not get its call; ``step`` is the call, when it was planned."""

    def __init__(self, code: str, reason: str, step: Step | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.step = step


def _service_step(
    target: str,
    name: str,
    aws_region: str,
    *,
    asg: tuple[str, dict[str, Any]] | None = None,
    ecs: tuple[str, dict[str, Any]],
    idempotent: bool,
) -> Step:
    """One call on a service's Auto Scaling group, or on its ECS service (``cluster/service``).

    ``asg`` and ``ecs`` are the call and its parameters for each kind of target, beside the
    group's name or the cluster and service; ``asg`` is ``None`` for an ECS-only action.
    """
    if target == "asg":
        if asg is None:
            raise ValueError(f"no Auto Scaling call for {name}")
        call, params = asg
        return Step(
            "autoscaling",
            call,
            f"autoscaling:{aws_region}:{name}",
            aws_region,
            {"AutoScalingGroupName": name, **params},
            idempotent=idempotent,
        )
    cluster, service = name.split("/")
    call, params = ecs
    return Step(
        "ecs",
        call,
        f"ecs:{aws_region}:{name}",
        aws_region,
        {"cluster": cluster, "service": service, **params},
        idempotent=idempotent,
    )


def _region_of(decision: Decision) -> str:
    region = decision.subject.get("region")
    if not region:
        raise _Refusal("no_mapping", "The decision names no region.")
    return region


def _int_param(decision: Decision, name: str) -> int:
    value = decision.params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Refusal(
            "bad_params", f"params.{name} must be a non-negative integer, got {value!r}."
        )
    return value


def _str_param(decision: Decision, name: str) -> str:
    value = decision.params.get(name)
    if not isinstance(value, str) or not value:
        raise _Refusal("bad_params", f"params.{name} must be a region name, got {value!r}.")
    return value


class ActuationPolicy:
    """The gates between a decision and its call, and the audit record of what became of it.

    Parameters
    ----------
    config
        The parsed mapping file.
    dry_run
        Plan, gate and audit every decision, but call nothing: the audit record says
        ``dry_run`` and shows the call that would have been made.

    Examples
    --------
    >>> from schemas.config.actuation import parse_actuation_config
    >>> config = parse_actuation_config('''
    ... aws_regions = { us-east = "us-east-1" }
    ... [services.search]
    ... target = "asg"
    ... resources = { us-east = "search-use1" }
    ... [allow]
    ... actions = ["scaling:scale_out"]
    ... resources = ["autoscaling:*"]
    ... ''')
    >>> policy = ActuationPolicy(config, dry_run=True)
    >>> decision = Decision("0" * 32, "scaling", 1.0, {"service": "search", "region": "us-east"},
    ...     "scale_out", {"desired_replicas": 7}, "auto", 0.9, "Demand rises.", {}, "m1")
    >>> memory = DecisionMemory()
    >>> record = policy.screen(decision, memory, now=10.0)
    >>> record.outcome, record.resource, record.call["params"]["DesiredCapacity"]
    ('dry_run', 'autoscaling:us-east-1:search-use1', 7)
    >>> policy.screen(decision, memory, now=11.0).outcome
    'duplicate'
    """

    def __init__(self, config: ActuationConfig, *, dry_run: bool = True) -> None:
        self.config = config
        self.dry_run = dry_run
        self.limiter = RateLimiter(config.rate_limit, config.rate_limits)

    def new_memory(self, data: bytes | None = None) -> DecisionMemory:
        """A subject's memory, sized as the mapping file says, from its stored bytes."""
        return DecisionMemory.from_bytes(data, self.config.remember)

    def screen(self, decision: Decision, memory: DecisionMemory, now: float) -> Step | AuditRecord:
        """Gate ``decision``: the :class:`Step` to execute, or its final audit record.

        A decision that passes every gate is remembered in ``memory`` before this
        returns (as ``dry_run``, or as ``pending`` until :meth:`conclude`), and counted
        by the rate limiter: persist ``memory`` before executing the step.

        A decision remembered ``pending`` was written down, and its worker died before
        its outcome was: the call may or may not have been made. It is reconciled: an
        idempotent step is returned ``reconciling`` (the executor looks whether it took
        effect before calling), any other is audited ``failed`` (``outcome_unknown``) for a
        human to check, never repeated.
        """
        seen = memory.get(decision.decision_id)
        if seen is not None and seen[0] == "pending":
            return self._reconcile(decision, memory, now)
        if seen is not None:
            outcome, when = seen
            return self._record(
                decision, "duplicate", "duplicate",
                f"Decision already handled ({outcome}) at {when:.3f}; not applied again.",
                now,
            )  # fmt: skip
        try:
            step = self._gate(decision, now, memory)
        except _Refusal as refusal:
            return self._record(
                decision, "refused", refusal.code, refusal.reason, now, step=refusal.step
            )
        memory.passed(_call_of(step), decision.ts)
        if self.dry_run:
            memory.remember(decision.decision_id, "dry_run", now)
            return self._record(
                decision, "dry_run", None,
                f"Dry run: would call {step.api}.{step.operation} on {step.resource}.",
                now, step=step,
            )  # fmt: skip
        memory.remember(decision.decision_id, "pending", now)
        return step

    def _reconcile(
        self, decision: Decision, memory: DecisionMemory, now: float
    ) -> Step | AuditRecord:
        try:
            step = self._gate(decision, now, memory)
        except _Refusal as refusal:
            memory.remember(decision.decision_id, "refused", now)
            return self._record(
                decision, "refused", refusal.code, refusal.reason, now, step=refusal.step
            )
        if not step.idempotent:
            memory.remember(decision.decision_id, "failed", now)
            return self._record(
                decision, "failed", "outcome_unknown",
                f"The worker died during {step.api}.{step.operation} on {step.resource}; "
                "its outcome is unknown and it is not repeated: check the resource.",
                now, step=step,
            )  # fmt: skip
        return dataclasses.replace(step, reconciling=True)

    def conclude(
        self,
        decision: Decision,
        step: Step,
        execution: Execution,
        memory: DecisionMemory,
        now: float,
    ) -> AuditRecord:
        """Remember how ``step`` went and write the decision's audit record."""
        memory.remember(decision.decision_id, execution.outcome, now)
        return self._record(
            decision,
            execution.outcome,
            execution.code,
            execution.reason,
            now,
            step=step,
            request_id=execution.request_id,
            attempts=execution.attempts,
        )

    def _gate(self, decision: Decision, now: float, memory: DecisionMemory) -> Step:
        if decision.mode != "auto":
            raise _Refusal(
                "mode_recommend",
                f"Mode is {decision.mode}: the decision is a recommendation for a human.",
            )
        action = f"{decision.kind}:{decision.action}"
        if action not in SUPPORTED_ACTIONS:
            raise _Refusal("unsupported_action", f"The actuator has no call for {action}.")
        if action not in self.config.allowed_actions:
            raise _Refusal("action_not_allowed", f"{action} is not in the allow-list of actions.")
        step = self._plan(decision)
        if not any(fnmatch.fnmatchcase(step.resource, p) for p in self.config.allowed_resources):
            raise _Refusal(
                "resource_not_allowed",
                f"{step.resource} is not in the allow-list of resources.",
                step,
            )
        newest = memory.newest(_call_of(step))
        if newest is not None and decision.ts < newest:
            # Read late (a message a restart dropped, read again after later ones): its call
            # now would undo what the newer decision's did.
            raise _Refusal(
                "superseded",
                f"A newer decision (event time {newest:.3f}) already passed to make "
                f"{step.api}.{step.operation} on {step.resource}; this older one would undo it.",
                step,
            )
        if not self.limiter.admit(step.resource, now):
            limit = self.limiter.limit_for(step.resource)
            raise _Refusal(
                "rate_limited",
                f"{step.resource} already had {limit.max_actions} action(s) in the last "
                f"{limit.window_s:g} s.",
                step,
            )
        return step

    def _plan(self, decision: Decision) -> Step:
        """The call a supported decision maps to; refused when unmapped or malformed."""
        if decision.kind == "scaling":
            return self._plan_scaling(decision)
        if decision.kind in ("failover", "failback"):
            return self._plan_failover(decision)
        if decision.action == "restart_instance":
            return self._plan_restart(decision)
        if decision.action == "scale_out":
            return self._plan_scale_step(decision)
        if decision.action == "failover_region":
            return self._plan_drain(decision)
        if decision.action == "clear_cache":
            return self._plan_clear_cache(decision)
        return self._plan_rollback(decision)

    def _service_resource(self, decision: Decision) -> tuple[ServiceTarget, str, str]:
        service = decision.subject.get("service")
        region = _region_of(decision)
        target = self.config.services.get(service or "")
        if target is None:
            raise _Refusal("no_mapping", f"The mapping file has no service {service!r}.")
        name = target.resources.get(region)
        aws_region = self.config.aws_regions.get(region)
        if name is None or aws_region is None:
            raise _Refusal(
                "no_mapping", f"The mapping file has no resource of {service} in {region}."
            )
        return target, name, aws_region

    def _plan_scaling(self, decision: Decision) -> Step:
        target, name, aws_region = self._service_resource(decision)
        desired = _int_param(decision, "desired_replicas")
        return _service_step(
            target.target, name, aws_region,
            asg=("set_desired_capacity", {"DesiredCapacity": desired, "HonorCooldown": False}),
            ecs=("update_service", {"desiredCount": desired}),
            idempotent=True,
        )  # fmt: skip

    def _plan_restart(self, decision: Decision) -> Step:
        target, name, aws_region = self._service_resource(decision)
        if target.target != "ecs":
            raise _Refusal(
                "no_mapping",
                f"restart_instance needs an ECS service; {decision.subject.get('service')} is "
                "an Auto Scaling group.",
            )
        # A second forced deployment restarts every task again: not idempotent.
        return _service_step(
            target.target, name, aws_region,
            ecs=("update_service", {"forceNewDeployment": True}),
            idempotent=False,
        )  # fmt: skip

    def _plan_scale_step(self, decision: Decision) -> Step:
        """A remediation's scale-out: ``scale_out_step`` more replicas than there are now."""
        target, name, aws_region = self._service_resource(decision)
        step = self.config.remediation.scale_out_step
        # Read-modify-write: a second call adds again, so it is not idempotent.
        return _service_step(
            target.target, name, aws_region,
            asg=("add_capacity", {"Add": step}),
            ecs=("add_capacity", {"Add": step}),
            idempotent=False,
        )  # fmt: skip

    def _plan_drain(self, decision: Decision) -> Step:
        """A remediation's failover: the region's traffic spread over the others it may go to.

        A remediation decision knows the failing region, not where its traffic may go; each
        Route 53 record (one per data class) lists only the regions allowed to serve it, so
        draining within a record keeps data residency.
        """
        region = _region_of(decision)
        if self.config.arc is not None:
            controls = self.config.arc.routing_controls.get(region, {})
            if not controls:
                raise _Refusal("no_mapping", f"No routing control for {region}.")
            arns = sorted(controls.values())
            return Step(
                "route53-recovery-cluster",
                "update_routing_control_states",
                f"arc:{arns[0].split('/routingcontrol/')[0]}",
                None,
                {"UpdateRoutingControlStateEntries": [
                    {"RoutingControlArn": arn, "RoutingControlState": "Off"} for arn in arns
                ]},
                idempotent=True,
            )  # fmt: skip
        if self.config.route53 is None:
            raise _Refusal(
                "no_mapping", "The mapping file configures no failover (route53 or arc)."
            )
        zone = self.config.route53.hosted_zone_id
        drains = [
            {"name": r.name, "type": r.type, "from": r.set_identifiers[region]}
            for r in self.config.route53.records
            if region in r.set_identifiers and len(r.set_identifiers) > 1
        ]
        if not drains:
            raise _Refusal(
                "no_mapping", f"No Route 53 record has another region to take {region}'s traffic."
            )
        return Step(
            "route53",
            "change_resource_record_sets",
            f"route53:{zone}",
            None,
            {"HostedZoneId": zone, "reweight": "drain_region", "records": drains},
            idempotent=True,
        )

    def _plan_clear_cache(self, decision: Decision) -> Step:
        """An SSM Run Command to the service's instances in the decision's region."""
        command = self.config.remediation.clear_cache
        service, region = decision.subject.get("service"), _region_of(decision)
        aws_region = self.config.aws_regions.get(region)
        if command is None or not service or aws_region is None:
            raise _Refusal(
                "no_mapping",
                f"The mapping file has no clear_cache command for {service} in {region}.",
            )
        return Step(
            "ssm",
            "send_command",
            f"ssm:{aws_region}:{command.document}/{service}",
            aws_region,
            {
                "DocumentName": command.document,
                "Targets": [{"Key": f"tag:{command.target_tag}", "Values": [service]}],
                "Parameters": {k: list(v) for k, v in command.parameters.items()},
                "Comment": f"paas-autopilot {decision.decision_id}",
            },
            idempotent=False,
        )

    def _plan_rollback(self, decision: Decision) -> Step:
        hook = self.config.rollback
        service, region = decision.subject.get("service"), _region_of(decision)
        if hook is None or not service:
            raise _Refusal("no_mapping", "The mapping file has no rollback hook for it.")
        return Step(
            "hook",
            "rollback",
            f"rollback:{service}/{region}",
            None,
            {"service": service, "region": region, "decision_id": decision.decision_id},
            idempotent=False,
        )

    def _plan_failover(self, decision: Decision) -> Step:
        data_classes = decision.params.get("data_classes")
        if not isinstance(data_classes, list) or not all(isinstance(d, str) for d in data_classes):
            raise _Refusal("bad_params", "params.data_classes must be a list of data classes.")
        if decision.action == "shift_traffic":
            source, target = _str_param(decision, "from"), _str_param(decision, "to")
            moves = {dc: (source, target) for dc in data_classes}
        else:
            recovered = _str_param(decision, "to")
            sources = decision.params.get("from")
            if not isinstance(sources, dict):
                raise _Refusal("bad_params", "params.from must map data classes to regions.")
            moves = {
                dc: (src if isinstance(src := sources.get(dc), str) else None, recovered)
                for dc in data_classes
            }
        if not moves:
            raise _Refusal("bad_params", "The decision moves no data class.")
        if self.config.arc is not None:
            return self._plan_arc(decision, moves)
        if self.config.route53 is not None:
            return self._plan_route53(decision, moves)
        raise _Refusal("no_mapping", "The mapping file configures no failover (route53 or arc).")

    def _plan_arc(self, decision: Decision, moves: Mapping[str, tuple[str | None, str]]) -> Step:
        assert self.config.arc is not None
        controls = self.config.arc.routing_controls
        states: dict[str, str] = {}
        for dc, (source, target) in sorted(moves.items()):
            on = controls.get(target, {}).get(dc)
            if on is None:
                raise _Refusal("no_mapping", f"No routing control for {dc} in {target}.")
            if decision.action == "shift_traffic":
                off = controls.get(source or "", {}).get(dc)
                if off is None:
                    raise _Refusal("no_mapping", f"No routing control for {dc} in {source}.")
                states[off] = "Off"
            states[on] = "On"
        entries = [
            {"RoutingControlArn": arn, "RoutingControlState": state}
            for arn, state in states.items()
        ]
        panel = next(iter(states)).split("/routingcontrol/")[0]
        return Step(
            "route53-recovery-cluster",
            "update_routing_control_states",
            f"arc:{panel}",
            None,
            {"UpdateRoutingControlStateEntries": entries},
            idempotent=True,
        )

    def _plan_route53(
        self, decision: Decision, moves: Mapping[str, tuple[str | None, str]]
    ) -> Step:
        assert self.config.route53 is not None
        zone = self.config.route53.hosted_zone_id
        reweights = []
        for record in self.config.route53.records:
            if record.data_class not in moves:
                continue
            source, target = moves[record.data_class]
            ids = record.set_identifiers
            if target not in ids or (decision.action == "shift_traffic" and source not in ids):
                raise _Refusal(
                    "no_mapping",
                    f"{record.name} {record.type} has no weighted record set for "
                    f"{source if target in ids else target}.",
                )
            entry: dict[str, Any] = {"name": record.name, "type": record.type, "to": ids[target]}
            if decision.action == "shift_traffic":
                entry["from"] = ids[source or ""]
            else:
                entry["from"] = ids.get(source or "")
                entry["normal"] = {ids[r]: w for r, w in record.weights.items()}
            reweights.append(entry)
        if not reweights:
            raise _Refusal(
                "no_mapping", f"No Route 53 record carries {', '.join(sorted(moves))} traffic."
            )
        return Step(
            "route53",
            "change_resource_record_sets",
            f"route53:{zone}",
            None,
            {"HostedZoneId": zone, "reweight": decision.action, "records": reweights},
            idempotent=True,
        )

    def _record(
        self,
        decision: Decision,
        outcome: str,
        code: str | None,
        reason: str,
        now: float,
        *,
        step: Step | None = None,
        request_id: str | None = None,
        attempts: int = 0,
    ) -> AuditRecord:
        return AuditRecord.about(
            decision,
            resource=None if step is None else step.resource,
            outcome=outcome,
            reason=reason,
            code=code,
            aws_request_id=request_id,
            attempts=attempts,
            call=None if step is None else step.describe(),
            dry_run=self.dry_run,
            ts=now,
        )
