"""``autopilot bench scaleout``: the bare brains, one worker and two, on one broker."""

from __future__ import annotations

import click

from streams.cli.bench import bench, broker_option, emit, envelope_option, json_option

__all__ = ["bench_scaleout"]


@bench.command("scaleout")
@click.option("--records", default=300_000, show_default=True, help="Metric records to produce.")
@click.option("--series", default=1_000, show_default=True, help="Distinct service/region series.")
@envelope_option
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(1),
              help="Rounds of the whole comparison on one broker; with several, each figure "
              "is their median, with its spread and how many rounds met each target.")  # fmt: skip
@broker_option
@json_option
def bench_scaleout(
    records: int, series: int, envelope: int, rounds: int, broker: str | None, as_json: bool
) -> None:
    """Records per second of the brains in process, and of the pipeline with 1 and 2 workers.

    Also where a record's time went, in microseconds: validation, each brain and the rest,
    in process and in the workers (their autopilot_handling_seconds_total against their CPU
    time). A round takes about 2.5 minutes on 2 cores with the defaults.
    """
    from streams.lab.bench.scaleout import format_bench_scaleout, run_bench_scaleout

    result = run_bench_scaleout(
        records=records,
        series=series,
        envelope=envelope,
        broker=broker,
        log=lambda m: click.echo(m, err=True),
        rounds=rounds,
    )
    emit(format_bench_scaleout(result), result, as_json)
