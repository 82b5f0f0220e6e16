"""``autopilot bench ...``: benchmarks that print figures as ratios against a same-run baseline.

Every bench prints a readable summary; with ``--json`` its last line of output is
one JSON object holding the same figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
import orjson

__all__ = ["bench", "emit"]


def emit(summary: str, figures: Mapping[str, Any], as_json: bool) -> None:
    """Print ``summary``, then, with ``as_json``, the figures as one JSON line."""
    click.echo(summary)
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_SERIALIZE_NUMPY).decode())


json_option = click.option(
    "--json", "as_json", is_flag=True, help="End with one JSON object of the figures."
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
    """Cost of the anomaly detector per value and per series, against River's HalfSpaceTrees."""
    from models.bench_models import format_bench_models, run_bench_models

    result = run_bench_models(n_series=series, n_values=values, seed=seed)
    emit(format_bench_models(result), result, as_json)


@bench.command("scaling")
@click.option("--trace", "traces", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Demand trace CSV (timestamp,value); repeat for several.")  # fmt: skip
@click.option("--startup-delay", default=180.0, show_default=True,
              help="Seconds a new replica needs to become ready.")  # fmt: skip
@click.option("--target", "targets", multiple=True, type=float,
              default=(0.5, 0.6, 0.7, 0.8), show_default=True,
              help="Target utilisations of the Pareto sweep.")  # fmt: skip
@json_option
def bench_scaling(
    traces: tuple[str, ...], startup_delay: float, targets: tuple[float, ...], as_json: bool
) -> None:
    """Predictive scaling against the Kubernetes HPA on demand traces, in the same run."""
    from models.scaling_sim import format_bench_scaling, run_bench_scaling

    result = run_bench_scaling(traces, targets=targets, startup_delay_s=startup_delay)
    emit(format_bench_scaling(result), result, as_json)
