"""Every action a policy can choose is either carried out by the actuator or is, by design,
for a human: the policies' menus, read from the source, against the actuator's mappings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models.policy import remediation
from models.policy.actuation import ActuationPolicy, DecisionMemory, Step
from schemas import DECISION_KINDS, Decision
from schemas.config.actuation import (
    ADVISORY_ACTIONS,
    ADVISORY_KINDS,
    SUPPORTED_ACTIONS,
    parse_actuation_config,
)

MODELS = Path(__file__).resolve().parents[2] / "models"
# Menus chosen at run time rather than written at the call: where each one is declared.
DYNAMIC_MENUS = {"remediation": remediation.ACTIONS}

FULL_MAPPING = """
aws_regions = { us-east = "us-east-1", eu-west = "eu-west-1" }

[services.checkout]
target = "ecs"
resources = { us-east = "prod/checkout", eu-west = "prod-euw1/checkout" }

[failover.route53]
hosted_zone_id = "Z1"

[[failover.route53.records]]
name = "api.example.com."
type = "A"
set_identifiers = { us-east = "use1", eu-west = "euw1" }
weights = { us-east = 100, eu-west = 100 }

[rollback]
command = ["rollback", "{service}"]

[remediation]
scale_out_step = 2

[remediation.clear_cache]
document = "clear-cache"
parameters = { level = ["all"] }

[allow]
resources = ["*"]

[rate_limit]
max_actions = 1000
"""


def _strings(node: ast.expr, names: dict[str, set[str]] | None = None) -> set[str] | None:
    """The string values an expression can take when written out; ``None`` if computed.

    ``names`` are the values of local names assigned written-out strings (``action = "a" if
    ... else "b"``).
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body, names), _strings(node.orelse, names)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.Name) and names and node.id in names:
        return names[node.id]
    return None


def _assigned(tree: ast.AST) -> dict[str, set[str]]:
    """Names assigned only written-out strings in ``tree``, and those strings."""
    found: dict[str, set[str] | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                values = _strings(node.value)
                known = found.get(target.id, set())
                found[target.id] = None if values is None or known is None else known | values
    return {name: values for name, values in found.items() if values}


def policy_menus() -> dict[str, set[str]]:
    """kind -> actions, from every call in models/ that names a literal kind and an action."""
    menus: dict[str, set[str]] = {}
    for path in sorted(MODELS.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        names = _assigned(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            words = {k.arg: k.value for k in node.keywords if k.arg in ("kind", "action")}
            kinds = _strings(words["kind"]) if "kind" in words else None
            if not kinds or "action" not in words:
                continue
            for kind in kinds:
                actions = _strings(words["action"], names)
                if actions is None:
                    # Computed: a human-facing kind, or one whose menu is declared.
                    assert kind in ADVISORY_KINDS or kind in DYNAMIC_MENUS, (
                        f"{path.name}:{node.lineno}: {kind} chooses its action at run time "
                        "from a menu this test does not know"
                    )
                    actions = set(DYNAMIC_MENUS.get(kind, ()))
                menus.setdefault(kind, set()).update(actions)
    return menus


def test_the_menus_are_found_where_the_policies_write_them() -> None:
    menus = policy_menus()
    assert set(menus) <= set(DECISION_KINDS)
    assert {"scale_out", "scale_in"} <= menus["scaling"]
    assert menus["failover"] == {"shift_traffic"} and menus["failback"] == {"return_traffic"}
    assert menus["remediation"] == set(remediation.ACTIONS)


def test_every_action_a_policy_can_choose_is_actuated_or_meant_for_a_human() -> None:
    uncovered = sorted(
        f"{kind}:{action}"
        for kind, actions in policy_menus().items()
        for action in actions
        if kind not in ADVISORY_KINDS
        and f"{kind}:{action}" not in SUPPORTED_ACTIONS
        and f"{kind}:{action}" not in ADVISORY_ACTIONS
    )
    assert uncovered == [], f"actions no actuator mapping carries out: {uncovered}"


PARAMS = {
    "scaling": {"desired_replicas": 5, "current_replicas": 3},
    "failover": {"from": "us-east", "to": "eu-west", "data_classes": ["default"]},
    "failback": {"from": {"default": "eu-west"}, "to": "us-east", "data_classes": ["default"]},
}


@pytest.mark.parametrize("pair", SUPPORTED_ACTIONS)
def test_every_supported_action_plans_a_call_from_a_complete_mapping(pair: str) -> None:
    kind, action = pair.split(":")
    text = FULL_MAPPING.replace('resources = ["*"]', f'actions = ["{pair}"]\nresources = ["*"]')
    policy = ActuationPolicy(parse_actuation_config(text), dry_run=False)
    subject = {"region": "us-east"} if kind in ("failover", "failback") else {
        "service": "checkout", "region": "us-east"}  # fmt: skip
    decision = Decision("c" * 32, kind, 1.0, subject, action, PARAMS.get(kind, {}), "auto",
                        0.9, "Because.", {}, "m1")  # fmt: skip
    step = policy.screen(decision, DecisionMemory(), 2.0)
    assert isinstance(step, Step), step


def test_remediation_actions_map_to_their_calls() -> None:
    text = FULL_MAPPING.replace(
        'resources = ["*"]',
        'actions = ["remediation:scale_out", "remediation:failover_region", '
        '"remediation:clear_cache"]\nresources = ["*"]',
    )
    policy = ActuationPolicy(parse_actuation_config(text), dry_run=False)

    def plan(action: str) -> Step:
        subject = {"service": "checkout", "region": "us-east"}
        d = Decision("d" * 32, "remediation", 1.0, subject, action, {}, "auto", 0.9, "Because.",
                     {}, "m1")  # fmt: skip
        step = policy.screen(d, DecisionMemory(), 2.0)
        assert isinstance(step, Step), step
        return step

    scale = plan("scale_out")
    assert (scale.api, scale.operation, scale.idempotent) == ("ecs", "add_capacity", False)
    assert scale.params == {"cluster": "prod", "service": "checkout", "Add": 2}
    drain = plan("failover_region")
    assert drain.params["reweight"] == "drain_region"
    assert drain.params["records"] == [{"name": "api.example.com.", "type": "A", "from": "use1"}]
    cache = plan("clear_cache")
    assert (cache.api, cache.operation, cache.resource) == (
        "ssm", "send_command", "ssm:us-east-1:clear-cache/checkout",
    )  # fmt: skip
    assert cache.params["Targets"] == [{"Key": "tag:service", "Values": ["checkout"]}]
    assert cache.params["Parameters"] == {"level": ["all"]}
