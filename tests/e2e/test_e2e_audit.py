"""The audit trail on the real broker: every decision and actuation record is chained once,
across a restart, and `autopilot audit verify` names the offset of an altered, dropped,
reordered or forged entry."""

from __future__ import annotations

import asyncio
import subprocess
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from models.compliance.trail import canonical, entry_hash
from schemas import Decision, decision_id_for
from schemas.topics import TopicNames
from tests.conftest import AUTOPILOT, wait_until
from tests.support.worker_views import read_topic

PARTITIONS = 4


def decision(i: int, kind: str = "scaling") -> Decision:
    subject = {"service": f"svc{i % 7}", "region": "eu-west"}
    params = {"desired_replicas": i}
    return Decision(
        decision_id=decision_id_for(kind, subject, "scale_out", params, [float(i)]),
        kind=kind,
        ts=time.time(),
        subject=subject,
        action="scale_out" if kind == "scaling" else "hold_traffic",
        params=params,
        mode="recommend",
        confidence=0.5,
        reason="Test decision.",
        evidence={"i": i},
        model_version="test",
    )


async def _produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes, int | None]]):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value, partition in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes, int | None]]) -> None:
    asyncio.run(_produce(bootstrap, records))


def publish(bootstrap: str, names: TopicNames, decisions: list[Decision]) -> None:
    produce(
        bootstrap,
        [
            (names.prefix + d.topic, "/".join(d.subject.values()).encode(), d.to_bytes(), None)
            for d in decisions
        ],
    )


def trail(bootstrap: str, names: TopicNames) -> list[tuple[int, int, bytes | None, bytes]]:
    return asyncio.run(read_topic(bootstrap, names.audit_trail))


def verify(worker_env: dict[str, str], *args: str) -> tuple[int, dict]:
    run = subprocess.run(
        [str(AUTOPILOT), "audit", "verify", "--json", *args],
        env=worker_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.stdout, run.stderr[-2000:]
    return run.returncode, orjson.loads(run.stdout.strip().splitlines()[-1])


def copy_trail(bootstrap: str, rows, topic: str) -> None:
    """Write ``rows`` ((partition, key, value)) to a new topic, each to its partition."""
    produce(bootstrap, [(topic, key, value, p) for p, key, value in rows])


@pytest.mark.kafka
def test_trail_chains_every_record_once_and_verify_finds_tampering(
    start_worker, kafka_bootstrap: str, topic_names: TopicNames
) -> None:
    worker = start_worker(name="w1")
    first = [decision(i) for i in range(12)] + [decision(i, "failover") for i in range(4)]
    # A decision published twice (a brain replaying after a restore) is recorded once.
    publish(kafka_bootstrap, topic_names, [*first, first[3]])
    actuation = {"decision_id": first[0].decision_id, "outcome": "refused", "code": "test"}
    produce(kafka_bootstrap, [(topic_names.audit, b"x", orjson.dumps(actuation), 1)])
    wait_until(lambda: len(trail(kafka_bootstrap, topic_names)) >= 17, 90, "17 entries")

    # A restart: the head survives in its table; replayed records are not chained again.
    worker.stop()
    worker = start_worker(name="w2")
    second = [decision(i) for i in range(100, 108)]
    publish(kafka_bootstrap, topic_names, [*second, first[5]])
    wait_until(lambda: len(trail(kafka_bootstrap, topic_names)) >= 25, 90, "25 entries")
    time.sleep(3)  # nothing more should come
    rows = trail(kafka_bootstrap, topic_names)
    entries = [orjson.loads(v) for _, _, _, v in rows]
    ids = [e["record_id"] for e in entries]
    assert len(rows) == 25 and len(set(ids)) == 25
    assert {e["kind"] for e in entries} == {"decision", "actuation"}
    assert all(e["chain"] == p for (p, _, _, _), e in zip(rows, entries, strict=True))
    code, result = verify(worker.env)
    assert (code, result["ok"], result["entries"]) == (0, True, 25), result

    # Pick a chain with at least three entries and tamper with copies of the trail.
    by_partition: dict[int, list] = {}
    for p, _, key, value in rows:
        by_partition.setdefault(p, []).append((p, key, value))
    p = max(by_partition, key=lambda q: len(by_partition[q]))
    chain = by_partition[p]
    assert len(chain) >= 3
    others = [r for q, rs in by_partition.items() if q != p for r in rs]

    def tampered(name: str, rows_p: list) -> dict:
        topic = f"{topic_names.prefix}forged-{name}"
        copy_trail(kafka_bootstrap, others + rows_p, topic)
        code, result = verify(worker.env, "--topic", topic)
        assert code == 1 and not result["ok"], result
        return {b["partition"]: (b["offset"], b["problem"]) for b in result["first_bad"]}

    altered = orjson.loads(chain[1][2])
    altered["body"]["reason"] = "Nothing to see here."
    forged = (p, chain[1][1], canonical(altered))
    assert tampered("altered", [chain[0], forged, *chain[2:]]) == {p: (1, "altered")}
    assert tampered("dropped", [chain[0], *chain[2:]]) == {p: (1, "gap")}
    assert tampered("reordered", [chain[0], chain[2], chain[1], *chain[3:]]) == {
        p: (1, "reordered")
    }
    # A forger who also recomputes the altered entry's hash breaks the next link.
    altered["hash"] = entry_hash(altered)
    rehashed = (p, chain[1][1], canonical(altered))
    assert tampered("rehashed", [chain[0], rehashed, *chain[2:]]) == {p: (2, "broken_link")}

    # A forged entry appended to the real trail: verify names its offset.
    fake = orjson.loads(chain[-1][2])
    fake["body"] = {"decision_id": "f" * 32, "reason": "forged"}
    fake["record_id"] = "f" * 32
    fake["hash"] = entry_hash(fake)
    produce(kafka_bootstrap, [(topic_names.audit_trail, b"f", canonical(fake), p)])
    code, result = verify(worker.env)
    assert code == 1
    assert [(b["partition"], b["offset"], b["problem"]) for b in result["first_bad"]] == [
        (p, len(chain), "duplicate")
    ]
