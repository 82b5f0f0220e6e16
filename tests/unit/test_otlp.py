"""OTLP export requests read as records (schemas.otlp) and turned into metric values
(models.brains.otlp): both encodings, every point checked alone, counters and histograms
as rates and quantiles."""

from __future__ import annotations

import math

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from models.brains.otlp import OtlpMetricsBrain
from schemas import ErrorEvent, Rejection
from schemas.otlp import MetricPoint, OtlpMapping, read_logs, read_metrics
from streams.otelcol.local import ScrapeTarget, collector_config
from streams.runtime.settings import Settings, SettingsError

NOW = 1_700_000_000.0
NS = 10**9
PLACE = {"service.name": "checkout", "cloud.region": "eu-west"}


def metrics_request(
    attributes: dict[str, str] = PLACE,
) -> tuple[ExportMetricsServiceRequest, object]:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    for key, value in attributes.items():
        resource.resource.attributes.add(key=key).value.string_value = value
    return request, resource.scope_metrics.add()


def histogram(scope, name: str, ts: float, counts: list[int], unit: str = "s", start: float = 1.0):
    metric = scope.metrics.add(name=name, unit=unit)
    metric.histogram.aggregation_temporality = 2  # cumulative
    metric.histogram.data_points.add(
        time_unix_nano=int(ts * NS),
        start_time_unix_nano=int(start * NS),
        count=sum(counts),
        explicit_bounds=[0.01, 0.05, 0.1, 0.5],
        bucket_counts=counts,
    )


def read(request, **kwargs):
    return read_metrics(request.SerializeToString(), now=NOW, **kwargs)


def test_both_encodings_read_the_same_points() -> None:
    request, scope = metrics_request()
    gauge = scope.metrics.add(name="system.cpu.utilization")
    gauge.gauge.data_points.add(time_unix_nano=int(NOW * NS), as_double=0.25)
    counter = scope.metrics.add(name="http.requests")
    counter.sum.aggregation_temporality = 2
    counter.sum.is_monotonic = True
    counter.sum.data_points.add(time_unix_nano=int(NOW * NS), as_int=42)
    as_json = json_format.MessageToJson(request).encode()
    proto, from_json = read(request), read_metrics(as_json, now=NOW, encoding="otlp_json")
    assert proto.records == from_json.records
    assert [(p.name, p.shape, p.value) for p in proto.records] == [
        ("cpu_util", "gauge", 0.25),
        ("http_requests", "cumulative", 42.0),
    ]


@pytest.mark.parametrize(
    ("encoding", "payload"),
    [
        ("otlp_proto", b'{"resourceMetrics": []}'),  # JSON where protobuf is expected
        ("otlp_json", b"\x0a\x02\x0a\x00"),  # protobuf where JSON is expected
        ("otlp_json", b'{"resourceMetrics": 7}'),
        ("otlp_json", b"[1, 2]"),
    ],
)
def test_the_wrong_encoding_is_refused_whole(encoding: str, payload: bytes) -> None:
    refused = read_metrics(payload, now=NOW, encoding=encoding)
    assert isinstance(refused, Rejection) and refused.reason == "invalid_otlp"


def test_a_truncated_request_is_refused_whole_and_an_empty_one_too() -> None:
    request, scope = metrics_request()
    histogram(scope, "http.server.request.duration", NOW, [1, 2, 3, 4, 5])
    raw = request.SerializeToString()
    assert all(read_metrics(raw[:cut], now=NOW).reason == "invalid_otlp" for cut in (5, 20, -3))
    assert read_metrics(b"", now=NOW).reason == "empty_payload"
    no_points = ExportMetricsServiceRequest()
    no_points.resource_metrics.add()
    assert read(no_points).reason == "bad_value"


def test_each_point_is_checked_alone() -> None:
    request, scope = metrics_request({})
    scope.metrics.add(name="up").gauge.data_points.add(time_unix_nano=int(NOW * NS), as_double=1)
    place = request.resource_metrics.add()
    for key, value in {**PLACE, "cloud.region": "EU WEST!"}.items():
        place.resource.attributes.add(key=key).value.string_value = value
    place.scope_metrics.add().metrics.add(name="up").gauge.data_points.add(
        time_unix_nano=int(NOW * NS), as_double=1
    )
    good = request.resource_metrics.add()
    for key, value in PLACE.items():
        good.resource.attributes.add(key=key).value.string_value = value
    points = good.scope_metrics.add().metrics.add(name="up").gauge.data_points
    points.add(time_unix_nano=int(NOW * NS), as_double=math.nan)
    points.add(time_unix_nano=int((NOW - 2 * 86400) * NS), as_double=1)
    points.add(time_unix_nano=0, as_double=1)
    points.add(time_unix_nano=int(NOW * NS), as_double=1, flags=1)  # no recorded value
    points.add(time_unix_nano=int(NOW * NS), as_double=1)
    read_request = read(request)
    reasons = [r.reason if isinstance(r, Rejection) else r for r in read_request.records]
    assert reasons[:6] == [
        "missing_field",
        "bad_name",
        "not_finite",
        "timestamp_skew",
        "missing_field",
        None,
    ]
    assert isinstance(read_request.records[6], MetricPoint)
    # A dead letter carries its point alone, with its resource and metric, as OTLP/JSON.
    letter = orjson.loads(read_request.payload(2))
    assert letter["metric"] == "up" and "timeUnixNano" in letter["item"]
    assert {a["key"] for a in letter["resource"]["attributes"]} == set(PLACE)


def test_histograms_give_quantiles_and_a_rate_from_their_increase() -> None:
    brain = OtlpMetricsBrain()
    first, scope = metrics_request()
    histogram(scope, "http.server.request.duration", NOW - 10, [10, 10, 0, 0, 0])
    second, scope = metrics_request()
    histogram(scope, "http.server.request.duration", NOW, [10, 110, 80, 0, 10])
    assert brain.observe(read(first).records[0]) == {}
    values = brain.observe(read(second).records[0])
    # 190 requests in 10 s: 100 in (10, 50] ms, 80 in (50, 100] ms, 10 over 500 ms; the
    # median is the 95th, in the second bucket.
    assert values["rps"] == pytest.approx(19.0)
    assert values["latency_p50_ms"] == pytest.approx(10.0 + 40.0 * 95 / 100)
    assert values["latency_p99_ms"] == pytest.approx(500.0)


def test_a_counter_reset_and_a_delta_sum_give_rates() -> None:
    brain = OtlpMetricsBrain()

    def point(shape: str, ts: float, value: float, start: float = 1.0) -> MetricPoint:
        series = ("checkout", "eu-west", "jobs", ())
        return MetricPoint(
            "checkout", "eu-west", "jobs", shape, ts, start, value, (), (), "", series
        )

    assert brain.observe(point("cumulative", 10.0, 100.0)) == {}
    assert brain.observe(point("cumulative", 20.0, 300.0)) == {"jobs": 20.0}
    assert brain.observe(point("cumulative", 30.0, 50.0, start=25.0)) == {"jobs": 5.0}
    assert brain.observe(point("cumulative", 30.0, 60.0, start=25.0)) == {}  # no time passed
    assert brain.observe(point("delta", 40.0, 30.0, start=30.0)) == {"jobs": 3.0}


def test_the_brain_holds_at_most_its_bound_of_series_and_survives_a_checkpoint() -> None:
    brain = OtlpMetricsBrain(max_series=3)
    for n in range(5):
        series = ("checkout", "eu-west", f"c{n}", (("route", "/a"),))
        brain.observe(MetricPoint("checkout", "eu-west", f"c{n}", "cumulative", 10.0, 1.0,
                                  float(n), (), (), "", series))  # fmt: skip
    assert len(brain) == 3
    restored = OtlpMetricsBrain.from_state(orjson.loads(orjson.dumps(brain.to_state())))
    series = ("checkout", "eu-west", "c4", (("route", "/a"),))
    later = MetricPoint("checkout", "eu-west", "c4", "cumulative", 20.0, 1.0, 14.0, (), (), "",
                        series)  # fmt: skip
    assert restored.observe(later) == {"c4": 1.0}
    assert restored.evict_idle(20.0 + 3601.0) == 3


def test_logs_at_warn_and_above_are_error_events() -> None:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    for key, value in PLACE.items():
        resource.resource.attributes.add(key=key).value.string_value = value
    logs = resource.scope_logs.add().log_records
    for severity in (5, 13, 17, 21):
        log = logs.add(time_unix_nano=int(NOW * NS), severity_number=severity)
        log.body.string_value = "payment for jane@example.com failed"
    logs[3].trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    read_request = read_logs(request.SerializeToString(), now=NOW)
    info, warning, error, critical = read_request.records
    assert info is None
    assert [e.severity for e in (warning, error, critical)] == ["warning", "error", "critical"]
    assert (
        isinstance(critical, ErrorEvent) and critical.trace_id == "0af7651916cd43dd8448eb211c80319c"
    )
    # OTLP/JSON writes ids in hex, not protobuf's base64.
    document = orjson.loads(json_format.MessageToJson(request))
    document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][3]["traceId"] = (
        "0af7651916cd43dd8448eb211c80319c"
    )
    from_json = read_logs(orjson.dumps(document), now=NOW, encoding="otlp_json")
    assert from_json.records == read_request.records


def test_the_mapping_is_configured_by_environment() -> None:
    settings = Settings.from_env(
        {
            "AUTOPILOT_OTLP_ENCODING": "otlp_json",
            "AUTOPILOT_OTLP_METRICS": "jvm.threads=threads",
            "AUTOPILOT_OTLP_SERVICE_ATTRIBUTES": "k8s.deployment.name,service.name",
        }
    )
    assert settings.otlp_encoding == "otlp_json"
    assert settings.otlp.metric_name("jvm.threads") == "threads"
    request, scope = metrics_request({"k8s.deployment.name": "cart", "cloud.region": "eu-west"})
    scope.metrics.add(name="jvm.threads").gauge.data_points.add(
        time_unix_nano=int(NOW * NS), as_int=12
    )
    (point,) = read(request, mapping=settings.otlp).records
    assert (point.service, point.name, point.value) == ("cart", "threads", 12.0)
    with pytest.raises(SettingsError, match="AUTOPILOT_OTLP_METRICS"):
        Settings.from_env({"AUTOPILOT_OTLP_METRICS": "jvm.threads=Not A Name"})
    assert OtlpMapping().metric_name("Queue.Depth-Max") == "queue_depth_max"


def test_the_collector_config_scrapes_and_partitions_by_resource() -> None:
    target = ScrapeTarget("billing", "127.0.0.1:9000", {"cloud_region": "eu-west"})
    config = collector_config("127.0.0.1:9092", scrape=(target,), scrape_interval_s=1)
    exporter = config["exporters"]["kafka"]
    assert exporter["partition_metrics_by_resource_attributes"] is True
    assert exporter["logs"] == {"topic": "otlp_logs", "encoding": "otlp_proto"}
    (job,) = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9000"], "labels": target.labels}]
    assert config["service"]["pipelines"]["metrics"]["receivers"] == ["otlp", "prometheus"]


def test_two_replicas_counters_are_two_streams() -> None:
    brain = OtlpMetricsBrain()

    def scrape(ts: float, counts: dict[str, int]) -> list[dict[str, float]]:
        request = ExportMetricsServiceRequest()
        for instance, count in counts.items():
            resource = request.resource_metrics.add()
            for key, value in {**PLACE, "service.instance.id": instance}.items():
                resource.resource.attributes.add(key=key).value.string_value = value
            metric = resource.scope_metrics.add().metrics.add(name="http_requests_total")
            metric.sum.aggregation_temporality = 2
            metric.sum.data_points.add(time_unix_nano=int(ts * NS), as_int=count)
        return [brain.observe(point) for point in read(request).records]

    scrape(NOW - 10, {"a": 1000, "b": 10})
    # Read as one stream, b's 20 after a's 1000 would look like a restart every time.
    assert scrape(NOW, {"a": 1100, "b": 20}) == [
        {"http_requests_total": 10.0},
        {"http_requests_total": 1.0},
    ]
