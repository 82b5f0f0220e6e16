"""Region failover on the real broker: the scenario set scored against the simulator's ground
truth, then a kill -9 in the middle of an outage that must not fail the region over again."""

from __future__ import annotations

import asyncio
import signal

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from schemas import Decision
from schemas.config.regions import load_region_config
from streams.lab.scenario import parse_scenario
from streams.lab.simulator import SimConfig, run_simulation
from tests.conftest import WorkerProcess, wait_until
from tests.support.worker_views import decisions, failover_view

pytestmark = pytest.mark.kafka

FAST_CHECKPOINTS = {"AUTOPILOT_CHECKPOINT_INTERVAL_S": "1"}
REGIONAL = ("region_outage", "brownout", "flapping")
ENTRIES = ("failover", "failover_blocked")
# Detection targets, event seconds from onset: a hard outage (telemetry stops at once)
# within 30 s, anything that degrades first within 60 s.
HARD_OUTAGE_S = 30.0
DEGRADING_S = 60.0
# A region may still be judged on its incident a little after the incident's end.
SLACK_S = 60.0


def wait_evaluated(worker: WorkerProcess, ts: float) -> None:
    # The evidence reaches the evaluator through internal.region-evidence, after the
    # telemetry is read: on a shared 2-core machine that takes a while (a bound, not a claim).
    try:
        wait_until(lambda: (failover_view(worker)["evaluated_to"] or 0.0) >= ts, 300, "")
    except AssertionError:
        raise AssertionError(
            f"the worker did not evaluate region health up to {ts}; view: {failover_view(worker)}; "
            f"log tail: {worker.log()[-3000:]}"
        ) from None


def wait_evaluating(worker: WorkerProcess) -> None:
    wait_until(
        lambda: failover_view(worker)["evaluating"],
        60,
        "the worker is not assigned every metrics and interactions partition",
    )


async def _checkpointed_failed(bootstrap: str, topic: str, region: str) -> bool:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        values = []
        while batch := await consumer.getmany(timeout_ms=1000):
            values += [m.value for ms in batch.values() for m in ms]
        # One key, so one partition: the last value is the latest checkpoint.
        # A checkpoint holds the brain's state beside the positions it was written at.
        state = orjson.loads(values[-1])["state"] if values else None
        return state is not None and state["policy"]["regions"][region]["failed"]
    finally:
        await consumer.stop()


def incidents_of(truth: dict) -> list[dict]:
    return [i for i in truth["incidents"] if i["type"] in REGIONAL]


def score(found: list[Decision], truth: dict) -> None:
    """Assert the failover decisions against the ground truth of one simulated run."""
    config = load_region_config()
    incidents = incidents_of(truth)

    def incident_at(region: str, ts: float) -> dict | None:
        return next(
            (
                i
                for i in incidents
                if i["region"] == region and i["onset_ts"] <= ts <= i["end_ts"] + SLACK_S
            ),
            None,
        )

    for d in found:
        assert d.mode == "recommend" and d.reason, d
        assert d.evidence["health"]["region"] == d.subject["region"]
        if d.kind in ENTRIES:
            region = d.subject["region"]
            assert incident_at(region, d.ts) is not None, f"false {d.kind} of {region}: {d.reason}"
            assert "ranking" in d.evidence
        if d.kind == "failover":
            target = d.params["to"]
            assert all(config.allows(dc, target) for dc in d.params["data_classes"]), d.reason
            assert incident_at(target, d.ts) is None, f"moved to {target}, itself failing"

    for n, incident in enumerate(incidents):
        region, onset, end = incident["region"], incident["onset_ts"], incident["end_ts"]
        entries = [
            d
            for d in found
            if d.kind in ENTRIES
            and d.subject["region"] == region
            and onset <= d.ts <= end + SLACK_S
        ]
        assert len(entries) == 1, f"{incident}: {[(d.kind, d.ts - onset) for d in entries]}"
        [entry] = entries
        hard = incident["type"] == "region_outage" and incident["degrade_s"] == 0
        target = HARD_OUTAGE_S if hard else DEGRADING_S
        assert entry.ts - onset <= target, f"{incident['type']} of {region} took {entry.ts - onset}"
        if region == "eu-west":
            assert entry.kind == "failover_blocked"
            assert entry.params["data_classes"] == ["eu-personal"]
        else:
            assert entry.kind == "failover" and entry.params["data_classes"] == ["default"]
        later = [i["onset_ts"] for i in incidents[n + 1 :] if i["region"] == region]
        until = min(later, default=truth["end_ts"])
        failbacks = [
            d for d in found if d.kind == "failback" and d.subject["region"] == region
            and end <= d.ts < until
        ]  # fmt: skip
        if end < truth["end_ts"]:
            assert len(failbacks) == 1, f"no single failback of {region} after {incident}"


def test_scenario_set_is_scored_against_ground_truth_and_survives_kill_9(
    start_worker, kafka_bootstrap, topic_names, tmp_path
) -> None:
    worker = start_worker(FAST_CHECKPOINTS, name="first")
    wait_evaluating(worker)
    summary, truth = worker.simulate(tmp_path, "--scenario", "failover_suite", "--speed", "0")
    assert {i["type"] for i in incidents_of(truth)} == set(REGIONAL)
    end = summary["event_end_ts"]
    wait_evaluated(worker, end - 10.0)
    found = decisions(kafka_bootstrap, topic_names.failover)
    assert {d.kind for d in found} == {"failover", "failover_blocked", "failback"}
    score(found, truth)

    # The last incident, an ap-south outage, is still going on. Once the state that says so is
    # in the changelog, kill the worker without warning and restart it.
    last = incidents_of(truth)[-1]
    assert (last["region"], last["end_ts"]) == ("ap-south", end)
    changelog = f"{worker.env['AUTOPILOT_TOPIC_PREFIX']}paas-autopilot-region-brain-changelog"
    wait_until(
        lambda: asyncio.run(_checkpointed_failed(kafka_bootstrap, changelog, "ap-south")),
        60,
        "the failed-over ap-south never reached the changelog",
    )
    worker.stop(signal.SIGKILL)
    restarted = start_worker(FAST_CHECKPOINTS, name="second")
    wait_until(
        lambda: failover_view(restarted)["failed"] == ["ap-south"],
        60,
        "the restarted worker did not restore the failed-over region",
    )

    # A minute more of the outage, after the first run in event time. A worker that had
    # forgotten would fail ap-south over again within 30 s of it.
    outage = parse_scenario({
        "name": "ap-south still down", "duration_s": 60,
        "incidents": [{"type": "region_outage", "region": "ap-south", "start_s": 0,
                       "duration_s": 60, "degrade_s": 0}],
    })  # fmt: skip
    more = SimConfig.for_scenario(outage, start_ts=end + 10.0, seed=1)
    sent = asyncio.run(run_simulation(more, bootstrap_servers=kafka_bootstrap, topics=topic_names))
    assert sent.failed == 0
    wait_evaluated(restarted, end + 10.0 + 50.0)
    after = [d for d in decisions(kafka_bootstrap, topic_names.failover) if d.ts > end]
    assert after == [], [(d.kind, d.subject, d.reason) for d in after]
    assert failover_view(restarted)["failed"] == ["ap-south"]
