"""Bad input on the real broker: the worker stays up, every bad message is dead-lettered
with its reason and exact bytes, every good one is processed, and the counters add up."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas import DeadLetter
from tests.conftest import wait_until

pytestmark = pytest.mark.kafka

KEY = b"checkout/eu-west"
BIG = 8 * 1024 * 1024


def sample(**overrides) -> dict:
    body = {
        "ts": time.time(),
        "region": "eu-west",
        "service": "checkout",
        "metrics": {"cpu_util": 0.5, "rps": 100.0},
    }
    body.update(overrides)
    return body


def good(**overrides) -> bytes:
    return orjson.dumps(sample(**overrides))


def bad_cases() -> list[tuple[str, bytes, str]]:
    """(name, payload, expected reason) for every kind of bad input we promise to handle."""
    now = time.time()
    with_metric = b'{"ts": %d, "region": "eu-west", "service": "checkout", "metrics": {"rps": %s}}'
    deep = b'{"ts": 1, "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    huge_map = {f"m{i}": 1 for i in range(100_000)}
    return [
        ("empty", b"", "empty_payload"),
        ("non-utf8", b'{"ts": "\xff\xfe"}', "invalid_utf8"),
        ("truncated", good()[:25], "invalid_json"),
        ("array", b"[1, 2, 3]", "not_an_object"),
        ("deep", deep, "too_deep"),
        ("5MB", b'{"pad": "' + b"x" * (5 * 1024 * 1024) + b'"}', "payload_too_large"),
        ("NaN", with_metric % (now, b"NaN"), "not_finite"),
        ("Infinity", with_metric % (now, b"Infinity"), "not_finite"),
        ("1e400", with_metric % (now, b"1e400"), "not_finite"),
        ("string-number", good(metrics={"rps": "100"}), "wrong_type"),
        ("missing", orjson.dumps({"ts": now, "region": "eu-west", "metrics": {}}), "missing_field"),
        ("year-old", good(ts=now - 365 * 86400), "timestamp_skew"),
        ("year-ahead", good(ts=now + 365 * 86400), "timestamp_skew"),
        ("100k-map", good(metrics=huge_map), "payload_too_large"),
        ("300-map", good(metrics={f"m{i}": 1 for i in range(300)}), "too_many_entries"),
        ("fraction", good(metrics={"cpu_util": 1.5}), "out_of_range"),
        ("bad-region", good(region="EU WEST!"), "bad_name"),
    ]


async def create_metrics_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": str(BIG)}
        await admin.create_topics([NewTopic(topic, 4, 1, topic_configs=config)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=BIG, acks="all")
    await producer.start()
    try:
        for payload in payloads:
            await producer.send_and_wait(topic, payload, key=KEY)
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, topic: str, count: int) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * BIG, fetch_max_bytes=8 * BIG,
    )  # fmt: skip
    await consumer.start()
    try:
        letters: list[DeadLetter] = []
        async with asyncio.timeout(60):
            while len(letters) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                letters += [DeadLetter.from_bytes(m.value) for ms in batch.values() for m in ms]
        return letters
    finally:
        await consumer.stop()


def test_bad_input_is_dead_lettered_and_accounted_for(
    kafka_bootstrap, topic_names, start_worker
) -> None:
    asyncio.run(create_metrics_topic(kafka_bootstrap, topic_names.metrics))
    worker = start_worker()
    cases = bad_cases()
    valid = [good(), good(team="payments", extra={"nested": [1, 2]}), good()]
    payloads = [p for _, p, _ in cases] + valid
    asyncio.run(produce(kafka_bootstrap, topic_names.metrics, payloads))

    label = "telemetry.metrics"
    wait_until(
        lambda: worker.metric("autopilot_events_consumed_total", topic=label) == len(payloads),
        90,
        "worker did not consume every message",
    )
    letters = asyncio.run(dead_letters(kafka_bootstrap, topic_names.dlq, len(cases)))
    by_payload = {letter.payload(): letter for letter in letters}
    assert len(letters) == len(cases)
    for name, payload, reason in cases:
        letter = by_payload.get(payload)
        assert letter is not None, f"{name}: not in the DLQ with its exact bytes"
        assert letter.reason == reason, f"{name}: {letter.reason} ({letter.detail})"
        assert letter.source_topic == topic_names.metrics
        assert letter.payload_size == len(payload)
        assert b"x" * 64 not in letter.detail.encode()

    consumed = worker.metric("autopilot_events_consumed_total", topic=label)
    processed = worker.metric("autopilot_events_processed_total", topic=label)
    dead = worker.metric("autopilot_dlq_total", topic=label)
    assert (consumed, processed, dead) == (len(payloads), len(valid), len(cases))
    for reason in {r for _, _, r in cases}:
        expected = sum(1 for _, _, r in cases if r == reason)
        assert worker.metric("autopilot_dlq_total", topic=label, reason=reason) == expected
    assert worker.proc.poll() is None, "the worker died on bad input"
    assert "Traceback" not in worker.log()
