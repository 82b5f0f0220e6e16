"""``autopilot bench latency``: produce time to decision published, at a fixed offered rate."""

from __future__ import annotations

import click

from streams.cli.bench import bench, broker_option, emit, json_option

__all__ = ["bench_latency"]


@bench.command("latency")
@click.option("--rate", type=click.FloatRange(0.0, min_open=True),
              help="Metric samples per second to offer; default: half the capacity that "
              "the warm-up measures in the same run.")  # fmt: skip
@click.option("--seconds", default=30.0, show_default=True,
              type=click.FloatRange(0.0, min_open=True),
              help="Wall seconds of the measurement at that rate.")  # fmt: skip
@click.option("--series", default=300, show_default=True, type=click.IntRange(1),
              help="Distinct service/region series.")  # fmt: skip
@click.option("--probe-events", default=30_000, show_default=True, type=click.IntRange(1),
              help="Warm-up samples; they probe the capacity (>= 150 a series).")  # fmt: skip
@broker_option
@json_option
def bench_latency(
    rate: float | None,
    seconds: float,
    series: int,
    probe_events: int,
    broker: str | None,
    as_json: bool,
) -> None:
    """p50/p99 time from a metric sample's produce time to its decision on the decision topic."""
    from streams.lab.bench.latency import format_bench_latency, run_bench_latency

    result = run_bench_latency(
        rate=rate,
        seconds=seconds,
        series=series,
        broker=broker,
        probe_events=probe_events,
        log=lambda m: click.echo(m, err=True),
    )
    emit(format_bench_latency(result), result, as_json)
