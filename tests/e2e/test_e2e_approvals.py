"""Approvals on the real broker against a moto server: a hard outage's failover
recommendation, approved with ``autopilot approve``, moves the Route 53 weights; a late
approval is refused and audited; a rejected recommendation is never applied."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import orjson
import pytest

from schemas import Decision, decision_id_for
from schemas.topics import TopicNames
from tests.conftest import AUTOPILOT, WorkerProcess, wait_until
from tests.e2e.test_e2e_actuator import _send, audits
from tests.e2e.test_e2e_failover import wait_evaluating
from tests.support.aws import MotoServer
from tests.support.worker_views import decisions

pytestmark = pytest.mark.kafka

RECORD = "api.example.com."
SETS = {"us-east": "use1", "eu-west": "euw1", "ap-south": "aps1"}
# us-east goes dark at once halfway through and stays down: one failover recommendation.
HARD_OUTAGE = {
    "name": "us-east hard outage",
    "duration_s": 600,
    "tick_s": 5,
    "incidents": [{"type": "region_outage", "region": "us-east", "start_s": 300,
                   "duration_s": 300, "degrade_s": 0}],
}  # fmt: skip


def make_zone() -> str:
    r53 = boto3.client("route53")
    zone = r53.create_hosted_zone(Name="example.com.", CallerReference=uuid.uuid4().hex)
    zone_id = zone["HostedZone"]["Id"].removeprefix("/hostedzone/")
    changes = [
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": RECORD, "Type": "A", "SetIdentifier": set_id, "Weight": 100, "TTL": 60,
            "ResourceRecords": [{"Value": f"10.0.0.{i + 1}"}]}}
        for i, set_id in enumerate(SETS.values())
    ]  # fmt: skip
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return zone_id


def weights(zone_id: str) -> dict[str, int]:
    sets = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone_id)
    return {s["SetIdentifier"]: s["Weight"] for s in sets["ResourceRecordSets"] if "Weight" in s}


def approvals_env(aws: MotoServer, tmp_path: Path, zone_id: str) -> dict[str, str]:
    mapping = tmp_path / "actuation.toml"
    mapping.write_text(
        f"""
aws_regions = {{ us-east = "us-east-1", eu-west = "eu-west-1", ap-south = "ap-south-1" }}

[failover.route53]
hosted_zone_id = "{zone_id}"

[[failover.route53.records]]
name = "{RECORD}"
type = "A"
set_identifiers = {{ us-east = "use1", eu-west = "euw1", ap-south = "aps1" }}
weights = {{ us-east = 100, eu-west = 100, ap-south = 100 }}

[allow]
actions = ["failover:shift_traffic", "failback:return_traffic"]
resources = ["route53:{zone_id}"]

[approvals]
by_kind = {{ failover = 900 }}
"""
    )
    return {
        **aws.env(),
        "AUTOPILOT_ACTUATOR": "on",
        "AUTOPILOT_ACTUATOR_DRY_RUN": "false",
        "AUTOPILOT_ACTUATOR_CONFIG": str(mapping),
    }


def cli(worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AUTOPILOT), *args], env=worker.env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def audit_of(bootstrap: str, names: TopicNames, decision_id: str) -> list[dict]:
    return [r for r in audits(bootstrap, names) if r["decision_id"] == decision_id]


def recommendation(region: str, age_s: float) -> Decision:
    params = {"from": region, "to": "eu-west", "data_classes": ["default"]}
    subject = {"region": region}
    ts = time.time() - age_s
    return Decision(
        decision_id=decision_id_for("failover", subject, "shift_traffic", params, [ts]),
        kind="failover", ts=ts, subject=subject, action="shift_traffic", params=params,
        mode="recommend", confidence=0.9, reason=f"{region} stopped answering.", evidence={},
        model_version="test",
    )  # fmt: skip


def wait_pending(
    bootstrap: str, names: TopicNames, decision_id: str, worker: WorkerProcess
) -> None:
    wait_until(
        lambda: [r["outcome"] for r in audit_of(bootstrap, names, decision_id)] == ["pending"],
        60,
        f"{decision_id} was not audited pending; log: {worker.log()[-2000:]}",
    )


def test_an_approved_failover_recommendation_moves_route53_traffic(
    start_worker, kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path, aws: MotoServer
) -> None:
    zone_id = make_zone()
    worker = start_worker(approvals_env(aws, tmp_path, zone_id))
    wait_evaluating(worker)
    scenario = tmp_path / "hard-outage.json"
    scenario.write_text(json.dumps(HARD_OUTAGE))
    worker.simulate(tmp_path, "--scenario", str(scenario), "--speed", "0")

    found: list[Decision] = []

    def failover_decided() -> bool:
        found[:] = [
            d for d in decisions(kafka_bootstrap, topic_names.failover)
            if d.kind == "failover" and d.subject == {"region": "us-east"}
        ]  # fmt: skip
        return bool(found)

    wait_until(failover_decided, 120, f"no failover of us-east; log: {worker.log()[-2000:]}")
    [decision] = found
    assert decision.mode == "recommend" and decision.params["data_classes"] == ["default"]
    wait_pending(kafka_bootstrap, topic_names, decision.decision_id, worker)
    assert weights(zone_id) == {"use1": 100, "euw1": 100, "aps1": 100}, "applied unapproved"

    done = cli(worker, "approve", decision.decision_id, "--reason", "us-east is dark",
               "--by", "oncall", "--wait", "30")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"approved {decision.decision_id}: failover shift_traffic us-east" in done.stdout
    assert "actuator: applied" in done.stdout, done.stdout

    moved = weights(zone_id)
    assert moved["use1"] == 0 and moved[SETS[decision.params["to"]]] > 100, moved
    [pending, applied] = audit_of(kafka_bootstrap, topic_names, decision.decision_id)
    assert pending["outcome"] == "pending"
    assert (applied["outcome"], applied["mode"], applied["resource"]) == (
        "applied", "recommend", f"route53:{zone_id}",
    )  # fmt: skip
    assert applied["approval"]["by"] == "oncall"
    assert applied["approval"]["reason"] == "us-east is dark"
    assert applied["aws_request_id"]
    # The target: applied within 5 s of the approval (both stamps from the records).
    assert applied["ts"] - applied["approval"]["ts"] < 5.0

    # Approving twice applies nothing more.
    again = cli(worker, "approve", decision.decision_id, "--wait", "30")
    assert "actuator: duplicate" in again.stdout, again.stdout
    assert weights(zone_id) == moved


def test_late_and_rejected_recommendations_are_never_applied(
    start_worker, kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path, aws: MotoServer
) -> None:
    zone_id = make_zone()
    worker = start_worker(approvals_env(aws, tmp_path, zone_id))
    stale = recommendation("ap-south", age_s=1000.0)  # decided 1000 s ago: past 900 s
    fresh = recommendation("us-east", age_s=0.0)
    for d in (stale, fresh):
        key = d.subject["region"].encode()
        asyncio.run(_send(kafka_bootstrap, topic_names.failover, key, [d.to_bytes()]))
    for d in (stale, fresh):
        wait_pending(kafka_bootstrap, topic_names, d.decision_id, worker)

    late = cli(worker, "approve", stale.decision_id, "--wait", "30")
    assert late.returncode == 0, late.stderr[-2000:]
    assert "actuator: refused (approval_expired)" in late.stdout, late.stdout
    [_, refused] = audit_of(kafka_bootstrap, topic_names, stale.decision_id)
    assert (refused["outcome"], refused["code"]) == ("refused", "approval_expired")
    assert refused["approval"]["verdict"] == "approve"

    no = cli(worker, "reject", fresh.decision_id, "--reason", "planned maintenance", "--wait", "30")
    assert "actuator: rejected (rejected)" in no.stdout, no.stdout
    yes = cli(worker, "approve", fresh.decision_id, "--wait", "30")
    assert "actuator: duplicate" in yes.stdout, yes.stdout
    outcomes = [r["outcome"] for r in audit_of(kafka_bootstrap, topic_names, fresh.decision_id)]
    assert outcomes == ["pending", "rejected", "duplicate"]
    assert weights(zone_id) == {"use1": 100, "euw1": 100, "aps1": 100}

    unknown = cli(worker, "approve", "f" * 32, "--wait", "0")
    assert unknown.returncode != 0 and "no decision " + "f" * 32 in unknown.stderr


def keda_answer(worker: WorkerProcess, service: str, region: str) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{worker.web_port}/keda/{service}/{region}/"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_the_keda_endpoint_answers_the_latest_scaling_decision(
    start_worker, kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    worker = start_worker()
    subject = {"service": "checkout", "region": "us-east"}
    decided = []
    for desired, ts in ((5, time.time() - 60), (8, time.time())):
        params = {"desired_replicas": desired, "current_replicas": 4}
        decided.append(Decision(
            decision_id=decision_id_for("scaling", subject, "scale_out", params, [ts]),
            kind="scaling", ts=ts, subject=subject, action="scale_out", params=params,
            mode="auto", confidence=0.8, reason="Demand rises.", evidence={}, model_version="t",
        ))  # fmt: skip
    values = [d.to_bytes() for d in decided]
    asyncio.run(_send(kafka_bootstrap, topic_names.scaling, b"checkout/us-east", values))
    wait_until(
        lambda: (
            keda_answer(worker, "checkout", "us-east")[0] == 200
            and keda_answer(worker, "checkout", "us-east")[1]["desired_replicas"] == 8
        ),
        60,
        f"the KEDA endpoint did not answer 8; log: {worker.log()[-2000:]}",
    )
    status, body = keda_answer(worker, "checkout", "us-east")
    assert body["decision_id"] == decided[-1].decision_id and body["reason"] == "Demand rises."
    status, body = keda_answer(worker, "checkout", "ap-south")
    assert status == 404 and body["error"] == "no scaling decision yet"
