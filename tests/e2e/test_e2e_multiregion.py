"""Multi-region on real clusters: a Kafka cluster per region and a global one, MirrorMaker 2
between them, the engine on ``global``; losing ``eu-west`` whole must fail it over, and the
decision must reach ``us-east``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from schemas import Decision
from schemas.topics import TopicNames
from streams.kafka.local import KafkaLocal, free_port, named_broker
from streams.kafka.mirror import MirrorMaker, hub_flows
from tests.conftest import AUTOPILOT, WorkerProcess, spawn_worker, wait_until
from tests.support.worker_views import FAST_CHECKPOINTS, decisions, failover_view

pytestmark = pytest.mark.kafka

REGIONS = ("us-east", "eu-west")
HUB = "global"
SERVICES = "checkout,search,catalog,cart"
# A hard outage is caught within 30 event seconds of its onset (test_e2e_failover.py).
HARD_OUTAGE_S = 30.0
# The platform of this test: two regions, either may take the other's traffic.
REGIONS_TOML = """
[regions.us-east]
jurisdiction = "US"
headroom = 0.4
cost = 1.0

[regions.eu-west]
jurisdiction = "EU"
headroom = 0.35
cost = 1.1

[latency_ms.us-east]
eu-west = 75

[residency]
default = ["*"]
"""


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[dict[str, KafkaLocal]]:
    """The regional clusters and the global one, each with its own ports and cluster id."""
    brokers = {
        name: named_broker(name, port=free_port(), data_dir=tmp_path / f"kafka-{name}")
        for name in (*REGIONS, HUB)
    }
    try:
        # One after the other, from this thread: an owned broker dies with the thread that
        # started it (PR_SET_PDEATHSIG), so not from a pool's.
        for broker in brokers.values():
            broker.start(owned=True)
        yield brokers
    finally:
        for broker in brokers.values():
            broker.stop()


def simulate(region: str, broker: KafkaLocal, topics: TopicNames, out: Path) -> subprocess.Popen:
    """One region's producers: its services' telemetry to its own cluster, in real time after
    ten minutes of history."""
    env = {
        **os.environ,
        "AUTOPILOT_BROKER": f"kafka://{broker.bootstrap}",
        "AUTOPILOT_TOPIC_PREFIX": topics.prefix,
    }
    log = (out / f"sim-{region}.log").open("ab")
    return subprocess.Popen(
        [str(AUTOPILOT), "simulate", "--scenario", "healthy", "--regions", region,
         "--services", SERVICES, "--tenants", "4", "--history", "600", "--duration", "900",
         "--speed", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def _latest_ts(bootstrap: str, topic: str, region: str) -> float:
    """The event time of the last sample of ``region`` in ``topic``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    latest = 0.0
    try:
        while batch := await consumer.getmany(timeout_ms=3000):
            for message in (m for ms in batch.values() for m in ms):
                record = orjson.loads(message.value)
                for sample in record.get("samples", [record]):
                    if sample.get("region") == region:
                        latest = max(latest, sample["ts"])
        return latest
    finally:
        await consumer.stop()


def test_losing_a_region_fails_it_over_and_the_decision_reaches_the_other_region(
    clusters: dict[str, KafkaLocal], topic_names: TopicNames, tmp_path: Path
) -> None:
    hub = clusters[HUB]
    started: list[WorkerProcess] = []
    sims: dict[str, subprocess.Popen] = {}
    mirror = MirrorMaker(
        {name: broker.bootstrap for name, broker in clusters.items()},
        hub_flows(REGIONS, HUB, topic_names),
        data_dir=tmp_path / "mirror",
    )
    regions = tmp_path / "regions.toml"
    regions.write_text(REGIONS_TOML)
    env = {
        **os.environ,
        "AUTOPILOT_REGIONS": str(regions),
        "AUTOPILOT_BROKER": f"kafka://{hub.bootstrap}",
        "AUTOPILOT_TOPIC_PREFIX": topic_names.prefix,
        "AUTOPILOT_PARTITIONS": "4",
        "AUTOPILOT_DATA_DIR": str(tmp_path / "worker-data"),
        **FAST_CHECKPOINTS,
    }
    try:
        # The worker creates its topics on the hub; MirrorMaker creates their replicas.
        worker = spawn_worker(env, tmp_path, "worker", started)
        wait_until(lambda: failover_view(worker)["evaluating"], 60, "no region evaluator")
        mirror.start(owned=True)
        for region in REGIONS:
            sims[region] = simulate(region, clusters[region], topic_names, tmp_path)

        # Both regions reach the engine and it evaluates them in real time.
        def evaluating_now() -> bool:
            view = failover_view(worker)
            return (
                set(REGIONS) <= set(view["regions"])
                and (view["evaluated_to"] or 0.0) >= time.time() - 30.0
            )

        wait_until(evaluating_now, 300, f"the hub never caught up: {failover_view(worker)}")
        assert failover_view(worker)["failed"] == []

        # eu-west is lost whole: its producers and its cluster at once.
        sims.pop("eu-west").send_signal(signal.SIGKILL)
        clusters["eu-west"].stop()
        lost_at = time.time()
        onset = asyncio.run(_latest_ts(hub.bootstrap, topic_names.metrics, "eu-west"))
        assert lost_at - 30.0 < onset <= lost_at

        def failed_over() -> list[Decision]:
            found = decisions(clusters["us-east"].bootstrap, topic_names.failover)
            return [d for d in found if d.subject.get("region") == "eu-west"]

        wait_until(
            lambda: failed_over(),
            180,
            f"no failover of eu-west reached us-east; view: {failover_view(worker)}; "
            f"mirror: {mirror.log_tail()}",
        )
        arrived_s = time.time() - lost_at
        [decision] = failed_over()
        assert (decision.kind, decision.action) == ("failover", "shift_traffic")
        assert decision.params["to"] == "us-east"
        # Detection in event time, as for one cluster; the mirrors add only wall time.
        assert decision.ts - onset <= HARD_OUTAGE_S + 5.0, (decision.ts, onset)
        on_hub = decisions(hub.bootstrap, topic_names.failover)
        assert [d.decision_id for d in on_hub] == [decision.decision_id]
        print(
            f"eu-west lost at {lost_at:.1f}: decided at event {decision.ts - onset:.1f}s after "
            f"its last sample; on us-east {arrived_s:.1f}s after the loss"
        )
    finally:
        for sim in sims.values():
            sim.kill()
        mirror.stop()
        for started_worker in started:
            started_worker.stop()
