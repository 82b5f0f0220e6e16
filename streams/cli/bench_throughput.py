"""``autopilot bench throughput``: the pipeline against a raw aiokafka consumer."""

from __future__ import annotations

import click

from streams.cli.bench import bench, broker_option, emit, envelope_option, json_option

__all__ = ["bench_throughput"]


@bench.command("throughput")
@click.option("--events", default=500_000, show_default=True, help="Metric events to produce.")
@click.option("--series", default=1_000, show_default=True, help="Distinct service/region series.")
@broker_option
@envelope_option
@click.option(
    "--otlp",
    is_flag=True,
    help="Also feed a fresh worker the same samples as OTLP requests (one per envelope), as "
    "the OpenTelemetry Collector's Kafka exporter writes them, and compare.",
)
@json_option
def bench_throughput(
    events: int, series: int, broker: str | None, envelope: int, otlp: bool, as_json: bool
) -> None:
    """Events per second of the full pipeline and of a raw consumer, on one broker, in one run."""
    from streams.lab.bench.throughput import format_bench_throughput, run_bench_throughput

    result = run_bench_throughput(
        events=events,
        series=series,
        broker=broker,
        envelope=envelope,
        otlp=otlp,
        log=lambda m: click.echo(m, err=True),
    )
    emit(format_bench_throughput(result), result, as_json)
