"""What tests read from a running worker and the broker: decisions, views, /metrics."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from schemas import Decision
from tests.conftest import WorkerProcess

FAST_CHECKPOINTS = {"AUTOPILOT_CHECKPOINT_INTERVAL_S": "1"}


async def _decisions(bootstrap: str, topic: str) -> list[Decision]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[Decision] = []
        while batch := await consumer.getmany(timeout_ms=3000):
            found += [Decision.from_bytes(m.value) for ms in batch.values() for m in ms]
        return found
    finally:
        await consumer.stop()


def decisions(bootstrap: str, topic: str) -> list[Decision]:
    return asyncio.run(_decisions(bootstrap, topic))


def identity(d: Decision) -> tuple:
    """What a decision is about: a replay of its input must give it the same id.

    Kind, subject, event time and action, and the metric (anomalies) or the rule (SLO burns)
    it concerns: two rules may fire for one tenant at once, and those are two decisions.
    """
    subject = tuple(sorted(d.subject.items()))
    return (d.kind, subject, d.ts, d.action, d.params.get("metric"), d.params.get("rule"))


def failover_view(worker: WorkerProcess) -> dict:
    """The worker's region brain (``GET /failover/``)."""
    url = f"http://127.0.0.1:{worker.web_port}/failover/"
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


def cost_view(worker: WorkerProcess) -> dict:
    """The worker's budgets (``GET /cost/``)."""
    url = f"http://127.0.0.1:{worker.web_port}/cost/"
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


def brain_view(worker: WorkerProcess, service: str, region: str) -> dict:
    url = f"http://127.0.0.1:{worker.web_port}/brain/{service}/{region}/"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return orjson.loads(exc.read())


Sample = tuple[str, dict[str, str], float]


def exposition(worker: WorkerProcess) -> tuple[dict[str, str], list[Sample]]:
    """(family -> type, [(sample name, labels, value)]) of a worker's /metrics."""
    types, samples = {}, []
    for line in worker.metrics_text().splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ")
            types[family] = kind
        elif line and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            name, _, rest = head.partition("{")
            samples.append((name, dict(re.findall(r'(\w+)="([^"]*)"', rest)), float(value)))
    return types, samples


def lag_partitions(worker: WorkerProcess) -> dict[tuple[str, str], float]:
    """(topic, partition) -> lag, of the partitions this worker exports."""
    _, samples = exposition(worker)
    return {
        (labels["topic"], labels["partition"]): value
        for name, labels, value in samples
        if name == "autopilot_consumer_lag"
    }


async def read_records(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to its end now, partition by partition, in offset order.

    The subscription only finds the partitions, which are then assigned by hand, and reset
    to the earliest offset: a subscription's background offset reset could otherwise move a
    seek to the beginning back to the end and read nothing. A topic whose partitions are
    not known within 60 s fails the test rather than reading as empty.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        for _ in range(300):
            if tps := sorted(consumer.assignment()):
                break
            await asyncio.sleep(0.2)
        assert tps, f"topic {topic} has no partitions"
        consumer.unsubscribe()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for m in (await consumer.getmany(tp, timeout_ms=2000)).get(tp, []):
                    if m.offset < ends[tp]:
                        found.append(m)
        return found
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every record of ``topic`` up to its end now, as ``(partition, offset, key, value)``."""
    return [(m.partition, m.offset, m.key, m.value) for m in await read_records(bootstrap, topic)]
