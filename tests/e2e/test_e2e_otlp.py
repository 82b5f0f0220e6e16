"""OpenTelemetry in, decisions out, on the real broker and a real OpenTelemetry Collector
(built from Go modules by :mod:`streams.otelcol.local`): a service instrumented with the
OpenTelemetry SDK gets the scaling and remediation decisions native records get; a scraped
Prometheus endpoint becomes a learned series; malformed OTLP is dead-lettered, point by
point, and nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from streams.kafka.local import free_port
from streams.otelcol.local import OtelcolLocal, ScrapeTarget, collector_config, free_ports
from tests.conftest import ROOT, wait_until
from tests.e2e.test_e2e_dlq import dead_letters
from tests.support.worker_views import FAST_CHECKPOINTS, brain_view, decisions

pytestmark = pytest.mark.kafka

log = logging.getLogger(__name__)

# The first use builds the collector (minutes); this bounds the wait, it is not a speed claim.
BUILD_TIMEOUT_S = 1200.0


@pytest.fixture
def collector(kafka_bootstrap, topic_names, tmp_path) -> Iterator[Callable[..., int]]:
    """Start a collector writing to this test's topics; returns its OTLP/HTTP port."""
    started: list[OtelcolLocal] = []

    def start(scrape: tuple[ScrapeTarget, ...] = (), encoding: str = "otlp_proto") -> int:
        grpc, http = free_ports(2)
        local = OtelcolLocal(tmp_path / f"otelcol-{len(started)}", log=log.info)
        config = collector_config(
            kafka_bootstrap,
            topic_prefix=topic_names.prefix,
            encoding=encoding,
            grpc_port=grpc,
            http_port=http,
            scrape=scrape,
            scrape_interval_s=1.0,
        )
        started.append(local)
        local.build()
        local.start(config, owned=True)
        return http

    yield start
    for local in started:
        local.stop()


def test_a_service_instrumented_with_opentelemetry_gets_scaled_and_remediated(
    start_worker, collector, kafka_bootstrap, topic_names
) -> None:
    worker = start_worker(FAST_CHECKPOINTS)
    http_port = collector()
    toy = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "support" / "otel_service.py"),
         "--endpoint", f"http://127.0.0.1:{http_port}"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert toy.returncode == 0, toy.stderr[-3000:]
    run = orjson.loads(toy.stdout.splitlines()[-1])
    # One sample per collection reaches telemetry.metrics, one event per ERROR log line.
    worker.wait_handled("telemetry.metrics", run["sent"]["metrics"])
    worker.wait_handled("telemetry.errors", run["sent"]["errors"])
    assert worker.metric("autopilot_dlq_total", topic="otlp_metrics") == 0
    assert worker.metric("autopilot_dlq_total", topic="otlp_logs") == 0

    surge, burst = run["truth"]["incidents"]
    place = {"service": surge["service"], "region": surge["region"]}
    scaling = [d for d in decisions(kafka_bootstrap, topic_names.scaling) if d.subject == place]
    early = [
        d
        for d in scaling
        if d.action == "scale_out" and surge["onset_ts"] <= d.ts < surge["peak_ts"]
    ]
    assert early, f"no scale-out between onset and peak: {[(d.ts, d.action) for d in scaling]}"
    assert early[0].params["desired_replicas"] > early[0].params["current_replicas"]

    remediation = [
        d
        for d in decisions(kafka_bootstrap, topic_names.remediation)
        if d.kind == "remediation" and d.subject == place
    ]
    assert [d for d in remediation if burst["onset_ts"] <= d.ts < burst["end_ts"]], [
        (d.ts, d.reason) for d in remediation
    ]
    # The series as the brain learned it: latency quantiles and rates from the histogram.
    view = brain_view(worker, place["service"], place["region"])
    assert view["known"] and view["samples"] >= run["sent"]["metrics"] - 1


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_a_scraped_prometheus_endpoint_becomes_a_learned_series(
    start_worker, collector, kafka_bootstrap, topic_names, encoding
) -> None:
    worker = start_worker(
        {
            **FAST_CHECKPOINTS,
            "AUTOPILOT_OTLP_ENCODING": encoding,
            "AUTOPILOT_OTLP_REGION_ATTRIBUTES": "cloud.region,cloud_region",
            "AUTOPILOT_OTLP_METRICS": (
                "http_requests_total=rps,cpu_utilization=cpu_util,replicas_available=replicas"
            ),
        }
    )
    registry = CollectorRegistry()
    requests = Counter("http_requests", "Requests served.", registry=registry)
    cpu = Gauge("cpu_utilization", "CPU in use, a fraction.", registry=registry)
    Gauge("replicas_available", "Replicas serving.", registry=registry).set(3)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        target = ScrapeTarget("billing", f"127.0.0.1:{port}", {"cloud_region": "eu-west"})
        collector(scrape=(target,), encoding=encoding)
        started = time.monotonic()
        served = 0

        def learned() -> bool:
            # The service's load: about 50 requests a second, half a core busy.
            nonlocal served
            due = int(50 * (time.monotonic() - started))
            requests.inc(due - served)
            served = due
            cpu.set(0.5)
            view = brain_view(worker, "billing", "eu-west")
            return view["known"] and view["samples"] >= 5

        wait_until(learned, 120, "the scraped series was not learned")
    finally:
        server.shutdown()
        thread.join()
    consumed = worker.metric("autopilot_events_consumed_total", topic="otlp_metrics")
    processed = worker.metric("autopilot_events_processed_total", topic="otlp_metrics")
    assert consumed > 0 and consumed == processed + worker.metric(
        "autopilot_dlq_total", topic="otlp_metrics"
    )


def _resource(request, attributes: dict[str, str]):
    resource = request.add()
    for key, value in attributes.items():
        resource.resource.attributes.add(key=key).value.string_value = value
    return resource


def _gauge(resource, name: str, *values: float) -> None:
    metric = resource.scope_metrics.add().metrics.add(name=name)
    for value in values:
        metric.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=value)


def malformed() -> list[tuple[str, bytes, int, dict[int | None, str]]]:
    """(topic attribute, payload, items it counts for, {index: reason} of those refused)."""
    place = {"service.name": "checkout", "cloud.region": "eu-west"}
    good = ExportMetricsServiceRequest()
    _gauge(_resource(good.resource_metrics, place), "system.cpu.utilization", 0.4, 0.5)
    mixed = ExportMetricsServiceRequest()
    _gauge(_resource(mixed.resource_metrics, {}), "system.cpu.utilization", 0.4, 0.5)
    _gauge(_resource(mixed.resource_metrics, place), "system.cpu.utilization", 0.4, math.nan)
    logs = ExportLogsServiceRequest()
    records = _resource(logs.resource_logs, place).scope_logs.add().log_records
    records.add(time_unix_nano=time.time_ns(), severity_number=17).body.string_value = "boom"
    records.add(time_unix_nano=time.time_ns(), severity_number=9).body.string_value = "fine"
    records.add(time_unix_nano=0, severity_number=17).body.string_value = "when?"
    return [
        ("otlp_metrics", good.SerializeToString(), 2, {}),
        ("otlp_metrics", good.SerializeToString()[:-7], 1, {None: "invalid_otlp"}),
        ("otlp_metrics", orjson.dumps({"resourceMetrics": []}), 1, {None: "invalid_otlp"}),
        ("otlp_metrics", mixed.SerializeToString(), 4, {0: "missing_field", 1: "missing_field",
                                                        3: "not_finite"}),
        ("otlp_logs", logs.SerializeToString(), 3, {2: "missing_field"}),
        ("otlp_logs", b"", 1, {None: "empty_payload"}),
    ]  # fmt: skip


def test_malformed_otlp_is_dead_lettered_point_by_point_and_nothing_is_lost(
    start_worker, kafka_bootstrap, topic_names
) -> None:
    worker = start_worker()
    cases = malformed()

    async def produce() -> list[int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            return [
                # One partition, so that (topic, offset) names a request.
                (
                    await producer.send_and_wait(getattr(topic_names, attr), payload, partition=0)
                ).offset
                for attr, payload, *_ in cases
            ]
        finally:
            await producer.stop()

    offsets = asyncio.run(produce())
    expected: dict[str, list[int]] = {}
    wanted: dict[tuple[str, int, int | None], str] = {}
    for (attr, _, items, refused), offset in zip(cases, offsets, strict=True):
        totals = expected.setdefault(attr, [0, 0, 0])
        totals[0] += items
        totals[1] += items - len(refused)
        totals[2] += len(refused)
        for index, reason in refused.items():
            wanted[(getattr(topic_names, attr), offset, index)] = reason

    def counts() -> dict[str, list[float]]:
        return {
            attr: [
                worker.metric(f"autopilot_{what}_total", topic=attr)
                for what in ("events_consumed", "events_processed", "dlq")
            ]
            for attr in expected
        }

    wait_until(lambda: counts() == expected, 90, f"counters {counts()} != {expected}")
    letters = asyncio.run(dead_letters(kafka_bootstrap, topic_names.dlq, len(wanted)))
    found = {(dl.source_topic, dl.offset, dl.envelope_index): dl.reason for dl in letters}
    assert found == wanted
    # The valid points and events went on: a sample per point time, and the error event.
    worker.wait_handled("telemetry.metrics", 3, timeout=60)
    worker.wait_handled("telemetry.errors", 1, timeout=60)
    assert worker.proc.poll() is None and "Traceback" not in worker.log()


def test_the_readme_collector_configuration_is_one_the_collector_accepts(tmp_path) -> None:
    section = (ROOT / "README.md").read_text().split("## From OpenTelemetry", 1)[1]
    (snippet,) = re.findall(r"```yaml\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    (tmp_path / "readme.yaml").write_text(snippet)
    # What the snippet refers to and a collector already has: its receivers and processors.
    base = {"receivers": {"otlp": {"protocols": {"grpc": {}}}}, "processors": {"batch": {}}}
    (tmp_path / "base.json").write_text(orjson.dumps(base).decode())
    binary = OtelcolLocal(tmp_path, log=log.info).build()
    checked = subprocess.run(
        [str(binary), "validate", "--config", str(tmp_path / "base.json"),
         "--config", str(tmp_path / "readme.yaml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr[-2000:]
