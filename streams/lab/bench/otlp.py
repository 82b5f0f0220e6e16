"""The bench's metric samples as the OpenTelemetry Collector's Kafka exporter would write them.

Each batch of ``envelope`` samples of one series becomes one OTLP
``ExportMetricsServiceRequest`` (protobuf): one resource (``service.name``,
``cloud.region``), one gauge per metric, one data point per sample, keyed by series as the
exporter's ``partition_metrics_by_resource_attributes`` keys it. Every value is a gauge, so
the worker's cost is reading, checking and forwarding points, not rate state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import NamedTuple

import orjson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from streams.lab.simulator import SimConfig, generate

__all__ = ["OtlpProduced", "otlp_requests", "produce_otlp"]


class OtlpProduced(NamedTuple):
    """What :func:`produce_otlp` wrote: requests, data points, and the samples they hold."""

    requests: int
    points: int
    samples: int


def otlp_requests(
    config: SimConfig, envelope: int, now: float
) -> Iterator[tuple[bytes, bytes, int, int]]:
    """``(key, request, data points, samples)`` of the simulation's metric samples."""
    open_batches: dict[bytes, list[dict]] = {}
    for attr, key, value, _ts in generate(config, now=now):
        if attr != "metrics":
            continue
        batch = open_batches.setdefault(key, [])
        batch.append(orjson.loads(value))
        if len(batch) >= envelope:
            yield key, *_request(batch), len(batch)
            del open_batches[key]
    for key, batch in open_batches.items():
        yield key, *_request(batch), len(batch)


def _request(samples: list[dict]) -> tuple[bytes, int]:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    first = samples[0]
    for name, value in (("service.name", first["service"]), ("cloud.region", first["region"])):
        resource.resource.attributes.add(key=name).value.string_value = value
    scope = resource.scope_metrics.add()
    gauges = {}
    points = 0
    for sample in samples:
        nanos = int(sample["ts"] * 1e9)
        for name, value in sample["metrics"].items():
            if name not in gauges:
                gauges[name] = scope.metrics.add(name=name).gauge.data_points
            gauges[name].add(time_unix_nano=nanos, as_double=value)
            points += 1
    return request.SerializeToString(), points


async def produce_otlp(
    bootstrap: str, topic: str, config: SimConfig, envelope: int, now: float
) -> OtlpProduced:
    """Write the simulation's samples to ``topic`` as OTLP requests; wait for every ack."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_request_size=4 << 20
    )
    await producer.start()
    requests = points = samples = 0
    try:
        pending = []
        for key, value, n_points, n_samples in otlp_requests(config, envelope, now):
            pending.append(await producer.send(topic, value, key=key))
            requests, points, samples = requests + 1, points + n_points, samples + n_samples
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return OtlpProduced(requests, points, samples)
