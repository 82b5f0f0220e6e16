"""Erasure on the real broker: `autopilot erase` makes every worker forget a tenant, in
memory, in the GET views and in the latest checkpoints, and the audit trail records it;
once the log cleaner has run, no record of the changelog names the tenant."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from models.brains.interactions import pseudonym
from schemas.topics import TopicNames
from tests.conftest import AUTOPILOT, WorkerProcess, wait_until
from tests.support.worker_views import FAST_CHECKPOINTS, read_topic

TENANT = "t-0001"
SALT = "erasure-test-salt"


def tenant_view(worker: WorkerProcess, tenant: str) -> dict:
    url = f"http://127.0.0.1:{worker.web_port}/tenants/{tenant}/"
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


def changelog(names: TopicNames) -> str:
    return f"{names.prefix}paas-autopilot-tenant-brain-changelog"


def records(bootstrap: str, topic: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
    return asyncio.run(read_topic(bootstrap, topic))


def latest(rows) -> dict[tuple[int, bytes | None], bytes | None]:
    """The latest value of each key: what a worker restoring the table reads."""
    return {(p, key): value for p, _, key, value in rows}


async def _compact_fast(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # AlterConfigs replaces a topic's whole configuration: the changelog's compaction
        # must be restated, or the topic falls back to deletion and is never compacted.
        configs = {
            "cleanup.policy": "compact",
            "segment.ms": "1000",
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": "1000",
            "max.compaction.lag.ms": "1000",
        }
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


@pytest.mark.kafka
def test_erase_forgets_the_tenant_everywhere_and_the_trail_records_it(
    start_worker, kafka_bootstrap: str, topic_names: TopicNames, tmp_path
) -> None:
    env = {**FAST_CHECKPOINTS, "AUTOPILOT_PSEUDONYM_SALT": SALT}
    worker = start_worker(env, name="w1")
    other = start_worker(env, name="w2")  # erasure must reach every worker
    name = pseudonym(TENANT, SALT.encode())
    summary, _ = worker.simulate(
        tmp_path, "--scenario", "healthy", "--duration", "300", "--tenants", "4"
    )
    sent = summary["sent"]["interactions"]
    wait_until(
        lambda: sum(
            w.metric("autopilot_events_processed_total", topic="interactions.by-tenant")
            for w in (worker, other)
        ) >= sent,
        180, "tenant requests not all handled",
    )  # fmt: skip
    # The topic also carries progress records: the requests may still wait in a buffer.
    wait_until(
        lambda: any(tenant_view(w, name)["held"] for w in (worker, other)),
        120, "no worker learned the tenant",
    )  # fmt: skip

    def named(topic: str, only_latest: bool = True) -> bool:
        rows = records(kafka_bootstrap, topic)
        values = latest(rows).values() if only_latest else [v for _, _, _, v in rows]
        return any(v and name.encode() in v for v in values)

    topic = changelog(topic_names)
    wait_until(lambda: named(topic), 60, "the tenant never reached a checkpoint")
    asyncio.run(_compact_fast(kafka_bootstrap, topic))

    run = subprocess.run(
        [str(AUTOPILOT), "erase", "--tenant", TENANT, "--reason", "ticket DPO-42"],
        env=worker.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert name in run.stdout

    # Memory and views, on both workers.
    for w in (worker, other):
        wait_until(lambda w=w: tenant_view(w, name)["erased"], 60, "erasure did not arrive")
        view = tenant_view(w, name)
        assert view["ready"] and view["held"] == {}, view
    # The latest checkpoint of every partition no longer names the tenant.
    wait_until(lambda: not named(topic), 60, "a latest checkpoint still names the tenant")

    # The trail records the erasure, with its reason.
    def erasures() -> list[dict]:
        entries = [
            orjson.loads(v) for _, _, _, v in records(kafka_bootstrap, topic_names.audit_trail)
        ]
        return [e for e in entries if e["kind"] == "erasure"]

    wait_until(lambda: erasures(), 60, "no erasure in the trail")
    assert [e["body"]["reason"] for e in erasures()] == ["ticket DPO-42"]

    # A restart restores the brains from the changelog: the tenant stays forgotten.
    worker.stop()
    other.stop()
    restarted = start_worker(env, name="w3")
    wait_until(lambda: tenant_view(restarted, name)["ready"], 60, "not ready")
    wait_until(lambda: tenant_view(restarted, name)["erased"], 60, "erasure not re-read")
    assert tenant_view(restarted, name)["held"] == {}

    # Once the cleaner has compacted the changelog, no record at all names the tenant. More
    # checkpoints roll the segments that hold the old values (the active one is never
    # cleaned): new traffic of another tenant (t-0000 only) makes them.
    restarted.simulate(
        tmp_path, "--scenario", "healthy", "--duration", "120", "--tenants", "1", name="later"
    )
    wait_until(
        lambda: not named(topic, only_latest=False),
        150, "the log cleaner left a record naming the tenant",
        interval=5,
    )  # fmt: skip
