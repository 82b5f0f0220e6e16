"""The README's producer guide examples, run as written against the real broker."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from schemas import Limits, MetricSample
from schemas.validate import Envelope, parse_message
from tests.support.debian import ensure_debian_package

pytestmark = pytest.mark.kafka

README = Path(__file__).resolve().parents[2] / "README.md"


def guide_blocks() -> dict[str, str]:
    guide = README.read_text().split("## Producer guide", 1)[1].split("\n## ", 1)[0]
    return {lang: body for lang, body in re.findall(r"```(\w+)\n(.*?)```", guide, re.S)}


async def read_values(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        got: list[tuple[bytes, bytes]] = []
        async with asyncio.timeout(60):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                got.extend((m.key, m.value) for msgs in batch.values() for m in msgs)
        return got
    finally:
        await consumer.stop()


def test_python_and_kcat_examples_produce_valid_samples(kafka_bootstrap, topic_names) -> None:
    blocks = guide_blocks()
    topic = topic_names.metrics
    python = blocks["python"]
    assert 'BOOTSTRAP = "127.0.0.1:9092"' in python and 'TOPIC = "telemetry.metrics"' in python
    python = python.replace("127.0.0.1:9092", kafka_bootstrap).replace(
        '"telemetry.metrics"', f'"{topic}"'
    )
    ran = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr

    ensure_debian_package("kcat")
    assert shutil.which("kcat")
    shell = blocks["sh"].replace("127.0.0.1:9092", kafka_bootstrap)
    shell = shell.replace("-t telemetry.metrics", f"-t {topic}")
    ran = subprocess.run(["bash", "-c", shell], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr

    # Python: one sample, then an envelope of three; kcat: one sample.
    messages = asyncio.run(read_values(kafka_bootstrap, topic, 3))
    assert len(messages) == 3
    samples = []
    for key, value in messages:
        assert key == b"checkout/eu-west"
        parsed = parse_message("metrics", value, now=time.time(), limits=Limits())
        samples += parsed.records if isinstance(parsed, Envelope) else [parsed]
    assert len(samples) == 5
    for sample in samples:
        assert isinstance(sample, MetricSample), sample
        assert sample.metrics["cpu_util"] == 0.42
