"""``autopilot bench mirror``: decision latency through MirrorMaker 2, against one cluster."""

from __future__ import annotations

import click

from streams.cli.bench import bench, emit, json_option

__all__ = ["bench_mirror"]


@bench.command("mirror")
@click.option("--rate", default=200.0, show_default=True,
              type=click.FloatRange(0.0, min_open=True),
              help="Metric samples per second offered on each path.")  # fmt: skip
@click.option("--seconds", default=30.0, show_default=True,
              type=click.FloatRange(0.0, min_open=True),
              help="Wall seconds of the measurement on each path.")  # fmt: skip
@click.option("--series", default=60, show_default=True, type=click.IntRange(1),
              help="Distinct service/region series.")  # fmt: skip
@json_option
def bench_mirror(rate: float, seconds: float, series: int, as_json: bool) -> None:
    """p50/p99 from a producer in a region to the decision back in that region, through
    MirrorMaker 2 both ways, and the same on one cluster in the same run.

    Starts two local clusters (a region and the hub) and MirrorMaker 2 between them; the
    worker runs on the hub.
    """
    from streams.lab.bench.mirror import format_bench_mirror, run_bench_mirror

    result = run_bench_mirror(
        rate=rate, seconds=seconds, series=series, log=lambda m: click.echo(m, err=True)
    )
    emit(format_bench_mirror(result), result, as_json)
