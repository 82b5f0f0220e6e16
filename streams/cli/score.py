"""``autopilot score``: a registered anomaly detector, with its defaults, over a CSV file."""

from __future__ import annotations

import time
from pathlib import Path

import click

from streams.cli.detectors import detector_option, resolve_detector

__all__ = ["score"]


@click.command()
@click.option("--input", "input_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV of timestamp,value (header optional).")  # fmt: skip
@click.option("--output", "output_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Written as timestamp,value,anomaly_score, one row per input row.")  # fmt: skip
@detector_option
def score(input_path: Path, output_path: Path, detector_name: str) -> None:
    """Score a series offline exactly as the worker scores a metric series."""
    from streams.lab.score import score_csv

    entry = resolve_detector(detector_name)
    started = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or done == total:
            last[0] = now
            click.echo(f"  scored {done:,d}/{total:,d} rows", err=True)

    summary = score_csv(input_path, output_path, progress=progress, entry=entry)
    elapsed = time.monotonic() - started
    click.echo(
        f"scored {summary['rows']:,d} rows with {entry.name} in {elapsed:.2f}s into {output_path}; "
        f"flagged {summary['anomalies']:,d}, bad rows {summary['bad_rows']:,d}"
    )
