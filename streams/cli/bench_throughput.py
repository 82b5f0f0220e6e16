"""``autopilot bench throughput``: the pipeline against a raw aiokafka consumer."""

from __future__ import annotations

import click

from streams.cli.bench import bench, emit, json_option

__all__ = ["bench_throughput"]


@bench.command("throughput")
@click.option("--events", default=500_000, show_default=True, help="Metric events to produce.")
@click.option("--series", default=1_000, show_default=True, help="Distinct service/region series.")
@click.option(
    "--broker",
    envvar="AUTOPILOT_BENCH_BROKER",
    help="host:port of a broker to use; default: start a local one for the run.",
)
@click.option(
    "--envelope",
    default=100,
    show_default=True,
    type=click.IntRange(1, 2000),
    help="Samples of one series per message; 1 sends single records.",
)
@json_option
def bench_throughput(
    events: int, series: int, broker: str | None, envelope: int, as_json: bool
) -> None:
    """Events per second of the full pipeline and of a raw consumer, on one broker, in one run."""
    from streams.lab.bench.throughput import format_bench_throughput, run_bench_throughput

    result = run_bench_throughput(
        events=events,
        series=series,
        broker=broker,
        envelope=envelope,
        log=lambda m: click.echo(m, err=True),
    )
    emit(format_bench_throughput(result), result, as_json)
