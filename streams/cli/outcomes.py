"""``autopilot outcomes``: simulated outcomes for the worker's remediation decisions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson

from streams.lab.outcomes import run_outcomes
from streams.runtime.app import app, settings, topic_names

__all__ = ["outcomes"]


@app.command(
    click.option(
        "--ground-truth",
        "ground_truth",
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Ground-truth JSON of the simulation run (autopilot simulate --ground-truth).",
    ),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws."),
    click.option(
        "--limit", type=int, default=0, show_default=True, help="Stop after N outcomes (0: never)."
    ),
    click.option("--timeout", type=float, help="Stop after S seconds (default: never)."),
)
async def outcomes(self, ground_truth: Path, seed: int, limit: int, timeout: float | None) -> None:
    """Answer remediation decisions with outcomes drawn from the simulator's hidden truth.

    Reads decisions.remediation (carrying on where the last run stopped), finds the
    error burst of the ground truth each decision answers, and publishes to
    feedback.remediation whether the chosen action worked, drawn with the hidden
    success probability of the incident's fault type and that action.
    """
    try:
        truth = orjson.loads(ground_truth.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise click.UsageError(f"{ground_truth}: not valid JSON: {exc}") from None
    if limit < 0 or (timeout is not None and timeout <= 0):
        raise click.UsageError("--limit must be >= 0 and --timeout > 0")
    click.echo(
        f"answering {topic_names.remediation} on {settings.bootstrap_servers} "
        f"into {topic_names.remediation_feedback}",
        err=True,
    )
    try:
        summary = await run_outcomes(
            bootstrap_servers=settings.bootstrap_servers,
            topics=topic_names,
            truth=truth,
            group_id=f"{settings.app_id}-outcomes",
            seed=seed,
            limit=limit,
            timeout_s=timeout,
            security=settings.aiokafka_security_kwargs(),
        )
    except asyncio.CancelledError:
        click.echo("outcomes interrupted", err=True)
        return
    click.echo(summary.describe())
