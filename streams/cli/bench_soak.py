"""``autopilot bench soak``: a worker under a steady stream for minutes; is its memory flat?"""

from __future__ import annotations

import click

from streams.cli.bench import bench, broker_option, emit, json_option

__all__ = ["bench_soak"]


@bench.command("soak")
@click.option("--minutes", default=30.0, show_default=True,
              type=click.FloatRange(0.0, min_open=True),
              help="Wall minutes of the stream; 0.2 makes a smoke run.")  # fmt: skip
@click.option("--rate", default=500.0, show_default=True,
              type=click.FloatRange(0.0, min_open=True),
              help="Metric samples per second; errors and interactions come on top.")  # fmt: skip
@click.option("--series", default=1000, show_default=True, type=click.IntRange(1),
              help="Distinct service/region series.")  # fmt: skip
@click.option("--interval", "interval_s", default=10.0, show_default=True,
              type=click.FloatRange(0.1),
              help="Seconds between two readings of the worker's memory.")  # fmt: skip
@broker_option
@json_option
def bench_soak(
    minutes: float,
    rate: float,
    series: int,
    interval_s: float,
    broker: str | None,
    as_json: bool,
) -> None:
    """Worker RSS and model memory over a steady simulator stream: start, end, peak, slope."""
    from streams.lab.bench.soak import format_bench_soak, run_bench_soak

    try:
        result = run_bench_soak(
            minutes=minutes,
            rate=rate,
            series=series,
            broker=broker,
            interval_s=interval_s,
            log=lambda m: click.echo(m, err=True),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    emit(format_bench_soak(result), result, as_json)
