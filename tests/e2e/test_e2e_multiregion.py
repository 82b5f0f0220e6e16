"""Multi-region on real clusters: a Kafka cluster per region and a global one, MirrorMaker 2
between them, the engine on ``global``; losing ``eu-west`` whole must fail it over, and the
decision must reach ``us-east``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import Decision
from schemas.topics import TopicNames
from streams.kafka.local import KafkaLocal, free_port, named_broker
from streams.kafka.mirror import MirrorMaker, hub_flows, standby_flow
from streams.kafka.topics import create_topics
from tests.conftest import AUTOPILOT, WorkerProcess, spawn_worker, wait_until
from tests.support.worker_views import FAST_CHECKPOINTS, decisions, failover_view

pytestmark = pytest.mark.kafka

REGIONS = ("us-east", "eu-west")
HUB = "global"
STANDBY = "standby"
SERVICES = "checkout,search,catalog,cart"
# A hard outage is caught within 30 event seconds of its onset (test_e2e_failover.py).
HARD_OUTAGE_S = 30.0
# How far behind the end of a partition of the standby's copy its translated offset may be:
# the offset sync's lag (10 records), and about two records a second of the primary's commit
# interval and MirrorMaker's checkpoint and sync intervals (a second each), with room.
TRANSLATION_SLACK = 30
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


def start_clusters(names: tuple[str, ...], tmp_path: Path) -> Iterator[dict[str, KafkaLocal]]:
    """Local clusters of these names, each with its own ports and cluster id."""
    brokers = {
        name: named_broker(name, port=free_port(), data_dir=tmp_path / f"kafka-{name}")
        for name in names
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


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[dict[str, KafkaLocal]]:
    """The regional clusters and the global one."""
    yield from start_clusters((*REGIONS, HUB), tmp_path)


@pytest.fixture
def clusters_with_standby(tmp_path: Path) -> Iterator[dict[str, KafkaLocal]]:
    """The regional clusters, the global one, and a standby for the engine in another place."""
    yield from start_clusters((*REGIONS, HUB, STANDBY), tmp_path)


def simulate(region: str, broker: KafkaLocal, topics: TopicNames, out: Path) -> subprocess.Popen:
    """One region's producers: its services' telemetry to its own cluster, in real time.

    No history sent ahead: each region's simulator would send its own as fast as it can, and
    the one that starts later would look silent to the engine for a while."""
    env = {
        **os.environ,
        "AUTOPILOT_BROKER": f"kafka://{broker.bootstrap}",
        "AUTOPILOT_TOPIC_PREFIX": topics.prefix,
    }
    log = (out / f"sim-{region}.log").open("ab")
    return subprocess.Popen(
        [str(AUTOPILOT), "simulate", "--scenario", "healthy", "--regions", region,
         "--services", SERVICES, "--tenants", "4", "--duration", "900", "--tick", "1",
         "--no-envelope",
         "--speed", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def _latest_ts(bootstrap: str, topic: str, region: str) -> float:
    """The event time of the last sample of ``region`` in ``topic``, as far as it holds now."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    latest, ends = 0.0, None
    try:
        while ends is None or [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(timeout_ms=1000)
            if ends is None and consumer.assignment():
                # Taken after the first fetch: what that fetch returned lies before it.
                ends = await consumer.end_offsets(list(consumer.assignment()))
            for message in (m for tp, ms in batch.items() for m in ms if m.offset < ends[tp]):
                record = orjson.loads(message.value)
                for sample in record.get("samples", [record]):
                    if sample.get("region") == region:
                        latest = max(latest, sample["ts"])
        return latest
    finally:
        await consumer.stop()


def create_region_topics(clusters: dict[str, KafkaLocal], topics: TopicNames) -> None:
    """The inputs and decision topics in every region before MirrorMaker starts: it copies a
    topic it sees at start at once, one created later only at its next look (5 s), and a
    region whose telemetry comes seconds after the other's looks silent to the engine."""
    specs = [(name, 4, {}) for name in (*topics.inputs(), *topics.decisions())]
    for region in REGIONS:
        asyncio.run(create_topics(clusters[region].bootstrap, specs))


def engine_env(hub: KafkaLocal, topics: TopicNames, tmp_path: Path, name: str) -> dict:
    regions = tmp_path / "regions.toml"
    regions.write_text(REGIONS_TOML)
    return {
        **os.environ,
        "AUTOPILOT_REGIONS": str(regions),
        "AUTOPILOT_BROKER": f"kafka://{hub.bootstrap}",
        "AUTOPILOT_TOPIC_PREFIX": topics.prefix,
        "AUTOPILOT_PARTITIONS": "4",
        "AUTOPILOT_DATA_DIR": str(tmp_path / f"{name}-data"),
        **FAST_CHECKPOINTS,
    }


def wait_evaluating_now(worker: WorkerProcess) -> None:
    """Until the worker has both regions' telemetry and evaluates them in real time."""

    def evaluating_now() -> bool:
        view = failover_view(worker)
        return (
            set(REGIONS) <= set(view["regions"])
            and (view["evaluated_to"] or 0.0) >= time.time() - 30.0
        )

    wait_until(evaluating_now, 300, f"the engine never caught up: {failover_view(worker)}")


def start_engine(
    name: str,
    clusters: dict[str, KafkaLocal],
    mirror: MirrorMaker,
    topics: TopicNames,
    tmp_path: Path,
    started: list[WorkerProcess],
    sims: dict[str, subprocess.Popen],
) -> WorkerProcess:
    """The engine on the hub, then the regions' topics, MirrorMaker and each region's
    producers; returns once the engine evaluates both regions in real time."""
    # The worker creates its topics on the hub; MirrorMaker creates their replicas.
    worker = spawn_worker(
        engine_env(clusters[HUB], topics, tmp_path, name), tmp_path, name, started
    )
    wait_until(lambda: failover_view(worker)["evaluating"], 60, "no region evaluator")
    create_region_topics(clusters, topics)
    mirror.start(owned=True)
    for region in REGIONS:
        sims[region] = simulate(region, clusters[region], topics, tmp_path)
    wait_evaluating_now(worker)
    return worker


def failovers_of(region: str, bootstrap: str, topics: TopicNames) -> list[Decision]:
    found = decisions(bootstrap, topics.failover)
    return [d for d in found if d.subject.get("region") == region]


def wait_failover(region: str, seen_in: KafkaLocal, topics: TopicNames, why: Callable) -> None:
    wait_until(
        lambda: failovers_of(region, seen_in.bootstrap, topics),
        180,
        f"no failover of {region} reached {seen_in.name}: {why()}",
    )


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
    try:
        worker = start_engine("worker", clusters, mirror, topic_names, tmp_path, started, sims)
        assert failover_view(worker)["failed"] == []

        # eu-west is lost whole: its producers and its cluster at once.
        sims.pop("eu-west").send_signal(signal.SIGKILL)
        clusters["eu-west"].stop()
        lost_at = time.time()
        onset = asyncio.run(_latest_ts(hub.bootstrap, topic_names.metrics, "eu-west"))
        assert lost_at - 30.0 < onset <= lost_at

        wait_failover(
            "eu-west", clusters["us-east"], topic_names,
            lambda: f"view: {failover_view(worker)}; mirror: {mirror.log_tail()}",
        )  # fmt: skip
        arrived_s = time.time() - lost_at
        [decision] = failovers_of("eu-west", clusters["us-east"].bootstrap, topic_names)
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


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """``partition: (committed offset of group, end offset)`` of ``topic``."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(4)])
        return {
            tp.partition: (committed[tp].offset if tp in committed else -1, end)
            for tp, end in ends.items()
        }
    finally:
        await consumer.stop()
        await admin.close()


def test_a_standby_engine_takes_over_from_translated_offsets_when_the_hub_is_lost(
    clusters_with_standby: dict[str, KafkaLocal], topic_names: TopicNames, tmp_path: Path
) -> None:
    clusters = clusters_with_standby
    hub, standby = clusters[HUB], clusters[STANDBY]
    group = f"{topic_names.prefix}paas-autopilot"
    started: list[WorkerProcess] = []
    sims: dict[str, subprocess.Popen] = {}
    addresses = {name: broker.bootstrap for name, broker in clusters.items()}
    primary_mirror = MirrorMaker(
        addresses,
        [
            *hub_flows(REGIONS, HUB, topic_names),
            standby_flow(HUB, STANDBY, REGIONS, topic_names, group),
        ],
        data_dir=tmp_path / "mirror-primary",
    )
    takeover_mirror = MirrorMaker(
        {name: b for name, b in addresses.items() if name != HUB},
        hub_flows(REGIONS, STANDBY, topic_names),
        data_dir=tmp_path / "mirror-takeover",
    )
    try:
        primary = start_engine(
            "primary", clusters, primary_mirror, topic_names, tmp_path, started, sims
        )

        # MirrorMaker translates the primary's committed offsets to the standby; well into
        # the run, so that resuming from the beginning and from the translation differ.
        def translated() -> dict[int, tuple[int, int]]:
            return asyncio.run(_committed(standby.bootstrap, group, topic_names.metrics))

        def translated_well_into_the_run() -> bool:
            offsets = translated()
            return max(end for _, end in offsets.values()) > 2 * TRANSLATION_SLACK and all(
                c > 0 for c, end in offsets.values() if end > 0
            )

        wait_until(
            translated_well_into_the_run,
            180,
            f"no offsets translated to the standby: {primary_mirror.log_tail()}",
        )

        # eu-west's services go silent; four seconds later, before the failover is decided,
        # the hub's region is lost with the primary engine and its mirror.
        sims.pop("eu-west").send_signal(signal.SIGKILL)
        time.sleep(4.0)
        lost_at = time.time()
        primary.stop(signal.SIGKILL)
        hub.stop()
        primary_mirror.stop()
        resumed_at = translated()

        # The standby takes over: the regions mirror to it, then its engine starts.
        takeover_mirror.start(owned=True)
        standby_worker = spawn_worker(
            engine_env(standby, topic_names, tmp_path, "standby"), tmp_path, "standby", started
        )
        onset = asyncio.run(_latest_ts(standby.bootstrap, topic_names.metrics, "eu-west"))
        wait_failover(
            "eu-west", clusters["us-east"], topic_names,
            lambda: f"view: {failover_view(standby_worker)}; mirror: {takeover_mirror.log_tail()}",
        )  # fmt: skip

        # Not from the beginning, nor from the end: each partition resumes past its start, at
        # most a checkpoint interval and an offset sync's lag (10 records) behind its end.
        assert all(
            c > 0 and end - TRANSLATION_SLACK <= c <= end
            for c, end in resumed_at.values()
            if end > 0
        ), resumed_at
        assert any(c < end for c, end in resumed_at.values()), resumed_at
        taken_over_s = time.time() - lost_at
        found = failovers_of("eu-west", clusters["us-east"].bootstrap, topic_names)
        # Delivered once, or again by the standby: one decision either way.
        assert len({d.decision_id for d in found}) == 1, [
            (d.decision_id, d.ts, d.kind, d.params, d.reason) for d in found
        ]
        decision = found[0]
        assert decision.params["to"] == "us-east"
        assert decision.ts - onset <= HARD_OUTAGE_S + 5.0, (decision.ts, onset)
        # Both regions see the same decisions, and no decision is repeated under a new id.
        seen = {
            region: [d for name in topic_names.decisions()
                     for d in decisions(clusters[region].bootstrap, name)]
            for region in REGIONS
        }  # fmt: skip
        assert {d.decision_id for d in seen["us-east"]} == {d.decision_id for d in seen["eu-west"]}
        by_what: dict[tuple, set[str]] = {}
        for d in seen["us-east"]:
            what = (d.kind, tuple(sorted(d.subject.items())), d.ts, d.action)
            by_what.setdefault(what, set()).add(d.decision_id)
        assert {w: ids for w, ids in by_what.items() if len(ids) > 1} == {}
        print(
            f"standby resumed at (committed, end) {resumed_at}; the failover reached us-east "
            f"{taken_over_s:.1f} s after the hub was lost, decided at event "
            f"{decision.ts - onset:.1f} s after eu-west's last sample; "
            f"{len(seen['us-east'])} decisions in us-east"
        )
    finally:
        for sim in sims.values():
            sim.kill()
        takeover_mirror.stop()
        primary_mirror.stop()
        for started_worker in started:
            started_worker.stop()
