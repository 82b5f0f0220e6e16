"""``autopilot bench ...``: benchmarks that print figures as ratios against a same-run baseline.

Every bench prints a readable summary; with ``--json`` its last line of output is
one JSON object holding the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
import orjson

from streams.cli.detectors import detector_option, load_detector_plugins, resolve_detector

__all__ = ["bench", "emit"]


def emit(summary: str, figures: Mapping[str, Any], as_json: bool) -> None:
    """Print ``summary``, then, with ``as_json``, the figures as one JSON line."""
    click.echo(summary)
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_SERIALIZE_NUMPY).decode())


json_option = click.option(
    "--json", "as_json", is_flag=True, help="End with one JSON object of the figures."
)
# The benches that run on a broker: which one, and how their records travel.
broker_option = click.option(
    "--broker",
    envvar="AUTOPILOT_BENCH_BROKER",
    help="host:port of a broker to use; default: start a local one for the run.",
)
envelope_option = click.option(
    "--envelope",
    default=100,
    show_default=True,
    type=click.IntRange(1, 2000),
    help="Records of one series per message; 1 sends single records.",
)


@click.group()
def bench() -> None:
    """Measure the product against baselines run in the same process."""


@bench.command("models")
@click.option("--series", default=200, show_default=True, help="Series to spread values over.")
@click.option("--values", default=20_000, show_default=True, help="Values to score in all.")
@click.option("--seed", default=0, show_default=True)
@json_option
def bench_models(series: int, values: int, seed: int, as_json: bool) -> None:
    """Cost of every registered detector per value and per series, against River's
    HalfSpaceTrees."""
    from streams.lab.bench.models import format_bench_models, run_bench_models

    refused = load_detector_plugins()
    result = run_bench_models(n_series=series, n_values=values, seed=seed)
    result["plugins_refused"] = refused
    emit(format_bench_models(result), result, as_json)


@bench.command("nab")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False),
              help="Folder of labelled CSV series and their windows.json, e.g. "
              "../shared/data/anomaly.")  # fmt: skip
@detector_option
@json_option
def bench_nab(data_dir: str, detector_name: str, as_json: bool) -> None:
    """NAB v1.1 scores (three profiles) of `autopilot score`'s detector, with its defaults."""
    from streams.lab.nab import format_nab, run_nab

    result = run_nab(data_dir, entry=resolve_detector(detector_name))
    emit(format_nab(result), result, as_json)


@bench.command("prevention")
@click.option("--runs", default=25, show_default=True,
              help="Runs of each incident scenario, and of each healthy one.")  # fmt: skip
@click.option("--days", default=2.0, show_default=True,
              type=click.FloatRange(0.5), help="Length of every run.")  # fmt: skip
@click.option("--seed", default=0, show_default=True)
@json_option
def bench_prevention(runs: int, days: float, seed: int, as_json: bool) -> None:
    """Risk decisions on leaks, fills, pool exhaustion and budget burns, against ground truth."""
    from streams.lab.bench.prevention import format_bench_prevention, run_bench_prevention

    result = run_bench_prevention(runs, runs, days=days, seed=seed)
    emit(format_bench_prevention(result), result, as_json)


@bench.command("scaling")
@click.option("--trace", "traces", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Demand trace CSV (timestamp,value); repeat for several.")  # fmt: skip
@click.option("--startup-delay", default=180.0, show_default=True,
              help="Seconds a new replica needs to become ready.")  # fmt: skip
@click.option("--target", "targets", multiple=True, type=float,
              default=(0.5, 0.6, 0.7, 0.8), show_default=True,
              help="Target utilisations of the Pareto sweep.")  # fmt: skip
@click.option("--usage-prior/--no-usage-prior", default=True, show_default=True,
              help="Also score the forecaster with and without the usage-pattern prior on "
              "the simulator's trace (two simulated weeks learned, one scored).")  # fmt: skip
@json_option
def bench_scaling(
    traces: tuple[str, ...],
    startup_delay: float,
    targets: tuple[float, ...],
    usage_prior: bool,
    as_json: bool,
) -> None:
    """Predictive scaling against the Kubernetes HPA and a perfect-foresight oracle, in one run."""
    from streams.lab.bench.scaling import format_bench_scaling, run_bench_scaling
    from streams.lab.bench.usage_prior import format_bench_usage_prior, run_bench_usage_prior

    if not traces and not usage_prior:
        raise click.UsageError("give at least one --trace, or keep --usage-prior")
    figures: dict = {}
    parts = []
    if traces:
        figures = run_bench_scaling(traces, targets=targets, startup_delay_s=startup_delay)
        parts.append(format_bench_scaling(figures))
    if usage_prior:
        figures["usage_prior"] = run_bench_usage_prior(startup_delay_s=startup_delay)
        parts.append(format_bench_usage_prior(figures["usage_prior"]))
    emit("\n\n".join(parts), figures, as_json)


@bench.command("templates")
@click.option("--input", "log_file", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Raw log file, one message per line.")  # fmt: skip
@click.option("--assignments", type=click.Path(dir_okay=False),
              help="Write line,template_id,template for every input line, in order.")  # fmt: skip
@click.option("--truth", "truth_file", type=click.Path(exists=True, dir_okay=False),
              help="Loghub truth CSV (line,EventId) of the input: print grouping "
              "accuracy.")  # fmt: skip
@json_option
def bench_templates(
    log_file: str, assignments: str | None, truth_file: str | None, as_json: bool
) -> None:
    """Redact and mine the templates of a log file: templates, counts, messages per second."""
    from streams.lab.bench.templates import (
        format_bench_templates,
        read_lines,
        read_truth,
        run_bench_templates,
    )

    lines = read_lines(log_file)
    truth = None if truth_file is None else read_truth(truth_file)
    if truth is not None and len(truth) != len(lines):
        raise click.UsageError(f"{len(truth)} truth rows for {len(lines)} lines")
    result = run_bench_templates(lines, assignments, truth=truth)
    emit(format_bench_templates(result), result, as_json)


@bench.command("remediation")
@click.option("--incidents-per-fault", default=30, show_default=True,
              help="Incidents of each fault type while the policy learns.")  # fmt: skip
@click.option("--seed", default=0, show_default=True)
@click.option("--seeds", default=None, metavar="A-B",
              help="Run seeds A-B (e.g. 0-4) and print their mean; overrides --seed.")  # fmt: skip
@json_option
def bench_remediation(
    incidents_per_fault: int, seed: int, seeds: str | None, as_json: bool
) -> None:
    """Learned remediation policy against a fixed rule table and random choice, with regret."""
    from streams.lab.bench.remediation import (
        format_bench_remediation,
        format_bench_remediation_seeds,
        run_bench_remediation,
        run_bench_remediation_seeds,
    )

    if seeds is not None:
        first, _, last = seeds.partition("-")
        try:
            span = range(int(first), int(last or first) + 1)
        except ValueError:
            raise click.UsageError(f"--seeds wants A-B, got {seeds!r}") from None
        if not span:
            raise click.UsageError(f"--seeds {seeds!r} is empty")
        many = run_bench_remediation_seeds(list(span), incidents_per_fault=incidents_per_fault)
        emit(format_bench_remediation_seeds(many), many, as_json)
        return
    result = run_bench_remediation(incidents_per_fault=incidents_per_fault, seed=seed)
    emit(format_bench_remediation(result), result, as_json)


@bench.command("failover")
@click.option("--seed", default=0, show_default=True)
@click.option("--scenario", "names", multiple=True,
              help="Run only this scenario (repeat for several); all by default.")  # fmt: skip
@click.option("--healthy-hours", default=24.0, show_default=True,
              type=click.FloatRange(0.0, min_open=True),
              help="Length of the healthy run that counts false failovers.")  # fmt: skip
@json_option
def bench_failover(seed: int, names: tuple[str, ...], healthy_hours: float, as_json: bool) -> None:
    """Region health and the failover policy on simulated incidents, scored on ground truth."""
    from streams.lab.bench.failover import format_failover_bench, run_failover_scenarios

    try:
        result = run_failover_scenarios(seed, names=names or None, healthy_hours=healthy_hours)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    emit(format_failover_bench(result), result, as_json)
