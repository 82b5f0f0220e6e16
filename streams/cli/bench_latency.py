"""``autopilot bench latency``: produce time to decision published, at a fixed offered rate."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.bench import bench, broker_option, emit, json_option

__all__ = ["bench_latency"]


@bench.command("latency")
@click.option("--rate", type=click.FloatRange(0.0, min_open=True),
              help="Metric samples per second to offer; default: half the capacity that "
              "the probe measures in the same run.")  # fmt: skip
@click.option("--seconds", default=30.0, show_default=True,
              type=click.FloatRange(0.0, min_open=True),
              help="Wall seconds of the measurement at that rate.")  # fmt: skip
@click.option("--series", default=300, show_default=True, type=click.IntRange(1),
              help="Distinct service/region series.")  # fmt: skip
@click.option("--probe-events", default=30_000, show_default=True, type=click.IntRange(1),
              help="Samples of the capacity probe, after a warm-up of 150 a series.")  # fmt: skip
@click.option("--curve", is_flag=True,
              help="Measure at 25, 50, 75 and 90% of the capacity in one run, and print "
              "the latency-versus-load table.")  # fmt: skip
@click.option("--plot", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="With --curve: draw p50 and p99 against the load into this PNG "
              "(needs matplotlib: pip install 'paas-autopilot[lab]').")  # fmt: skip
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(1),
              help="Rounds of the whole measurement on one broker, each with fresh topics "
              "and a fresh worker: a line a round, the median and spread of each figure, "
              "and how many rounds met the p99 target.")  # fmt: skip
@broker_option
@json_option
def bench_latency(
    rate: float | None,
    seconds: float,
    series: int,
    probe_events: int,
    curve: bool,
    plot: Path | None,
    rounds: int,
    broker: str | None,
    as_json: bool,
) -> None:
    """p50/p99 time from a metric sample's produce time to its decision on the decision topic.

    The capacity is probed with the mix that is measured; then the worker gets half of it
    (or --rate, or with --curve, each of four loads) for --seconds each.
    """
    from streams.lab.bench.latency import (
        CURVE_FRACTIONS,
        HEADLINE_FRACTION,
        format_bench_latency,
        plot_curve,
        run_bench_latency,
    )

    if plot is not None and not curve:
        raise click.UsageError("--plot draws the curve: give --curve too")
    if plot is not None and rounds > 1:
        raise click.UsageError("--plot draws the curve of one round: leave out --rounds")
    if curve and rate is not None:
        raise click.UsageError("--curve offers fractions of the capacity: leave out --rate")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise click.ClickException(
                "--plot needs matplotlib: pip install 'paas-autopilot[lab]'"
            ) from exc
    result = run_bench_latency(
        rate=rate,
        seconds=seconds,
        series=series,
        broker=broker,
        probe_events=probe_events,
        fractions=CURVE_FRACTIONS if curve else (HEADLINE_FRACTION,),
        log=lambda m: click.echo(m, err=True),
        rounds=rounds,
    )
    if plot is not None:
        plot_curve(result["rounds"][0], plot)
        click.echo(f"curve drawn to {plot}", err=True)
    emit(format_bench_latency(result), result, as_json)
