"""The actuator's mapping file: which AWS resource a decision changes, and the limits on it.

The file (``AUTOPILOT_ACTUATOR_CONFIG``) is TOML; ``streams/config/actuation.example.toml``
documents every key. Unknown keys are errors, so a typo cannot silently switch a safety off,
and every error names the file, the line and the key, e.g.
``actuation.toml:31: allow.actions[0]: 'scaling:scale_up' is not one of ...``.

What the actuator does with a decision, given this mapping, is the policy of
:mod:`models.policy.actuation`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclasses_field
from pathlib import Path
from typing import Any

from schemas.config.toml import ConfigError, Table, Value, load, parse

__all__ = [
    "ADVISORY_ACTIONS",
    "ADVISORY_KINDS",
    "DEFAULT_APPROVAL_WINDOWS",
    "MAX_WEIGHT",
    "SUPPORTED_ACTIONS",
    "ActuationConfig",
    "ActuationConfigError",
    "ArcEndpoint",
    "ArcFailover",
    "CacheCommand",
    "RateLimit",
    "RemediationSettings",
    "RetryPolicy",
    "RollbackHook",
    "Route53Failover",
    "ServiceTarget",
    "WeightedRecord",
    "load_actuation_config",
    "parse_actuation_config",
]

SUPPORTED_ACTIONS = (
    "scaling:scale_out",
    "scaling:scale_in",
    "failover:shift_traffic",
    "failback:return_traffic",
    "remediation:restart_instance",
    "remediation:rollback_deploy",
    "remediation:scale_out",
    "remediation:failover_region",
    "remediation:clear_cache",
)
"""The ``kind:action`` pairs the actuator can map to a call; anything else is refused."""

ADVISORY_KINDS = ("scheduled_scaling", "rightsize", "budget", "failover_blocked", "anomaly",
                  "slo_burn", "risk")  # fmt: skip
"""Decision kinds that inform a human (forecasts, alerts, plans) and never ask for a call.

A ``risk`` decision's action is a suggestion ahead of a breach (``expand_volume``...): a
person weighs it; when the breach comes, the scaling and remediation policies act.
"""
ADVISORY_ACTIONS = ("remediation:open_incident",)
"""Actions of actionable kinds that hand the problem to a human instead of acting."""

DEFAULT_APPROVAL_WINDOWS = {"scaling": 300.0, "failover": 900.0, "failback": 900.0,
                            "remediation": 600.0}  # fmt: skip
"""Seconds after a recommendation is decided within which an approval may still apply it.

Past that the world has moved on (a scale-out for yesterday's peak, a failover from an
outage long over) and the approval is refused; ``[approvals]`` in the file changes them.
"""

MAX_WEIGHT = 255
"""The largest weight Route 53 accepts on a weighted record."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_TARGETS = ("asg", "ecs")


class ActuationConfigError(ConfigError):
    """The mapping file cannot be used; the message names the file, the line and the key."""


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """What a scaling (or restart) decision for a service changes, per platform region.

    ``target`` is ``asg`` (resources are Auto Scaling group names) or ``ecs``
    (resources are ``cluster/service``).
    """

    target: str
    resources: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class WeightedRecord:
    """A Route 53 record name and type with one weighted record set per region."""

    name: str
    type: str
    data_class: str
    set_identifiers: Mapping[str, str]
    weights: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Route53Failover:
    """Failover by shifting weight between the per-region record sets of one hosted zone."""

    hosted_zone_id: str
    records: tuple[WeightedRecord, ...]


@dataclass(frozen=True, slots=True)
class ArcEndpoint:
    """One Route 53 ARC cluster endpoint and the AWS region to sign for."""

    url: str
    region: str


@dataclass(frozen=True, slots=True)
class ArcFailover:
    """Failover by Route 53 ARC routing controls: region -> data class -> routing control ARN."""

    endpoints: tuple[ArcEndpoint, ...]
    routing_controls: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class RollbackHook:
    """What ``rollback_deploy`` runs: a command (argv, no shell) or a URL to POST to."""

    command: tuple[str, ...] | None
    url: str | None
    timeout_s: float


@dataclass(frozen=True, slots=True)
class CacheCommand:
    """What ``clear_cache`` sends: an SSM Run Command document, to instances tagged by service.

    ``parameters`` are the document's parameters as SSM takes them (name -> list of strings);
    the targets are the instances whose tag ``target_tag`` is the decision's service.
    """

    document: str
    parameters: Mapping[str, tuple[str, ...]]
    target_tag: str


@dataclass(frozen=True, slots=True)
class RemediationSettings:
    """How the remediation actions without a mapping of their own are carried out.

    ``scale_out_step`` replicas are added by ``remediation:scale_out`` (a remediation
    decision says *that* a service needs more capacity, not how much);
    ``clear_cache`` is ``None`` when the file configures no cache-clearing command.
    """

    scale_out_step: int = 1
    clear_cache: CacheCommand | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_actions`` actions on one resource in any ``window_s`` seconds."""

    max_actions: int
    window_s: float


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which AWS errors are retried, how often and after what pause.

    A request AWS rejected without acting on it (throttling, a conflicting operation in
    progress, an endpoint that could not be reached) is always safe to send again. One
    whose fate is unknown (a timeout waiting for the answer, a server error) is sent
    again only when repeating it cannot do harm, i.e. the call is idempotent. Anything
    else (access denied, a missing resource, an invalid value) is final.

    Examples
    --------
    >>> policy = RetryPolicy(max_attempts=3, base_s=0.5, cap_s=1.5)
    >>> policy.should_retry("Throttling", attempt=1, idempotent=False)
    True
    >>> policy.should_retry("Throttling", attempt=3, idempotent=False)
    False
    >>> policy.should_retry("ReadTimeoutError", attempt=1, idempotent=False)
    False
    >>> policy.should_retry("AccessDenied", attempt=1, idempotent=True)
    False
    >>> [policy.delay(attempt, 1.0) for attempt in (1, 2, 3, 4)]
    [0.5, 1.0, 1.5, 1.5]
    """

    max_attempts: int = 5
    base_s: float = 0.2
    cap_s: float = 5.0

    REJECTED = frozenset(
        {
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottled",
            "RequestThrottledException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "PriorRequestNotComplete",
            "ScalingActivityInProgress",
            "ConflictException",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "http_429",
            "http_503",
            "hook_unreachable",
        }
    )
    """Error codes of requests AWS (or the hook) did not act on."""
    UNKNOWN_FATE = frozenset(
        {
            "ReadTimeoutError",
            "ConnectionClosedError",
            "ResponseParserError",
            "InternalError",
            "InternalFailure",
            "InternalServerError",
            "InternalServerException",
            "ServerException",
            "http_500",
            "http_502",
            "http_504",
        }
    )
    """Error codes of requests that may or may not have been acted on."""

    def should_retry(self, code: str, attempt: int, idempotent: bool) -> bool:
        """Whether failed attempt number ``attempt`` (from 1), with error ``code``, is retried."""
        if attempt >= self.max_attempts:
            return False
        return code in self.REJECTED or (idempotent and code in self.UNKNOWN_FATE)

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after failed attempt ``attempt``: capped exponential, full jitter.

        ``jitter`` in [0, 1] spreads retries of concurrent callers apart.
        """
        return jitter * min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class ActuationConfig:
    """The parsed mapping file. Build it with :func:`parse_actuation_config`."""

    aws_regions: Mapping[str, str]
    services: Mapping[str, ServiceTarget]
    route53: Route53Failover | None
    arc: ArcFailover | None
    rollback: RollbackHook | None
    allowed_actions: frozenset[str]
    allowed_resources: tuple[str, ...]
    rate_limit: RateLimit
    rate_limits: tuple[tuple[str, RateLimit], ...]
    retry: RetryPolicy
    remember: int
    remediation: RemediationSettings = RemediationSettings()
    approval_windows: Mapping[str, float] = dataclasses_field(
        default_factory=lambda: dict(DEFAULT_APPROVAL_WINDOWS)
    )

    def approval_window(self, kind: str) -> float:
        """Seconds after its decision within which a recommendation of ``kind`` may be approved.

        >>> parse_actuation_config('[approvals]\\nwindow_s = 60').approval_window("budget")
        60.0
        >>> parse_actuation_config('').approval_window("failover")
        900.0
        """
        return self.approval_windows.get(kind, self.approval_windows["*"])


_TOP_LEVEL = ("aws_regions", "services", "failover", "rollback", "allow", "rate_limit", "retry",
              "idempotency", "approvals", "remediation")  # fmt: skip
_WINDOW_BOUNDS = (1, 86_400)
_LIMIT_FIELDS = ("max_actions", "window_s")


def _per_region(value: Value, read: Callable[[Value], Any]) -> dict[str, Any]:
    """A table keyed by platform region names, each value checked by ``read``."""
    regions = value.table(of="region = value").items(_NAME, "a region name")
    return {region: read(item) for region, item in regions}


def _service_target(value: Value) -> ServiceTarget:
    table = value.table(("target", "resources"))
    target = table.required("target").one_of(_TARGETS)
    resources_value = table.get("resources", {})
    resources = _per_region(resources_value, Value.string)
    if target == "ecs":
        for region, resource in resources.items():
            cluster, _, service = resource.partition("/")
            if not cluster or not service or "/" in service:
                raise ConfigError(
                    f"must be cluster/service, got {resource!r}",
                    path=(*resources_value.path, region),
                )
    return ServiceTarget(target, resources)


def _weighted_record(value: Value) -> WeightedRecord:
    table = value.table(("name", "type", "data_class", "set_identifiers", "weights"))
    set_ids = _per_region(table.required("set_identifiers"), Value.string)
    weights_value = table.required("weights")
    weights = _per_region(weights_value, lambda v: v.number(0, MAX_WEIGHT, integer=True))
    if set(weights) != set(set_ids):
        raise weights_value.invalid("must give a weight to exactly the regions in set_identifiers")
    return WeightedRecord(
        name=table.required("name").string(),
        type=table.required("type").string(),
        data_class=table.get("data_class", "default").string(_NAME, "a data class"),
        set_identifiers=set_ids,
        weights=weights,
    )


def _route53(value: Value) -> Route53Failover:
    table = value.table(("hosted_zone_id", "records"))
    records = table.required("records").array("record tables", non_empty=True)
    return Route53Failover(
        hosted_zone_id=table.required("hosted_zone_id").string().removeprefix("/hostedzone/"),
        records=tuple(_weighted_record(record) for record in records),
    )


def _arc(value: Value) -> ArcFailover:
    table = value.table(("endpoints", "routing_controls"))
    endpoints = []
    for item in table.required("endpoints").array("{url, region} tables", non_empty=True):
        entry = item.table(("url", "region"))
        endpoints.append(
            ArcEndpoint(
                url=entry.required("url").string(), region=entry.required("region").string()
            )
        )

    def per_data_class(value: Value) -> dict[str, str]:
        controls = value.table(of="data class = routing control ARN")
        if not controls:
            raise value.invalid("must be a table of data class = routing control ARN")
        return {dc: arn.string() for dc, arn in controls.items(_NAME, "a data class")}

    controls = _per_region(table.required("routing_controls"), per_data_class)
    return ArcFailover(tuple(endpoints), controls)


def _rollback(value: Value) -> RollbackHook:
    table = value.table(("command", "url", "timeout_s"))
    if ("command" in table) == ("url" in table):
        raise value.invalid("needs exactly one of command (an array of strings) or url")
    command = url = None
    if "command" in table:
        argv = table.required("command").array("strings (argv, no shell)", non_empty=True)
        command = tuple(arg.string() for arg in argv)
    else:
        url_value = table.required("url")
        url = url_value.string()
        if not re.match(r"^https?://", url):
            raise url_value.invalid(f"must be an http(s) URL, got {url!r}")
    return RollbackHook(
        command=command, url=url, timeout_s=float(table.get("timeout_s", 300.0).number(1, 3600))
    )


def _rate_limit(table: Table) -> RateLimit:
    return RateLimit(
        max_actions=table.get("max_actions", 6).number(1, 10_000, integer=True),
        window_s=float(table.get("window_s", 600.0).number(1, 86_400 * 7)),
    )


def _allowed_actions(value: Value) -> frozenset[str]:
    actions = value.array("kind:action strings")
    return frozenset(action.one_of(SUPPORTED_ACTIONS) for action in actions)


def _approval_windows(value: Value) -> dict[str, float]:
    """Kind -> window; ``"*"`` is every kind the file and the defaults leave unnamed."""
    table = value.table(("window_s", "by_kind"))
    default = float(
        table.get("window_s", DEFAULT_APPROVAL_WINDOWS["failover"]).number(*_WINDOW_BOUNDS)
    )
    windows = {"*": default}
    if "window_s" not in table:
        windows.update(DEFAULT_APPROVAL_WINDOWS)
    by_kind = table.get("by_kind", {}).table(of="kind = seconds")
    for kind, item in by_kind.items(re.compile(r"^[a-z_]{1,32}$"), "a decision kind"):
        windows[kind] = float(item.number(*_WINDOW_BOUNDS))
    return windows


def _remediation(value: Value) -> RemediationSettings:
    table = value.table(("scale_out_step", "clear_cache"))
    clear_cache = None
    if "clear_cache" in table:
        cache = table.required("clear_cache").table(("document", "parameters", "target_tag"))
        params = cache.get("parameters", {}).table(of="parameter = [strings]")
        clear_cache = CacheCommand(
            document=cache.required("document").string(),
            parameters={
                name: tuple(item.string() for item in values.array("strings"))
                for name, values in params.items()
            },
            target_tag=cache.get("target_tag", "service").string(),
        )
    return RemediationSettings(
        scale_out_step=table.get("scale_out_step", 1).number(1, 1000, integer=True),
        clear_cache=clear_cache,
    )


def _build(doc: Value) -> ActuationConfig:
    top = doc.table(_TOP_LEVEL)
    services = top.get("services", {}).table(of="service tables").items(_NAME, "a service name")
    failover = top.get("failover", {}).table(("route53", "arc"))
    allow = top.get("allow", {}).table(("actions", "resources"))
    resources = allow.get("resources", []).array("resource patterns")
    limits = top.get("rate_limit", {}).table((*_LIMIT_FIELDS, "resources"))
    overrides = limits.get("resources", {}).table(of="pattern = {max_actions, window_s}")
    retry = top.get("retry", {}).table(("max_attempts", "base_s", "cap_s"))
    idempotency = top.get("idempotency", {}).table(("remember",))
    return ActuationConfig(
        aws_regions=_per_region(top.get("aws_regions", {}), Value.string),
        services={name: _service_target(item) for name, item in services},
        route53=_route53(failover.required("route53")) if "route53" in failover else None,
        arc=_arc(failover.required("arc")) if "arc" in failover else None,
        rollback=_rollback(top.required("rollback")) if "rollback" in top else None,
        allowed_actions=_allowed_actions(allow.get("actions", [])),
        allowed_resources=tuple(pattern.string() for pattern in resources),
        rate_limit=_rate_limit(limits),
        rate_limits=tuple(
            (pattern, _rate_limit(item.table(_LIMIT_FIELDS))) for pattern, item in overrides.items()
        ),
        retry=RetryPolicy(
            max_attempts=retry.get("max_attempts", 5).number(1, 20, integer=True),
            base_s=float(retry.get("base_s", 0.2).number(0, 60)),
            cap_s=float(retry.get("cap_s", 5.0).number(0, 300)),
        ),
        remember=idempotency.get("remember", 256).number(1, 100_000, integer=True),
        approval_windows=_approval_windows(top.get("approvals", {})),
        remediation=_remediation(top.get("remediation", {})),
    )


def parse_actuation_config(text: str, source: str = "<actuation config>") -> ActuationConfig:
    """Parse and validate a TOML mapping file.

    Raises
    ------
    ActuationConfigError
        ``source:line: key: problem`` for the first error, syntax or meaning.

    Examples
    --------
    >>> config = parse_actuation_config('''
    ... [services.checkout]
    ... target = "ecs"
    ... resources = { eu-west = "prod-euw1/checkout" }
    ... [rate_limit.resources."ecs:*"]
    ... max_actions = 2
    ... ''')
    >>> config.services["checkout"].target, config.rate_limit, config.rate_limits
    ('ecs', RateLimit(max_actions=6, window_s=600.0), (('ecs:*', RateLimit(max_actions=2, \
window_s=600.0)),))
    >>> parse_actuation_config('[allow]\\nactions = ["scaling:scale_up"]', "a.toml")
    Traceback (most recent call last):
    ...
    schemas.config.actuation.ActuationConfigError: a.toml:2: allow.actions[0]: must be one of \
scaling:scale_out, ..., got the string 'scaling:scale_up'
    """
    return parse(text, _build, source=source, error=ActuationConfigError)


def load_actuation_config(path: str | Path) -> ActuationConfig:
    """Read and validate the TOML mapping file at ``path``.

    Raises
    ------
    ActuationConfigError
        When the file is missing, unreadable or not a valid mapping (naming line and key).
    """
    return load(path, _build, error=ActuationConfigError, what="actuation mapping")
