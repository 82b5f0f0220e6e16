"""The remediation actions beyond restart and rollback, against moto in server mode:
scale_out adds replicas, failover_region drains the region in Route 53, clear_cache sends
an SSM Run Command to the service's instances."""

from __future__ import annotations

import boto3

from tests.e2e.test_actuator_moto import (
    CHECKOUT,
    actuator,
    decision,
    ecs_service,
    make_ecs,
    make_zone,
    mapping,
    zone_weights,
)
from tests.support.aws import MotoServer, asg_desired, make_asg

ACTIONS = """
[remediation]
scale_out_step = 2

[remediation.clear_cache]
document = "clear-cache"
parameters = { level = ["all"] }
"""


def remediation_mapping(zone: str = "Z0") -> str:
    text = mapping(zone, ACTIONS)
    text = text.replace(
        '"remediation:rollback_deploy"]',
        '"remediation:rollback_deploy", "remediation:scale_out", '
        '"remediation:failover_region", "remediation:clear_cache"]',
    )
    return text.replace('"rollback:*"]', '"rollback:*", "ssm:*"]')


def test_a_remediation_scale_out_adds_replicas_to_what_there_is(aws: MotoServer) -> None:
    make_asg("search-use1", 3)
    make_ecs("prod", "checkout", 4)
    act = actuator(remediation_mapping())
    asg = act(decision("remediation", "scale_out", {}))
    ecs = act(decision("remediation", "scale_out", {}, subject=CHECKOUT))
    assert asg_desired("search-use1") == 5
    assert ecs_service("prod", "checkout")["desiredCount"] == 6
    assert (asg.outcome, ecs.outcome) == ("applied", "applied")
    assert asg.reason == "Desired capacity of search-use1 raised from 3 to 5 (max 100)."


def test_a_remediation_failover_drains_the_region(aws: MotoServer) -> None:
    zone = make_zone({"use1": 100, "euw1": 100})
    act = actuator(remediation_mapping(zone))
    record = act(decision("remediation", "failover_region", {}, subject=CHECKOUT))
    assert record.outcome == "applied" and record.aws_request_id, record
    assert zone_weights(zone) == {"use1": 0, "euw1": 100}
    # Draining eu-west too would leave no weight at all: Route 53 would then share the
    # traffic among every set, the drained ones included. Refused, and nothing changes.
    eu = {"service": "checkout", "region": "eu-west"}
    record = act(decision("remediation", "failover_region", {}, subject=eu))
    assert (record.outcome, record.code) == ("failed", "NoRegionLeft"), record
    assert zone_weights(zone) == {"use1": 0, "euw1": 100}


def test_clear_cache_sends_the_run_command_to_the_services_instances(aws: MotoServer) -> None:
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.create_document(
        Name="clear-cache",
        DocumentType="Command",
        Content='{"schemaVersion": "2.2", "description": "clear", "parameters": {"level": '
        '{"type": "String"}}, "mainSteps": [{"action": "aws:runShellScript", "name": "c", '
        '"inputs": {"runCommand": ["true"]}}]}',
    )
    record = actuator(remediation_mapping())(
        decision("remediation", "clear_cache", {}, subject=CHECKOUT)
    )
    assert record.outcome == "applied", record
    [command] = ssm.list_commands()["Commands"]
    assert command["DocumentName"] == "clear-cache"
    assert command["Targets"] == [{"Key": "tag:service", "Values": ["checkout"]}]
    assert command["Parameters"] == {"level": ["all"]}
    assert command["CommandId"] in record.reason
