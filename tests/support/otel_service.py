"""A toy service instrumented with the OpenTelemetry SDK, as a team's service would be: it
exports its metrics and logs over OTLP/HTTP to a collector, and knows nothing of autopilot.

Its life is the lab simulator's one series (``--service`` in ``--region``) through a load
surge and an error burst, lived fast: the SDK's clock is the simulated one, so an hour of
event time (ending now) is exported in seconds, one collection per 5 s tick. Per tick it
serves its requests through the ``http.server.request.duration`` histogram (seconds), and
reports ``system.cpu.utilization``, ``system.memory.utilization`` and
``k8s.deployment.available_pods`` gauges; each of its error log lines is an ERROR log
record with ``exception.type``. It prints the run's ground truth as JSON.

Run: ``python tests/support/otel_service.py --endpoint http://127.0.0.1:4318``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import orjson
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal import (
    _view_instrument_match,
    instrument,
    metric_reader_storage,
)
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from streams.lab.scenario import parse_scenario
from streams.lab.simulator import SimConfig, generate, ground_truth

TICK_S = 5.0


class SimulatedClock:
    """The SDK's time: where the simulated service is in its life, in nanoseconds."""

    def __init__(self) -> None:
        self.ns = time.time_ns()

    def __call__(self) -> int:
        return self.ns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="OTLP/HTTP base URL of a collector")
    parser.add_argument("--service", default="search")
    parser.add_argument("--region", default="us-east")
    parser.add_argument("--duration", type=float, default=2400.0, help="event seconds")
    args = parser.parse_args()

    scenario = parse_scenario(
        {
            "name": "otel_toy",
            "duration_s": args.duration,
            "tick_s": TICK_S,
            "incidents": [
                {"type": "load_surge", "service": args.service, "region": args.region,
                 "start_s": 0.4 * args.duration, "duration_s": 0.3 * args.duration,
                 "factor": 3.0, "ramp_s": 180},
                {"type": "error_burst", "service": args.service, "region": args.region,
                 "fault_type": "db_connection_pool_exhausted", "start_s": 0.8 * args.duration,
                 "duration_s": 180, "rate_per_s": 20, "deploy_version": "v2.0.0"},
            ],
        }
    )  # fmt: skip
    start_ts = float(int(time.time() - args.duration - 60))
    config = SimConfig.for_scenario(
        scenario,
        services=(args.service,),
        regions=(args.region,),
        tenants=0,
        start_ts=start_ts,
        # A small service, a quarter of the simulator's usual demand: the SDK records every
        # request, and this test shares two cores with another test process.
        base_rps=50.0,
    )

    clock = SimulatedClock()
    for module in (_view_instrument_match, instrument, metric_reader_storage):
        module.time_ns = clock  # the SDK stamps points with the simulated time

    resources: dict[str | None, Resource] = {}

    def resource_of(version: str | None) -> Resource:
        """A deploy starts the service again: its logs then carry the new version."""
        if version not in resources:
            attributes = {"service.name": args.service, "cloud.region": args.region}
            resources[version] = Resource.create(
                attributes | ({"service.version": version} if version else {})
            )
        return resources[version]

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{args.endpoint}/v1/metrics"),
        export_interval_millis=3_600_000,  # exported at each tick's end, by force_flush
    )
    meters = MeterProvider(resource=resource_of(None), metric_readers=[reader])
    meter = meters.get_meter("toy")
    loggers: dict[str | None, LoggerProvider] = {}

    def logger_of(version: str | None):
        if version not in loggers:
            loggers[version] = LoggerProvider(resource=resource_of(version))
            loggers[version].add_log_record_processor(
                SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{args.endpoint}/v1/logs"))
            )
        return loggers[version].get_logger("toy")

    gauges: dict[str, float] = {}

    def gauge(name: str, key: str):
        def observe(_options):
            return [Observation(gauges[key])] if key in gauges else []

        return meter.create_observable_gauge(name, callbacks=[observe])

    gauge("system.cpu.utilization", "cpu_util")
    gauge("system.memory.utilization", "mem_util")
    gauge("k8s.deployment.available_pods", "replicas")
    durations = meter.create_histogram("http.server.request.duration", unit="s")
    rng = random.Random(0)
    sent = {"metrics": 0, "errors": 0}
    for attr, _key, value, ts in generate(config):
        body = orjson.loads(value)
        clock.ns = int(ts * 1e9)
        if attr == "metrics":
            metrics = body["metrics"]
            gauges.update(metrics)
            # The tick's requests, with durations around the tick's median and tail.
            p50, p99 = metrics["latency_p50_ms"] / 1e3, metrics["latency_p99_ms"] / 1e3
            for _ in range(round(metrics["rps"] * TICK_S)):
                durations.record(p50 if rng.random() < 0.95 else p99)
            meters.force_flush()
            sent["metrics"] += 1
        elif attr == "errors":
            logger_of(body.get("deploy_version")).emit(
                timestamp=clock.ns,
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                body=body["message"],
                attributes={"exception.type": body["error_type"]},
            )
            sent["errors"] += 1
    meters.shutdown()
    for provider in loggers.values():
        provider.shutdown()
    truth = ground_truth(config, start_ts)
    print(orjson.dumps({"sent": sent, "truth": truth}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
