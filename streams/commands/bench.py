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
