"""The actuator's AWS calls against moto in server mode (a real HTTP endpoint), and against
small scripted HTTP servers where moto has no such service (Route 53 ARC) or AWS is not
involved (the rollback hook URL): what changes, what does not, and what the audit says."""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from models.policy.actuation import ActuationPolicy, AuditRecord, DecisionMemory
from schemas import Decision, decision_id_for
from schemas.config.actuation import parse_actuation_config
from streams.actuate.aws import AwsExecutor
from streams.kafka.local import free_port
from tests.support.aws import SECRET, MotoServer, asg_desired, make_asg

CHECKOUT = {"service": "checkout", "region": "us-east"}
SHIFT = {"from": "us-east", "to": "eu-west", "data_classes": ["default"]}


def make_ecs(cluster: str, service: str, desired: int) -> None:
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName=cluster)
    ecs.register_task_definition(
        family=service, containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}]
    )
    ecs.create_service(
        cluster=cluster, serviceName=service, taskDefinition=service, desiredCount=desired
    )


def ecs_service(cluster: str, service: str) -> dict:
    ecs = boto3.client("ecs", region_name="us-east-1")
    return ecs.describe_services(cluster=cluster, services=[service])["services"][0]


def make_zone(weights: dict[str, int]) -> str:
    """A hosted zone with api.example.com. A weighted per set id; its id without prefix."""
    r53 = boto3.client("route53")
    zone = r53.create_hosted_zone(Name="example.com.", CallerReference=uuid.uuid4().hex)
    zone_id = zone["HostedZone"]["Id"].removeprefix("/hostedzone/")
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "api.example.com.",
                "Type": "A",
                "SetIdentifier": set_id,
                "Weight": weight,
                "TTL": 60,
                "ResourceRecords": [{"Value": f"10.0.0.{i + 1}"}],
            },
        }
        for i, (set_id, weight) in enumerate(weights.items())
    ]
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return zone_id


def zone_weights(zone_id: str) -> dict[str, int]:
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone_id)
    return {s["SetIdentifier"]: s["Weight"] for s in sets["ResourceRecordSets"] if "Weight" in s}


def mapping(zone_id: str = "Z0", extra: str = "") -> str:
    """A mapping file for search (ASG) and checkout (ECS) in us-east, and Route 53 failover."""
    return f"""
aws_regions = {{ us-east = "us-east-1", eu-west = "us-east-1" }}

[services.search]
target = "asg"
resources = {{ us-east = "search-use1" }}

[services.checkout]
target = "ecs"
resources = {{ us-east = "prod/checkout" }}

[failover.route53]
hosted_zone_id = "{zone_id}"

[[failover.route53.records]]
name = "api.example.com"
type = "A"
set_identifiers = {{ us-east = "use1", eu-west = "euw1" }}
weights = {{ us-east = 100, eu-west = 100 }}

[allow]
actions = ["scaling:scale_out", "scaling:scale_in", "failover:shift_traffic",
           "failback:return_traffic", "remediation:restart_instance",
           "remediation:rollback_deploy"]
resources = ["autoscaling:us-east-1:search-*", "ecs:us-east-1:prod/*", "route53:*",
             "arc:*", "rollback:*"]

[rate_limit]
max_actions = 100
window_s = 60

[retry]
max_attempts = 3
base_s = 0.01
cap_s = 0.05
{extra}
"""


def decision(
    kind: str = "scaling",
    action: str = "scale_out",
    params: dict | None = None,
    subject: dict | None = None,
    mode: str = "auto",
) -> Decision:
    subject = subject if subject is not None else {"service": "search", "region": "us-east"}
    params = params if params is not None else {"desired_replicas": 7, "current_replicas": 2}
    return Decision(
        decision_id=decision_id_for(kind, subject, action, params, [uuid.uuid4().hex]),
        kind=kind,
        ts=1.0,
        subject=subject,
        action=action,
        params=params,
        mode=mode,
        confidence=0.8,
        reason="Because the test says so.",
        evidence={},
        model_version="test",
    )


@dataclass
class Actuator:
    """The agent's flow without Kafka: screen, execute, conclude."""

    policy: ActuationPolicy
    executor: AwsExecutor
    sleeps: list[float] = field(default_factory=list)

    def __call__(self, d: Decision, memory: DecisionMemory | None = None) -> AuditRecord:
        memory = memory if memory is not None else DecisionMemory()
        verdict = self.policy.screen(d, memory, 100.0)
        if isinstance(verdict, AuditRecord):
            return verdict
        return self.policy.conclude(d, verdict, self.executor.execute(verdict), memory, 101.0)


def actuator(text: str, dry_run: bool = False) -> Actuator:
    config = parse_actuation_config(text)
    sleeps: list[float] = []
    executor = AwsExecutor(config, sleep=sleeps.append, jitter=lambda: 1.0)
    return Actuator(ActuationPolicy(config, dry_run=dry_run), executor, sleeps)


def test_scaling_decisions_set_the_asg_capacity_and_the_ecs_count(aws: MotoServer) -> None:
    make_asg("search-use1", 2)
    make_ecs("prod", "checkout", 2)
    act = actuator(mapping())
    asg = act(decision(params={"desired_replicas": 7}))
    ecs = act(decision(params={"desired_replicas": 5}, subject=CHECKOUT))
    assert asg_desired("search-use1") == 7
    assert ecs_service("prod", "checkout")["desiredCount"] == 5
    for record in (asg, ecs):
        assert (record.outcome, record.attempts, record.code) == ("applied", 1, None)
        assert record.aws_request_id
    assert asg.reason == "Desired capacity of search-use1 set to 7."


def test_failover_and_failback_move_route53_weights(aws: MotoServer) -> None:
    zone = make_zone({"use1": 100, "euw1": 100, "other": 10})
    act = actuator(mapping(zone))
    record = act(decision("failover", "shift_traffic", SHIFT, {"region": "us-east"}))
    assert record.outcome == "applied" and record.aws_request_id, record
    assert zone_weights(zone) == {"use1": 0, "euw1": 200, "other": 10}
    back = {"to": "us-east", "from": {"default": "eu-west"}, "data_classes": ["default"]}
    record = act(decision("failback", "return_traffic", back, {"region": "us-east"}))
    assert record.outcome == "applied", record
    assert zone_weights(zone) == {"use1": 100, "euw1": 100, "other": 10}


def test_a_dry_run_changes_nothing_and_says_what_it_would_have_done(aws: MotoServer) -> None:
    make_asg("search-use1", 2)
    make_ecs("prod", "checkout", 2)
    zone = make_zone({"use1": 100, "euw1": 100})
    act = actuator(mapping(zone), dry_run=True)
    records = [
        act(decision(params={"desired_replicas": 9})),
        act(decision(params={"desired_replicas": 9}, subject=CHECKOUT)),
        act(decision("failover", "shift_traffic", SHIFT, {"region": "us-east"})),
    ]
    assert asg_desired("search-use1") == 2
    assert ecs_service("prod", "checkout")["desiredCount"] == 2
    assert zone_weights(zone) == {"use1": 100, "euw1": 100}
    assert [r.outcome for r in records] == ["dry_run"] * 3
    assert all(r.dry_run and r.aws_request_id is None for r in records)
    asg, ecs, r53 = (r.call for r in records)
    assert asg is not None and asg["params"]["DesiredCapacity"] == 9
    assert ecs is not None and ecs["params"]["desiredCount"] == 9
    assert r53 is not None and r53["params"]["records"][0]["to"] == "euw1"
    assert records[0].reason == (
        "Dry run: would call autoscaling.set_desired_capacity on autoscaling:us-east-1:search-use1."
    )


def test_a_decision_replayed_is_applied_once(aws: MotoServer) -> None:
    make_asg("search-use1", 2)
    act = actuator(mapping())
    memory = DecisionMemory()
    d = decision(params={"desired_replicas": 6})
    first = act(d, memory)
    # Moved by hand after the decision: a second application would undo it.
    boto3.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName="search-use1", DesiredCapacity=3
    )
    second = act(d, DecisionMemory.from_bytes(memory.to_bytes()))
    assert (first.outcome, second.outcome) == ("applied", "duplicate")
    assert asg_desired("search-use1") == 3


def written_down(act: Actuator, d: Decision) -> DecisionMemory:
    """The memory a worker left when it died after writing ``d`` down, before its outcome."""
    memory = DecisionMemory()
    step = act.policy.screen(d, memory, 100.0)
    assert not isinstance(step, AuditRecord) and memory.get(d.decision_id)[0] == "pending"
    return DecisionMemory.from_bytes(memory.to_bytes())


def test_a_call_a_crash_left_unknown_is_not_made_again_when_it_took_effect(
    aws: MotoServer,
) -> None:
    make_asg("search-use1", 2)
    act = actuator(mapping())
    d = decision(params={"desired_replicas": 6})
    memory = written_down(act, d)
    # The call went out before the worker died.
    boto3.client("autoscaling").set_desired_capacity(
        AutoScalingGroupName="search-use1", DesiredCapacity=6
    )
    aws.record()
    record = act(d, memory)
    assert record.outcome == "applied" and "reconciled" in record.reason, record
    assert [form["Action"] for _, form in aws.recorded()] == [["DescribeAutoScalingGroups"]]
    assert memory.get(d.decision_id)[0] == "applied"


def test_a_call_a_crash_left_unknown_is_made_when_it_had_not_gone_out(aws: MotoServer) -> None:
    make_asg("search-use1", 2)
    act = actuator(mapping())
    d = decision(params={"desired_replicas": 6})
    record = act(d, written_down(act, d))
    assert (record.outcome, record.reason) == (
        "applied",
        "Desired capacity of search-use1 set to 6.",
    )
    assert asg_desired("search-use1") == 6


def test_a_call_a_crash_left_unknown_that_cannot_be_repeated_is_left_to_a_human(
    aws: MotoServer,
) -> None:
    make_ecs("prod", "checkout", 2)
    act = actuator(mapping())
    before = ecs_service("prod", "checkout")["deployments"][0]["id"]
    d = decision("remediation", "restart_instance", {}, CHECKOUT)
    record = act(d, written_down(act, d))
    assert (record.outcome, record.code) == ("failed", "outcome_unknown"), record
    assert ecs_service("prod", "checkout")["deployments"][0]["id"] == before


def test_a_recommendation_is_never_applied(aws: MotoServer) -> None:
    make_asg("search-use1", 2)
    record = actuator(mapping())(decision(mode="recommend"))
    assert (record.outcome, record.code) == ("refused", "mode_recommend")
    assert asg_desired("search-use1") == 2


def test_an_action_outside_the_allow_list_is_refused_with_a_reason(aws: MotoServer) -> None:
    make_asg("search-use1", 4)
    text = mapping().replace('"scaling:scale_in", ', "")
    record = actuator(text)(decision(action="scale_in", params={"desired_replicas": 1}))
    assert (record.outcome, record.code) == ("refused", "action_not_allowed")
    assert record.reason == "scaling:scale_in is not in the allow-list of actions."
    assert asg_desired("search-use1") == 4


def test_restart_instance_forces_a_new_ecs_deployment(aws: MotoServer) -> None:
    make_ecs("prod", "checkout", 2)
    before = ecs_service("prod", "checkout")["deployments"][0]["id"]
    record = actuator(mapping())(decision("remediation", "restart_instance", {}, CHECKOUT))
    assert record.outcome == "applied" and record.aws_request_id
    assert ecs_service("prod", "checkout")["deployments"][0]["id"] != before


def test_a_missing_resource_is_reported_in_the_audit_not_raised(aws: MotoServer) -> None:
    act = actuator(mapping())
    record = act(decision(params={"desired_replicas": 3}, subject=CHECKOUT))
    assert (record.outcome, record.code, record.attempts) == (
        "failed",
        "ClusterNotFoundException",
        1,
    )
    assert record.reason.startswith("ecs.update_service failed with ClusterNotFoundException")
    assert act.sleeps == []


def test_failover_to_a_region_without_a_record_set_fails_without_changing_weights(
    aws: MotoServer,
) -> None:
    zone = make_zone({"use1": 100})
    record = actuator(mapping(zone))(
        decision("failover", "shift_traffic", SHIFT, {"region": "us-east"})
    )
    assert (record.outcome, record.code) == ("failed", "RecordSetNotFound")
    assert zone_weights(zone) == {"use1": 100}


class ScriptedServer:
    """A local HTTP server answering POSTs from a script of (status, headers, JSON body)."""

    def __init__(self, script: list[tuple[int, dict[str, str], dict]]) -> None:
        self.script = list(script)
        self.requests: list[tuple[dict[str, str], dict]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests.append((dict(self.headers), json.loads(body or b"{}")))
                status, headers, answer = owner.script.pop(0) if owner.script else (200, {}, {})
                payload = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/x-amz-json-1.0",
                                    **headers}.items():  # fmt: skip
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: list[tuple[int, dict[str, str], dict]]) -> ScriptedServer:
        server = ScriptedServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def arc_mapping(*urls: str) -> str:
    endpoints = ", ".join(f'{{ url = "{url}", region = "us-west-2" }}' for url in urls)
    return mapping(
        extra=f"""
[failover.arc]
endpoints = [{endpoints}]
[failover.arc.routing_controls.us-east]
default = "arn:aws:route53-recovery-control::123456789012:controlpanel/p/routingcontrol/use1"
[failover.arc.routing_controls.eu-west]
default = "arn:aws:route53-recovery-control::123456789012:controlpanel/p/routingcontrol/euw1"
"""
    )


THROTTLED = (400, {"x-amzn-RequestId": "req-throttled"},
             {"__type": "ThrottlingException", "message": "Rate exceeded"})  # fmt: skip


def test_arc_throttling_is_retried_with_backoff_across_endpoints(aws: MotoServer, scripted) -> None:
    arc = scripted([THROTTLED, (200, {"x-amzn-RequestId": "req-ok"}, {})])
    dead = f"http://127.0.0.1:{free_port()}"
    act = actuator(arc_mapping(dead, arc.url).replace("max_attempts = 3", "max_attempts = 4"))
    record = act(decision("failover", "shift_traffic", SHIFT, {"region": "us-east"}))
    # Attempt 1: the dead endpoint; 2: throttled; 3: the dead one again; 4: accepted.
    assert (record.outcome, record.attempts, record.aws_request_id) == ("applied", 4, "req-ok")
    assert act.sleeps == [0.01, 0.02, 0.04]
    [(headers, body), _] = arc.requests
    assert headers["X-Amz-Target"] == "ToggleCustomerAPI.UpdateRoutingControlStates"
    states = {
        e["RoutingControlArn"].rsplit("/", 1)[1]: e["RoutingControlState"]
        for e in body["UpdateRoutingControlStateEntries"]
    }
    assert states == {"use1": "Off", "euw1": "On"}


def test_access_denied_is_reported_at_once(aws: MotoServer, scripted) -> None:
    denied = (403, {"x-amzn-RequestId": "req-denied"},
              {"__type": "AccessDeniedException", "message": "not authorized"})  # fmt: skip
    arc = scripted([denied])
    act = actuator(arc_mapping(arc.url))
    record = act(decision("failover", "shift_traffic", SHIFT, {"region": "us-east"}))
    assert (record.outcome, record.code, record.attempts) == ("failed", "AccessDeniedException", 1)
    assert record.aws_request_id == "req-denied"
    assert "not authorized" in record.reason
    assert act.sleeps == [] and len(arc.requests) == 1


def test_retries_stop_at_max_attempts(aws: MotoServer, scripted) -> None:
    arc = scripted([THROTTLED] * 5)
    record = actuator(arc_mapping(arc.url))(
        decision("failover", "shift_traffic", SHIFT, {"region": "us-east"})
    )
    assert (record.outcome, record.code, record.attempts) == ("failed", "ThrottlingException", 3)
    assert len(arc.requests) == 3


def rollback_mapping(hook: str) -> str:
    return mapping(extra=f"[rollback]\n{hook}\ntimeout_s = 30\n")


def test_the_rollback_command_runs_once_with_the_subject(aws: MotoServer, tmp_path: Path) -> None:
    out = tmp_path / "rollback.txt"
    script = "import os, sys; open(sys.argv[1], 'w').write(' '.join(sys.argv[2:]))"
    argv = [sys.executable, "-c", script, str(out), "{service}", "{region}", "{decision_id}"]
    act = actuator(rollback_mapping(f"command = {json.dumps(argv)}"))
    d = decision("remediation", "rollback_deploy", {}, CHECKOUT)
    record = act(d)
    assert (record.outcome, record.attempts) == ("applied", 1), record
    assert out.read_text() == f"checkout us-east {d.decision_id}"


def test_a_failing_rollback_command_is_reported_and_not_repeated(
    aws: MotoServer, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    script = "import sys; open(sys.argv[1], 'a').write('x'); sys.exit(3)"
    argv = [sys.executable, "-c", script, str(runs)]
    act = actuator(rollback_mapping(f"command = {json.dumps(argv)}"))
    record = act(decision("remediation", "rollback_deploy", {}, CHECKOUT))
    assert (record.outcome, record.code, record.attempts) == ("failed", "exit_3", 1)
    assert runs.read_text() == "x"


def test_the_rollback_url_is_retried_when_busy(aws: MotoServer, scripted) -> None:
    hook = scripted([(503, {}, {}), (202, {"X-Request-Id": "deploy-42"}, {})])
    act = actuator(rollback_mapping(f'url = "{hook.url}/rollback"'))
    d = decision("remediation", "rollback_deploy", {}, CHECKOUT)
    record = act(d)
    assert (record.outcome, record.attempts, record.aws_request_id) == ("applied", 2, "deploy-42")
    assert [body for _, body in hook.requests] == [
        {"service": "checkout", "region": "us-east", "decision_id": d.decision_id}
    ] * 2


def test_credentials_reach_neither_the_audit_nor_the_log(
    aws: MotoServer, scripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    make_asg("search-use1", 2)
    arc = scripted([(403, {}, {"__type": "AccessDeniedException", "message": "no"})])
    act = actuator(arc_mapping(arc.url))
    records = [
        act(decision(params={"desired_replicas": 3})),
        act(decision("failover", "shift_traffic", SHIFT, {"region": "us-east"})),
        act(decision(params={"desired_replicas": 3}, subject=CHECKOUT)),
    ]
    assert [r.outcome for r in records] == ["applied", "failed", "failed"]
    # The requests were signed with the secret: it was in use, and still shows nowhere.
    assert "Signature=" in arc.requests[0][0]["Authorization"]
    assert SECRET not in caplog.text
    assert not any(SECRET.encode() in r.to_bytes() for r in records)
