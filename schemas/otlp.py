"""OpenTelemetry on Kafka: what the collector's Kafka exporter writes, read as autopilot's records.

The OpenTelemetry Collector's ``kafkaexporter`` writes one OTLP export request per Kafka
message: an ``ExportMetricsServiceRequest`` on ``otlp_metrics``, an
``ExportLogsServiceRequest`` on ``otlp_logs``, in protobuf (``otlp_proto``, its default) or
in OTLP/JSON (``otlp_json``). :func:`read_metrics` and :func:`read_logs` turn one such message
into an :class:`OtlpRequest`: one item per data point or log record, each valid one or the
:class:`~schemas.Rejection` of that one alone, so that conservation counts data points and a
bad point is dead-lettered on its own, with its index in the request. A message that is not
an export request of the topic's encoding at all is one rejection (``invalid_otlp``).

What maps to what (:class:`OtlpMapping`):

- the service is the first of ``service_attributes`` found (``service.name``), the region the
  first of ``region_attributes`` (``cloud.region``), in the resource's attributes, then in the
  data point's (the ``prometheusreceiver`` puts a target's labels there);
- gauges and sums keep their value; a histogram or a summary keeps its buckets or quantiles,
  which :mod:`models.ingest.otlp` turns into latency quantiles and a rate, as it turns
  cumulative sums into rates;
- a log record of severity WARN or above (severity number 13 and up) is an
  :class:`~schemas.ErrorEvent`: its body is the message, ``exception.type`` the error type,
  ``exception.stacktrace`` the stack, the resource's ``service.version`` the deploy version;
  a log record under WARN is read and passed over (``None``).

Examples
--------
>>> from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
...     ExportMetricsServiceRequest)
>>> request = ExportMetricsServiceRequest()
>>> resource = request.resource_metrics.add()
>>> for key, value in (("service.name", "checkout"), ("cloud.region", "eu-west")):
...     resource.resource.attributes.add(key=key).value.string_value = value
>>> metric = resource.scope_metrics.add().metrics.add(name="system.cpu.utilization")
>>> point = metric.gauge.data_points.add(time_unix_nano=1_700_000_000 * 10**9, as_double=0.5)
>>> read = read_metrics(request.SerializeToString(), now=1_700_000_001.0)
>>> point = read.records[0]
>>> point.service, point.region, point.name, point.shape, point.ts, point.value
('checkout', 'eu-west', 'cpu_util', 'gauge', 1700000000.0, 0.5)
>>> read_metrics(b"\\x0a\\xff", now=1_700_000_001.0).reason
'invalid_otlp'

"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from schemas.fields import METRIC_NAME_PATTERN
from schemas.limits import Limits
from schemas.records import ErrorEvent
from schemas.rejection import Rejection

# The rejections of an empty or oversized message, as the JSON edge words them.
from schemas.validate import _EMPTY, Envelope, _too_large, validate

__all__ = [
    "DEFAULT_METRIC_NAMES",
    "ENCODINGS",
    "HISTOGRAM_NAMES",
    "MetricPoint",
    "OtlpMapping",
    "OtlpRequest",
    "read_logs",
    "read_metrics",
]

ENCODINGS = ("otlp_proto", "otlp_json")
"""The encodings of the collector's Kafka exporter that autopilot reads."""

WARN = 13
"""The lowest OTLP severity number read as an error event (SEVERITY_NUMBER_WARN)."""
# OTLP severity numbers 13-16, 17-20 and 21-24 against ErrorEvent's severities.
_SEVERITIES = ((21, "critical"), (17, "error"), (13, "warning"))
# DataPointFlags.FLAG_NO_RECORDED_VALUE: the prometheusreceiver's mark of a stale series.
_NO_RECORDED_VALUE = 1
# Fields that OTLP/JSON writes as hex, and protobuf's JSON reader expects as base64.
_HEX_IDS = frozenset({"traceId", "spanId", "parentSpanId"})

DEFAULT_METRIC_NAMES: dict[str, str] = {
    "system.cpu.utilization": "cpu_util",
    "process.cpu.utilization": "cpu_util",
    "container.cpu.utilization": "cpu_util",
    "system.memory.utilization": "mem_util",
    "process.memory.utilization": "mem_util",
    "k8s.deployment.available_pods": "replicas",
    "k8s.deployment.available": "replicas",
    "http.server.active_requests": "queue_depth",
}
"""OpenTelemetry semantic-convention names of gauges and sums, and the metric each gives."""
HISTOGRAM_NAMES: dict[str, str] = {
    "http.server.request.duration": "latency",
    "http.server.duration": "latency",
    "http_server_request_duration_seconds": "latency",
}
"""Histograms of request durations: their quantiles give ``latency_p50_ms`` and
``latency_p99_ms``, their count's rate ``rps``. Any other histogram ``h`` gives ``h_p50``,
``h_p99`` and ``h_rate``."""
_NAME_CHARS = re.compile(r"[^a-z0-9_]+")
_METRIC_NAME_RE = re.compile(METRIC_NAME_PATTERN)


@dataclasses.dataclass(frozen=True, slots=True)
class OtlpMapping:
    """Where service and region come from, and which metric an OTLP metric name gives.

    Parameters
    ----------
    service_attributes, region_attributes
        Attribute keys tried in order, in the resource's attributes, then the data point's.
    metric_names
        OTLP metric name -> autopilot metric name, for gauges and sums (beyond
        :data:`DEFAULT_METRIC_NAMES`, which it overrides); a name in neither is lowered and
        every run of characters outside ``[a-z0-9_]`` becomes ``_``.
    latency_histograms
        Histogram names read as request durations (beyond :data:`HISTOGRAM_NAMES`).

    Examples
    --------
    >>> mapping = OtlpMapping.from_env({"AUTOPILOT_OTLP_METRICS": "http_requests_total=rps"})
    >>> mapping.metric_name("http_requests_total"), mapping.metric_name("Queue.Depth")
    ('rps', 'queue_depth')
    >>> env = {"AUTOPILOT_OTLP_REGION_ATTRIBUTES": "cloud.region,region"}
    >>> OtlpMapping.from_env(env).region_attributes
    ('cloud.region', 'region')
    >>> OtlpMapping.from_env({"AUTOPILOT_OTLP_METRICS": "rps"})
    Traceback (most recent call last):
    ...
    ValueError: AUTOPILOT_OTLP_METRICS must be a comma-separated list of \
otlp.name=autopilot_name, got 'rps'

    """

    service_attributes: tuple[str, ...] = ("service.name",)
    region_attributes: tuple[str, ...] = ("cloud.region",)
    metric_names: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_METRIC_NAMES)
    )
    latency_histograms: frozenset[str] = frozenset(HISTOGRAM_NAMES)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OtlpMapping:
        """Read ``AUTOPILOT_OTLP_SERVICE_ATTRIBUTES``, ``AUTOPILOT_OTLP_REGION_ATTRIBUTES``
        (comma-separated keys), ``AUTOPILOT_OTLP_METRICS`` (``otlp.name=autopilot_name,...``)
        and ``AUTOPILOT_OTLP_LATENCY_HISTOGRAMS`` (comma-separated names)."""
        names = dict(DEFAULT_METRIC_NAMES)
        extra = env.get("AUTOPILOT_OTLP_METRICS", "").strip()
        for pair in filter(None, (p.strip() for p in extra.split(","))):
            source, sep, target = pair.partition("=")
            if not sep or not source or _METRIC_NAME_RE.fullmatch(target) is None:
                raise ValueError(
                    "AUTOPILOT_OTLP_METRICS must be a comma-separated list of "
                    f"otlp.name=autopilot_name, got {extra!r}"
                )
            names[source] = target
        return cls(
            service_attributes=_keys(env, "AUTOPILOT_OTLP_SERVICE_ATTRIBUTES", ("service.name",)),
            region_attributes=_keys(env, "AUTOPILOT_OTLP_REGION_ATTRIBUTES", ("cloud.region",)),
            metric_names=names,
            latency_histograms=frozenset(HISTOGRAM_NAMES).union(
                _keys(env, "AUTOPILOT_OTLP_LATENCY_HISTOGRAMS", ())
            ),
        )

    def metric_name(self, otlp_name: str) -> str:
        """The autopilot metric a gauge or sum named ``otlp_name`` gives."""
        mapped = self.metric_names.get(otlp_name)
        return mapped if mapped is not None else _NAME_CHARS.sub("_", otlp_name.lower())


def _keys(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in env.get(name, "").split(",") if k.strip())
    return keys or default


@dataclasses.dataclass(frozen=True, slots=True)
class MetricPoint:
    """One OTLP data point, located and checked, not yet turned into metric values.

    ``shape`` is ``gauge``, ``cumulative`` or ``delta`` (sums; ``value`` is the sum),
    ``histogram`` (explicit ``bounds`` and bucket ``counts``, ``value`` the count) or
    ``summary`` (``bounds`` the quantiles, ``counts`` their values, ``value`` the count).
    ``name`` is the autopilot metric (gauges and sums) or the stem of the metrics a
    histogram or summary gives (``latency`` for request durations); ``series`` identifies
    the OTLP stream the point belongs to (service, region, metric name, the point's
    attributes, the resource's), for the cumulative state kept per series.
    """

    service: str
    region: str
    name: str
    shape: str
    ts: float
    start_ts: float
    value: float
    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    unit: str
    series: tuple[Any, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class OtlpRequest(Envelope):
    """The items of one export request: :class:`MetricPoint`, :class:`~schemas.ErrorEvent`,
    ``None`` (a log under WARN, or a point with no recorded value) or a
    :class:`~schemas.Rejection` each. ``documents`` holds each item's OTLP message and
    resource, from which :meth:`payload` writes its dead letter's payload in OTLP/JSON."""

    def payload(self, index: int) -> bytes:
        """Item ``index`` alone in OTLP/JSON: its resource's attributes, its metric's name
        (a data point) and the point or log record itself."""
        message, resource, metric_name = self.documents[index]
        document: dict[str, Any] = {"resource": json_format.MessageToDict(resource)}
        if metric_name is not None:
            document["metric"] = metric_name
        document["item"] = json_format.MessageToDict(message)
        return orjson.dumps(document)


def read_metrics(
    raw: bytes | None,
    *,
    now: float,
    encoding: str = "otlp_proto",
    mapping: OtlpMapping | None = None,
    limits: Limits | None = None,
) -> OtlpRequest | Rejection:
    """The data points of one ``ExportMetricsServiceRequest`` message, each checked alone."""
    mapping, limits = mapping or OtlpMapping(), limits or Limits()

    def items(request: Any) -> Iterator[tuple[Any, tuple[Any, Any, str | None]]]:
        for resource_metrics in request.resource_metrics:
            resource = resource_metrics.resource
            attributes = _attributes(resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point, item in _points(metric, attributes, mapping, now, limits):
                        yield item, (point, resource, metric.name)

    return _read(raw, ExportMetricsServiceRequest, encoding, limits, items, "data points")


def read_logs(
    raw: bytes | None,
    *,
    now: float,
    encoding: str = "otlp_proto",
    mapping: OtlpMapping | None = None,
    limits: Limits | None = None,
) -> OtlpRequest | Rejection:
    """The log records of one ``ExportLogsServiceRequest`` message, each checked alone.

    Examples
    --------
    >>> request = ExportLogsServiceRequest()
    >>> resource = request.resource_logs.add()
    >>> for key, value in (("service.name", "checkout"), ("cloud.region", "eu-west"),
    ...                    ("service.version", "v1.9.0")):
    ...     resource.resource.attributes.add(key=key).value.string_value = value
    >>> logs = resource.scope_logs.add().log_records
    >>> log = logs.add(time_unix_nano=1_700_000_000 * 10**9, severity_number=17)
    >>> log.body.string_value = "order 42 failed"
    >>> log.attributes.add(key="exception.type").value.string_value = "NullReferenceError"
    >>> _ = logs.add(time_unix_nano=1_700_000_000 * 10**9, severity_number=9)  # INFO
    >>> read = read_logs(request.SerializeToString(), now=1_700_000_001.0)
    >>> event, info = read.records
    >>> event.severity, event.error_type, event.message, event.deploy_version, info
    ('error', 'NullReferenceError', 'order 42 failed', 'v1.9.0', None)

    """
    mapping, limits = mapping or OtlpMapping(), limits or Limits()

    def items(request: Any) -> Iterator[tuple[Any, tuple[Any, Any, str | None]]]:
        for resource_logs in request.resource_logs:
            resource = resource_logs.resource
            attributes = _attributes(resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                for log in scope_logs.log_records:
                    yield _error_event(log, attributes, mapping, now, limits), (log, resource, None)

    return _read(raw, ExportLogsServiceRequest, encoding, limits, items, "log records")


def _read(
    raw: bytes | None,
    cls: type,
    encoding: str,
    limits: Limits,
    items: Callable[[Any], Iterator[tuple[Any, tuple[Any, Any, str | None]]]],
    what: str,
) -> OtlpRequest | Rejection:
    """The items of the export request in ``raw``, with what their dead letters keep."""
    request = _decode(raw, cls, encoding, limits)
    if type(request) is Rejection:
        return request
    records: list[Any] = []
    documents: list[Any] = []
    for item, document in items(request):
        records.append(item)
        documents.append(document)
    if not records:
        return Rejection("bad_value", None, f"the export request holds no {what}")
    return OtlpRequest(records, documents)


def _decode(raw: bytes | None, cls: type, encoding: str, limits: Limits) -> Any:
    """The export request in ``raw``, or the rejection of the message as a whole."""
    if not raw:
        return _EMPTY
    if len(raw) > limits.max_envelope_bytes:
        return _too_large(len(raw), limits.max_envelope_bytes)
    request = cls()
    try:
        if encoding == "otlp_json":
            document = orjson.loads(raw)
            if type(document) is not dict:
                return Rejection("invalid_otlp", None, "OTLP/JSON must be an object")
            json_format.ParseDict(_base64_ids(document), request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(bytes(raw))
    except (DecodeError, json_format.ParseError, orjson.JSONDecodeError, ValueError) as exc:
        return Rejection(
            "invalid_otlp", None, f"not a {cls.__name__} in {encoding} ({type(exc).__name__})"
        )
    return request


def _base64_ids(document: Any) -> Any:
    """``document`` with OTLP/JSON's hex trace and span ids rewritten as protobuf's base64."""
    if type(document) is dict:
        for key, value in document.items():
            if key in _HEX_IDS and type(value) is str:
                try:
                    document[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise ValueError(f"{key} is not hex") from exc
            else:
                _base64_ids(value)
    elif type(document) is list:
        for item in document:
            _base64_ids(item)
    return document


def _attributes(attributes: Any) -> dict[str, Any]:
    """Key -> scalar value (string, int, double or bool) of OTLP ``KeyValue`` attributes."""
    found: dict[str, Any] = {}
    for attribute in attributes:
        value = attribute.value
        kind = value.WhichOneof("value")
        if kind in ("string_value", "int_value", "double_value", "bool_value"):
            found[attribute.key] = getattr(value, kind)
    return found


def _place(
    resource: dict[str, Any], point: dict[str, Any], mapping: OtlpMapping, limits: Limits
) -> tuple[str, str] | Rejection:
    """Service and region of a point, from the resource's attributes, then the point's."""
    found = []
    for keys in (mapping.service_attributes, mapping.region_attributes):
        value = next((where[k] for k in keys for where in (resource, point) if k in where), None)
        if value is None:
            return Rejection(
                "missing_field",
                f"resource.{keys[0]}",
                f"no attribute {' or '.join(keys)} in the resource or the data point",
            )
        if type(value) is not str or limits.name_re.fullmatch(value) is None:
            return Rejection(
                "bad_name", f"resource.{keys[0]}", f"{keys[0]} does not match {limits.name_pattern}"
            )
        found.append(value)
    return found[0], found[1]


def _timestamp(nanos: int, now: float, limits: Limits) -> float | Rejection:
    if nanos <= 0:
        return Rejection("missing_field", "time_unix_nano", "time_unix_nano is missing or 0")
    ts = nanos / 1e9
    if now - ts > limits.max_past_s or ts - now > limits.max_future_s:
        return Rejection(
            "timestamp_skew",
            "time_unix_nano",
            f"time_unix_nano is {ts - now:+.0f} s from processing time "
            f"(max {limits.max_past_s:.0f} s before, {limits.max_future_s:.0f} s after)",
        )
    return ts


def _points(
    metric: Any, resource: dict[str, Any], mapping: OtlpMapping, now: float, limits: Limits
) -> Iterator[tuple[Any, MetricPoint | Rejection | None]]:
    """Each data point of ``metric`` with its item."""
    data = metric.WhichOneof("data")
    if data is None:
        return
    points = getattr(metric, data).data_points
    if data in ("gauge", "sum"):
        cumulative = data == "sum" and metric.sum.aggregation_temporality == 2
        shape = "gauge" if data == "gauge" else ("cumulative" if cumulative else "delta")
        name = mapping.metric_name(metric.name)
    elif data in ("histogram", "summary"):
        shape = data
        latency = metric.name in mapping.latency_histograms
        name = "latency" if latency else _NAME_CHARS.sub("_", metric.name.lower())
        if data == "histogram" and metric.histogram.aggregation_temporality != 2:
            shape = "delta_histogram"
    else:
        for point in points:
            yield (
                point,
                Rejection(
                    "bad_value",
                    data,
                    f"{data} points are not read: export explicit-bucket histograms",
                ),
            )
        return
    # Two replicas' counters of one name are two streams: their resources tell them apart.
    identity = tuple(sorted(resource.items()))
    for point in points:
        yield point, _point(point, metric, shape, name, resource, identity, mapping, now, limits)


def _point(
    point: Any,
    metric: Any,
    shape: str,
    name: str,
    resource: dict[str, Any],
    identity: tuple[tuple[str, Any], ...],
    mapping: OtlpMapping,
    now: float,
    limits: Limits,
) -> MetricPoint | Rejection | None:
    if point.flags & _NO_RECORDED_VALUE:
        return None
    attributes = _attributes(point.attributes)
    place = _place(resource, attributes, mapping, limits)
    if type(place) is Rejection:
        return place
    ts = _timestamp(point.time_unix_nano, now, limits)
    if type(ts) is Rejection:
        return ts
    if _METRIC_NAME_RE.fullmatch(name) is None or len(name) > 60:
        return Rejection(
            "bad_name", "metric.name", f"no metric name matching {METRIC_NAME_PATTERN}"
        )
    bounds: tuple[float, ...] = ()
    counts: tuple[float, ...] = ()
    if shape in ("gauge", "cumulative", "delta"):
        value = point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)
    elif shape == "summary":
        value = float(point.count)
        bounds = tuple(q.quantile for q in point.quantile_values)
        counts = tuple(q.value for q in point.quantile_values)
    else:
        value = float(point.count)
        bounds, counts = tuple(point.explicit_bounds), tuple(map(float, point.bucket_counts))
        if len(counts) != len(bounds) + 1:
            return Rejection(
                "bad_value", "bucket_counts", "a histogram has one bucket more than bounds"
            )
    if not all(map(math.isfinite, (value, *bounds, *counts))):
        return Rejection("not_finite", "value", "a data point's value is NaN or infinite")
    service, region = place
    key = tuple(sorted(attributes.items()))
    return MetricPoint(
        service,
        region,
        name,
        shape,
        ts,
        point.start_time_unix_nano / 1e9,
        value,
        bounds,
        counts,
        metric.unit,
        (service, region, metric.name, key, identity),
    )


def _error_event(
    log: Any, resource: dict[str, Any], mapping: OtlpMapping, now: float, limits: Limits
) -> ErrorEvent | Rejection | None:
    if log.severity_number < WARN:
        return None
    attributes = _attributes(log.attributes)
    place = _place(resource, attributes, mapping, limits)
    if type(place) is Rejection:
        return place
    service, region = place
    severity = next(name for lowest, name in _SEVERITIES if log.severity_number >= lowest)
    body = log.body
    kind = body.WhichOneof("value")
    if kind == "string_value":
        message = body.string_value
    elif kind is None:
        message = ""
    else:
        message = orjson.dumps(json_format.MessageToDict(body)).decode()
    document = {
        "ts": (log.time_unix_nano or log.observed_time_unix_nano) / 1e9,
        "region": region,
        "service": service,
        "severity": severity,
        "error_type": str(attributes.get("exception.type") or log.severity_text or severity),
        "message": message or str(attributes.get("exception.message", "")) or severity,
        "stack": attributes.get("exception.stacktrace"),
        "trace_id": binascii.hexlify(log.trace_id).decode() if any(log.trace_id) else None,
        "deploy_version": resource.get("service.version"),
    }
    if document["ts"] <= 0:
        return Rejection("missing_field", "time_unix_nano", "time_unix_nano is missing or 0")
    return validate("errors", document, now=now, limits=limits)
