"""The actuation policy without AWS or Kafka: mapping, gates, memory, limits, retries, weights."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.policy.actuation import (
    ActuationPolicy,
    AuditRecord,
    DecisionMemory,
    Execution,
    RateLimiter,
    Step,
    decode_decision,
    restored_weights,
    shifted_weights,
    unhandled_record,
    weight_changes,
)
from schemas import Decision, decision_id_for
from schemas.config.actuation import (
    MAX_WEIGHT,
    ActuationConfigError,
    RateLimit,
    RetryPolicy,
    load_actuation_config,
    parse_actuation_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "streams" / "config" / "actuation.example.toml"

CONFIG = """
aws_regions = { us-east = "us-east-1", eu-west = "eu-west-1" }

[services.search]
target = "asg"
resources = { us-east = "search-use1" }

[services.checkout]
target = "ecs"
resources = { us-east = "prod/checkout", eu-west = "prod-euw1/checkout" }

[failover.route53]
hosted_zone_id = "/hostedzone/Z1"

[[failover.route53.records]]
name = "api.example.com."
type = "A"
set_identifiers = { us-east = "use1", eu-west = "euw1" }
weights = { us-east = 100, eu-west = 100 }

[[failover.route53.records]]
name = "eu.example.com."
type = "A"
data_class = "eu-personal"
set_identifiers = { eu-west = "eu-euw1" }
weights = { eu-west = 100 }

[rollback]
command = ["rollback", "{service}"]

[allow]
actions = ["scaling:scale_out", "scaling:scale_in", "failover:shift_traffic",
           "failback:return_traffic", "remediation:restart_instance",
           "remediation:rollback_deploy"]
resources = ["autoscaling:us-east-1:search-*", "ecs:*:prod/checkout", "route53:Z1",
             "rollback:*"]

[rate_limit]
max_actions = 2
window_s = 60
"""


def decision(
    kind: str = "scaling",
    action: str = "scale_out",
    params: dict | None = None,
    subject: dict | None = None,
    mode: str = "auto",
    basis: float = 1.0,
) -> Decision:
    subject = subject if subject is not None else {"service": "search", "region": "us-east"}
    params = params if params is not None else {"desired_replicas": 7, "current_replicas": 4}
    return Decision(
        decision_id=decision_id_for(kind, subject, action, params, [basis]),
        kind=kind,
        ts=basis,
        subject=subject,
        action=action,
        params=params,
        mode=mode,
        confidence=0.8,
        reason="Because the test says so.",
        evidence={},
        model_version="test",
    )


def policy(text: str = CONFIG, dry_run: bool = False) -> ActuationPolicy:
    return ActuationPolicy(parse_actuation_config(text), dry_run=dry_run)


def screen(p: ActuationPolicy, d: Decision, now: float = 100.0) -> Step | AuditRecord:
    return p.screen(d, DecisionMemory(), now)


def refusal(p: ActuationPolicy, d: Decision) -> AuditRecord:
    record = screen(p, d)
    assert isinstance(record, AuditRecord) and record.outcome == "refused", record
    return record


# --- the mapping file ---------------------------------------------------------------


def test_the_example_mapping_file_is_valid() -> None:
    config = load_actuation_config(EXAMPLE)
    assert config.services["search"].target == "asg"
    assert config.route53 is not None and config.route53.hosted_zone_id
    assert config.rollback is not None and config.rollback.command
    assert config.allowed_actions and config.allowed_resources
    assert config.rate_limits[0][0] == "route53:*"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[alow]\nactions = []", "alow: unknown key"),
        ("[allow]\nactions = ['scaling:scale_up']", "allow.actions[0]"),
        ("[allow]\nresource = []", "allow.resource: unknown key"),
        ("[services.a]\ntarget = 'k8s'", "services.a.target"),
        ("[services.a]\ntarget = 'ecs'\nresources = { us-east = 'svc' }", "cluster/service"),
        ("[rollback]\ntimeout_s = 5", "exactly one of command"),
        ("[rollback]\ncommand = 'rm -rf /'", "rollback.command"),
        ("[rollback]\nurl = 'ftp://x'", "rollback.url"),
        ("[rate_limit]\nmax_actions = 0", "rate_limit.max_actions"),
        ("[retry]\nmax_attempts = 1.5", "retry.max_attempts"),
        (
            "[failover.route53]\nhosted_zone_id = 'Z'\n[[failover.route53.records]]\n"
            "name = 'a.'\ntype = 'A'\nset_identifiers = { us-east = 'x' }\nweights = {}",
            "weights",
        ),
        ("x = ", "invalid TOML"),
    ],
)
def test_a_bad_mapping_file_is_refused_with_the_key_at_fault(text: str, where: str) -> None:
    with pytest.raises(ActuationConfigError, match=r"^m\.toml:\d+: ") as info:
        parse_actuation_config(text, "m.toml")
    assert where in str(info.value)


def test_a_missing_mapping_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(
        ActuationConfigError, match=r"nothing\.toml: no such actuation mapping file"
    ):
        load_actuation_config(tmp_path / "nothing.toml")


# --- gates -----------------------------------------------------------------------------


def test_an_auto_scaling_decision_becomes_set_desired_capacity() -> None:
    step = screen(policy(), decision())
    assert isinstance(step, Step)
    assert (step.api, step.operation, step.aws_region) == (
        "autoscaling",
        "set_desired_capacity",
        "us-east-1",
    )
    assert step.params == {
        "AutoScalingGroupName": "search-use1",
        "DesiredCapacity": 7,
        "HonorCooldown": False,
    }
    assert step.resource == "autoscaling:us-east-1:search-use1" and step.idempotent


def test_an_ecs_service_gets_update_service_and_a_restart_forces_a_deployment() -> None:
    p = policy()
    scale = screen(p, decision(subject={"service": "checkout", "region": "us-east"}))
    assert isinstance(scale, Step)
    assert (scale.api, scale.operation) == ("ecs", "update_service")
    assert scale.params == {"cluster": "prod", "service": "checkout", "desiredCount": 7}
    restart = screen(
        p,
        decision(
            "remediation", "restart_instance", {}, {"service": "checkout", "region": "us-east"}
        ),
    )
    assert isinstance(restart, Step)
    assert restart.params == {"cluster": "prod", "service": "checkout", "forceNewDeployment": True}
    assert not restart.idempotent


def test_a_recommendation_is_never_applied() -> None:
    record = refusal(policy(), decision(mode="recommend"))
    assert record.code == "mode_recommend" and "recommendation" in record.reason
    assert record.call is None and record.aws_request_id is None


def test_an_action_outside_the_allow_list_is_refused_with_its_reason() -> None:
    text = CONFIG.replace('actions = ["scaling:scale_out", "scaling:scale_in",', "actions = [")
    record = refusal(policy(text), decision(action="scale_in"))
    assert record.code == "action_not_allowed"
    assert "scaling:scale_in is not in the allow-list" in record.reason


def test_a_resource_outside_the_allow_list_is_refused_but_shows_the_call() -> None:
    text = CONFIG.replace('"autoscaling:us-east-1:search-*", ', "")
    record = refusal(policy(text), decision())
    assert record.code == "resource_not_allowed"
    assert record.resource == "autoscaling:us-east-1:search-use1"
    assert record.call is not None and record.call["params"]["DesiredCapacity"] == 7


@pytest.mark.parametrize(
    ("d", "code"),
    [
        (decision("remediation", "open_incident", {}), "unsupported_action"),
        (decision("anomaly", "investigate", {}), "unsupported_action"),
        (decision(subject={"service": "catalog", "region": "us-east"}), "no_mapping"),
        (decision(subject={"service": "search", "region": "eu-west"}), "no_mapping"),
        (decision(subject={"service": "search"}), "no_mapping"),
        (decision("remediation", "restart_instance", {}), "no_mapping"),
        (decision(params={"desired_replicas": -1}), "bad_params"),
        (decision(params={"desired_replicas": 2.5}), "bad_params"),
        (decision(params={"desired_replicas": True}), "bad_params"),
        (
            decision("failover", "shift_traffic", {"from": "us-east", "data_classes": ["default"]}),
            "bad_params",
        ),
        (
            decision(
                "failover",
                "shift_traffic",
                {"from": "us-east", "to": "ap-south", "data_classes": ["default"]},
                {"region": "us-east"},
            ),
            "no_mapping",
        ),
        (
            decision(
                "failover",
                "shift_traffic",
                {"from": "us-east", "to": "eu-west", "data_classes": ["unknown-class"]},
                {"region": "us-east"},
            ),
            "no_mapping",
        ),
    ],
)
def test_what_cannot_be_mapped_is_refused(d: Decision, code: str) -> None:
    assert refusal(policy(), d).code == code


def test_a_rate_limited_resource_refuses_the_third_action_in_its_window() -> None:
    p = policy()
    outcomes = [screen(p, decision(basis=float(i)), now=100.0 + i) for i in range(3)] + [
        screen(p, decision(basis=9.0), now=161.0)
    ]
    assert [isinstance(o, Step) for o in outcomes] == [True, True, False, True]
    limited = outcomes[2]
    assert isinstance(limited, AuditRecord) and limited.code == "rate_limited"
    assert "2 action(s) in the last 60 s" in limited.reason


def test_a_dry_run_audits_the_call_it_would_make_and_remembers_the_decision() -> None:
    p = policy(dry_run=True)
    memory = DecisionMemory()
    d = decision()
    record = p.screen(d, memory, 100.0)
    assert isinstance(record, AuditRecord)
    assert record.outcome == "dry_run" and record.dry_run
    assert record.call == {
        "api": "autoscaling",
        "operation": "set_desired_capacity",
        "region": "us-east-1",
        "params": {
            "AutoScalingGroupName": "search-use1",
            "DesiredCapacity": 7,
            "HonorCooldown": False,
        },
    }
    assert memory.get(d.decision_id) == ("dry_run", 100.0)


def test_a_decision_is_claimed_before_its_call_and_a_replay_is_a_duplicate() -> None:
    p = policy()
    memory = DecisionMemory()
    d = decision()
    step = p.screen(d, memory, 100.0)
    assert isinstance(step, Step)
    assert memory.get(d.decision_id) == ("pending", 100.0)
    record = p.conclude(d, step, Execution("applied", "Done.", "req-1", 1), memory, 101.0)
    assert (record.outcome, record.aws_request_id, record.attempts) == ("applied", "req-1", 1)
    assert memory.get(d.decision_id) == ("applied", 101.0)
    replay = p.screen(d, DecisionMemory.from_bytes(memory.to_bytes()), 102.0)
    assert isinstance(replay, AuditRecord)
    assert (replay.outcome, replay.code) == ("duplicate", "duplicate")
    assert "already handled (applied)" in replay.reason


def test_a_decision_read_after_a_newer_one_for_the_same_call_is_refused_superseded() -> None:
    # A restart dropped the decision of event time 5; it is read again after that of 9,
    # beyond the memory of ids: scaling the group back to it would undo the newer one.
    p = policy()
    memory = DecisionMemory(capacity=1)
    newer = decision(params={"desired_replicas": 9, "current_replicas": 4}, basis=9.0)
    older = decision(basis=5.0)
    assert isinstance(p.screen(newer, memory, 100.0), Step)
    memory = DecisionMemory.from_bytes(memory.to_bytes(), capacity=1)
    record = p.screen(older, memory, 101.0)
    assert isinstance(record, AuditRecord)
    assert (record.outcome, record.code) == ("refused", "superseded")
    assert "SetDesiredCapacity" not in record.reason and "set_desired_capacity" in record.reason
    # Refused before the rate limit counts it: the next action of the window still passes.
    assert isinstance(p.screen(decision(basis=10.0), memory, 102.0), Step)
    # Another call on the subject's resources is not ordered with it.
    restart = decision("remediation", "restart_instance", params={}, basis=1.0)
    assert not (
        isinstance(o := p.screen(restart, memory, 103.0), AuditRecord) and o.code == "superseded"
    )


def test_a_memory_stored_before_the_newest_event_times_were_kept_is_read() -> None:
    stored = orjson.dumps([["d1", "applied", 100.0], ["d2", "pending", 101.0]])
    memory = DecisionMemory.from_bytes(stored)
    assert (memory.get("d1"), memory.get("d2"), len(memory)) == (
        ("applied", 100.0), ("pending", 101.0), 2,
    )  # fmt: skip
    assert memory.newest("autoscaling:us-east-1:search-use1 set_desired_capacity") is None


def test_refusals_are_not_remembered() -> None:
    p = policy()
    memory = DecisionMemory()
    refused = decision(mode="recommend")
    p.screen(refused, memory, 100.0)
    assert len(memory) == 0


# --- failover --------------------------------------------------------------------------


def test_a_failover_shifts_route53_weight_of_its_data_classes_only() -> None:
    params = {"from": "us-east", "to": "eu-west", "data_classes": ["default"]}
    step = screen(policy(), decision("failover", "shift_traffic", params, {"region": "us-east"}))
    assert isinstance(step, Step)
    assert (step.api, step.resource) == ("route53", "route53:Z1")
    assert step.params == {
        "HostedZoneId": "Z1",
        "reweight": "shift_traffic",
        "records": [{"name": "api.example.com.", "type": "A", "from": "use1", "to": "euw1"}],
    }


def test_a_failback_restores_the_normal_weight_from_the_region_that_took_over() -> None:
    params = {"to": "us-east", "from": {"default": "eu-west"}, "data_classes": ["default"]}
    step = screen(policy(), decision("failback", "return_traffic", params, {"region": "us-east"}))
    assert isinstance(step, Step)
    assert step.params["records"] == [
        {
            "name": "api.example.com.",
            "type": "A",
            "to": "use1",
            "from": "euw1",
            "normal": {"use1": 100, "euw1": 100},
        }
    ]


ARC = CONFIG.replace(
    "[rollback]",
    """[failover.arc]
endpoints = [{ url = "http://127.0.0.1:1/v1", region = "us-west-2" }]
[failover.arc.routing_controls.us-east]
default = "arn:aws:route53-recovery-control::1:controlpanel/p/routingcontrol/use1"
[failover.arc.routing_controls.eu-west]
default = "arn:aws:route53-recovery-control::1:controlpanel/p/routingcontrol/euw1"

[rollback]""",
).replace('"rollback:*"]', '"rollback:*", "arc:*"]')


def test_arc_routing_controls_take_precedence_where_configured() -> None:
    params = {"from": "us-east", "to": "eu-west", "data_classes": ["default"]}
    step = screen(policy(ARC), decision("failover", "shift_traffic", params, {"region": "us-east"}))
    assert isinstance(step, Step)
    assert step.api == "route53-recovery-cluster"
    assert step.resource == "arc:arn:aws:route53-recovery-control::1:controlpanel/p"
    states = {
        e["RoutingControlArn"].rsplit("/", 1)[1]: e["RoutingControlState"]
        for e in step.params["UpdateRoutingControlStateEntries"]
    }
    assert states == {"use1": "Off", "euw1": "On"}
    back = {"to": "us-east", "from": {"default": "eu-west"}, "data_classes": ["default"]}
    failback = screen(
        policy(ARC), decision("failback", "return_traffic", back, {"region": "us-east"})
    )
    assert isinstance(failback, Step)
    [entry] = failback.params["UpdateRoutingControlStateEntries"]
    assert entry["RoutingControlArn"].endswith("/routingcontrol/use1")
    assert entry["RoutingControlState"] == "On"


def test_a_rollback_goes_to_the_hook() -> None:
    d = decision("remediation", "rollback_deploy", {}, {"service": "checkout", "region": "eu-west"})
    step = screen(policy(), d)
    assert isinstance(step, Step)
    assert (step.api, step.resource, step.idempotent) == (
        "hook",
        "rollback:checkout/eu-west",
        False,
    )
    assert step.params == {"service": "checkout", "region": "eu-west", "decision_id": d.decision_id}


# --- pieces ----------------------------------------------------------------------------


def test_the_memory_keeps_the_newest_decisions_within_its_bound() -> None:
    memory = DecisionMemory(capacity=3)
    for i in range(10):
        memory.remember(f"d{i}", "applied", float(i))
    restored = DecisionMemory.from_bytes(memory.to_bytes(), capacity=3)
    assert len(restored) == 3
    assert [restored.get(f"d{i}") is not None for i in (6, 7, 8, 9)] == [False, True, True, True]


def test_a_limiter_override_applies_by_pattern() -> None:
    limiter = RateLimiter(RateLimit(1, 10.0), [("ecs:*", RateLimit(3, 10.0))])
    assert [limiter.admit("ecs:us-east-1:a/b", 0.0) for _ in range(4)] == [True] * 3 + [False]
    assert [limiter.admit("autoscaling:x:y", 0.0) for _ in range(2)] == [True, False]


def test_retries_follow_the_fate_of_the_request() -> None:
    policy_ = RetryPolicy(max_attempts=4)
    assert policy_.should_retry("ThrottlingException", 1, idempotent=False)
    assert policy_.should_retry("InternalError", 1, idempotent=True)
    assert not policy_.should_retry("InternalError", 1, idempotent=False)
    assert not policy_.should_retry("AccessDeniedException", 1, idempotent=True)
    assert not policy_.should_retry("ServiceNotFoundException", 1, idempotent=True)
    assert not policy_.should_retry("Throttling", 4, idempotent=True)


@given(attempt=st.integers(1, 50), jitter=st.floats(0.0, 1.0))
def test_backoff_is_bounded_by_its_cap(attempt: int, jitter: float) -> None:
    policy_ = RetryPolicy(base_s=0.2, cap_s=5.0)
    assert 0.0 <= policy_.delay(attempt, jitter) <= 5.0


weights_st = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, MAX_WEIGHT))


@given(current=weights_st, pair=st.permutations("abc"))
def test_a_shift_empties_the_source_and_loses_no_weight_below_the_cap(
    current: dict, pair: list[str]
) -> None:
    source, target = pair[0], pair[1]
    new = shifted_weights(current, source, target)
    assert new[source] == 0
    moved = current.get(source, 0) + current.get(target, 0)
    assert new[target] == min(MAX_WEIGHT, moved)
    assert all(new[k] == v for k, v in current.items() if k not in (source, target))


@given(current=weights_st, normal=weights_st, source=st.sampled_from("bc"))
def test_a_restore_gives_the_normal_weight_back_and_never_raises_the_source(
    current: dict, normal: dict, source: str
) -> None:
    normal = {**normal, "a": 100}
    new = restored_weights(current, normal, "a", source)
    assert new["a"] == 100
    if source in current and source in normal:
        assert min(current[source], normal[source]) <= new[source] <= current[source]


def test_weight_changes_keep_the_record_and_skip_what_is_already_right() -> None:
    sets = [
        {"Name": "a.", "Type": "A", "SetIdentifier": "x", "Weight": 100, "TTL": 60,
         "ResourceRecords": [{"Value": "10.0.0.1"}]},
        {"Name": "a.", "Type": "A", "SetIdentifier": "y", "Weight": 100, "TTL": 60,
         "ResourceRecords": [{"Value": "10.0.0.2"}]},
    ]  # fmt: skip
    changes = weight_changes(sets, {"x": 0, "y": 100})
    assert changes == [{"Action": "UPSERT", "ResourceRecordSet": {**sets[0], "Weight": 0}}]


def test_an_audit_record_is_json_with_every_field() -> None:
    record = unhandled_record("refused", "invalid_decision", "Not JSON.", 5.0, dry_run=True)
    body = orjson.loads(record.to_bytes())
    assert set(body) == {
        "decision_id", "kind", "action", "subject", "mode", "resource", "outcome", "reason",
        "code", "aws_request_id", "attempts", "call", "dry_run", "ts", "approval",
    }  # fmt: skip
    assert (body["outcome"], body["code"], body["dry_run"]) == ("refused", "invalid_decision", True)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty document"),
        (b"[1]", "a decision is a JSON object"),
        (b'{"kind": "scaling"}', "lacks field"),
    ],
)
def test_what_is_not_a_decision_is_said_so(raw: bytes, why: str) -> None:
    error = decode_decision(raw)
    assert isinstance(error, str) and why.lower() in error.lower()


def test_a_decision_with_wrongly_typed_fields_is_not_a_decision() -> None:
    body = orjson.loads(decision().to_bytes())
    for name, value in [("subject", {"service": 1}), ("params", [1]), ("action", 3)]:
        assert isinstance(decode_decision(orjson.dumps({**body, name: value})), str), name
    assert decode_decision(decision().to_bytes()) == decision()
