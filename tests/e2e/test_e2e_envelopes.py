"""Envelopes on the real broker: each record of ``{"samples": [...]}`` is validated on its
own, a bad one is dead-lettered alone with its envelope's offset and index, and the
counters count records."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import DeadLetter
from tests.conftest import wait_until
from tests.e2e.test_e2e_dlq import dead_letters

pytestmark = pytest.mark.kafka

KEY = b"checkout/eu-west"


def metric(**overrides) -> dict:
    body = {
        "ts": time.time(),
        "region": "eu-west",
        "service": "checkout",
        "metrics": {"cpu_util": 0.5, "rps": 100.0},
    }
    return body | overrides


def error(**overrides) -> dict:
    body = {
        "ts": time.time(),
        "region": "eu-west",
        "service": "checkout",
        "severity": "error",
        "error_type": "TimeoutError",
        "message": "upstream timed out after 30s",
    }
    return body | overrides


def envelope(*records: object) -> bytes:
    return orjson.dumps({"samples": list(records)})


# (logical topic, payload, records it counts for, {index in envelope: reason} of the
# records refused alone, or {None: reason} when the message is refused whole)
CASES = [
    ("telemetry.metrics", envelope(metric(), metric(), metric()), 3, {}),
    (
        "telemetry.metrics",
        envelope(
            metric(),
            {k: v for k, v in metric().items() if k != "service"},
            metric(),
            metric(metrics={"cpu_util": 1.5}),
            "not a record",
            metric(ts=time.time() - 365 * 86400),
        ),
        6,
        {1: "missing_field", 3: "out_of_range", 4: "not_an_object", 5: "timestamp_skew"},
    ),
    ("telemetry.metrics", orjson.dumps(metric()), 1, {}),
    ("telemetry.metrics", orjson.dumps(metric(region="EU WEST!")), 1, {None: "bad_name"}),
    ("telemetry.metrics", envelope(metric(), metric())[:-5], 1, {None: "invalid_json"}),
    ("telemetry.metrics", b'{"samples": {"ts": 1}}', 1, {None: "wrong_type"}),
    ("telemetry.metrics", b'{"samples": []}', 1, {None: "bad_value"}),
    ("telemetry.metrics", envelope(*[metric()] * 2001), 1, {None: "too_many_entries"}),
    ("telemetry.errors", envelope(error(), error(severity="fatal"), error()), 3, {1: "bad_value"}),
    ("telemetry.errors", orjson.dumps(error()), 1, {}),
]


async def produce(bootstrap: str, payloads: list[tuple[str, bytes]]) -> list[tuple[int, int]]:
    """Send each ``(topic, payload)`` in order; return the (partition, offset) of each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        placed = []
        for topic, payload in payloads:
            meta = await producer.send_and_wait(topic, payload, key=KEY)
            placed.append((meta.partition, meta.offset))
        return placed
    finally:
        await producer.stop()


def test_envelopes_dead_letter_bad_records_alone_and_count_records(
    kafka_bootstrap, topic_names, start_worker
) -> None:
    worker = start_worker()
    prefixed = {"telemetry.metrics": topic_names.metrics, "telemetry.errors": topic_names.errors}
    placed = asyncio.run(
        produce(kafka_bootstrap, [(prefixed[label], payload) for label, payload, *_ in CASES])
    )

    expected: dict[str, tuple[int, int, int]] = {}
    wanted: dict[tuple[str, int, int | None], str] = {}
    for (label, _, records, refused), (_, offset) in zip(CASES, placed, strict=True):
        consumed, processed, dead = expected.get(label, (0, 0, 0))
        bad = len(refused)
        expected[label] = (consumed + records, processed + records - bad, dead + bad)
        for index, reason in refused.items():
            wanted[(prefixed[label], offset, index)] = reason
    for label, (consumed, _, _) in expected.items():
        worker.wait_handled(label, consumed, timeout=90)

    def counts() -> dict[str, tuple[float, float, float]]:
        return {
            label: (
                worker.metric("autopilot_events_consumed_total", topic=label),
                worker.metric("autopilot_events_processed_total", topic=label),
                worker.metric("autopilot_dlq_total", topic=label),
            )
            for label in expected
        }

    # consumed = processed + dead-lettered, in records.
    wait_until(lambda: counts() == expected, 60, f"counters {counts()} != {expected}")

    letters: list[DeadLetter] = asyncio.run(
        dead_letters(kafka_bootstrap, topic_names.dlq, len(wanted))
    )
    found = {(dl.source_topic, dl.offset, dl.envelope_index): dl for dl in letters}
    assert len(letters) == len(wanted) and set(found) == set(wanted)
    for where, reason in wanted.items():
        letter = found[where]
        assert letter.reason == reason, f"{where}: {letter.reason} ({letter.detail})"
        if where[2] is not None:
            # A record refused alone carries itself only, not its whole envelope.
            record = orjson.loads(letter.payload())
            assert "samples" not in (record if isinstance(record, dict) else {})
            assert letter.payload_size == len(letter.payload())
    assert worker.proc.poll() is None, "the worker died on an envelope"
    assert "Traceback" not in worker.log()
