"""``autopilot simulate``: realistic telemetry, scripted incidents, ground truth."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson

from streams.cli.params import TIMESTAMP
from streams.lab.scenario import ScenarioError, bundled_scenarios, load_scenario
from streams.lab.simulator import (
    DEFAULT_INTERACTIONS_PER_S,
    DEFAULT_REGIONS,
    DEFAULT_SERVICES,
    SimConfig,
    run_simulation,
)
from streams.runtime.app import app, settings, topic_names

__all__ = ["simulate"]


def _names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _pace(
    history: float, speed: float, scenario_s: float, span: float, after_speed: float | None
) -> tuple[tuple[float, float], ...]:
    """The stretches after the first: the scenario after its history, what follows it.

    >>> _pace(3600, 120, 3600, 82800 - 3600, 1)
    ((3600, 120), (7200, 1))
    >>> _pace(0, 4, 3600, 3600, 1)
    ()
    """
    steps = [(history, speed)] if history else []
    if after_speed is not None and span > scenario_s:
        steps.append((history + scenario_s, after_speed))
    return tuple(steps)


@app.command(
    click.option(
        "--scenario",
        help=f"Scenario JSON file, or a bundled one: {', '.join(bundled_scenarios())}.",
    ),
    click.option(
        "--duration",
        type=float,
        help="Event seconds to simulate after the history (default: the scenario's).",
    ),
    click.option(
        "--speed",
        type=float,
        default=0.0,
        show_default=True,
        help="Event seconds per wall second; 0 sends as fast as possible.",
    ),
    click.option(
        "--history",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Event seconds of telemetry without incidents before the scenario, sent as "
        "fast as possible: the models are warm when the scenario starts.",
    ),
    click.option(
        "--after-speed",
        type=click.FloatRange(min=0),
        help="Speed once the scenario is over, when --duration runs past it (default: "
        "--speed); 1 goes on in real time.",
    ),
    click.option("--services", default=",".join(DEFAULT_SERVICES), show_default=True),
    click.option("--regions", default=",".join(DEFAULT_REGIONS), show_default=True),
    click.option("--tenants", type=int, default=20, show_default=True),
    click.option("--tick", type=float, help="Event seconds between samples of a series."),
    click.option("--base-rps", type=float, default=200.0, show_default=True),
    click.option(
        "--interactions-per-s",
        type=click.FloatRange(min=0),
        default=DEFAULT_INTERACTIONS_PER_S,
        show_default=True,
        help="User interactions per second over all tenants at mean load.",
    ),
    click.option(
        "--start",
        type=TIMESTAMP,
        help="Event time of the first record (epoch s or ISO 8601, UTC), for a run at a "
        "chosen time of day; default: placed to end about now. A worker refuses events "
        "older than AUTOPILOT_MAX_PAST_S (a day by default).",
    ),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option(
        "--envelope",
        "envelope_records",
        type=click.IntRange(1, 2000),
        default=100,
        show_default=True,
        help='Records of one series sent together as an envelope {"samples": [...]}.',
    ),
    click.option(
        "--no-envelope",
        is_flag=True,
        help="Send every record as a message of its own (same as --envelope 1).",
    ),
    click.option(
        "--ground-truth",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write what happened where and when to this JSON file.",
    ),
    click.option(
        "--summary-json",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Also write the final summary to this JSON file.",
    ),
)
async def simulate(
    self,
    scenario: str | None,
    duration: float | None,
    speed: float,
    history: float,
    after_speed: float | None,
    services: str,
    regions: str,
    tenants: int,
    tick: float | None,
    base_rps: float,
    interactions_per_s: float,
    start: float | None,
    seed: int,
    envelope_records: int,
    no_envelope: bool,
    ground_truth: Path | None,
    summary_json: Path | None,
) -> None:
    """Produce telemetry for services x regions to the broker, with scripted incidents.

    Progress (events sent, rate, event time) is printed about once a second; a
    summary per topic ends the run. Event time ends near now, so the worker's
    timestamp-skew check accepts every event, unless --start places it.
    """
    overrides: dict = {
        "services": _names(services),
        "regions": _names(regions),
        "tenants": tenants,
        "speed": speed or None,
        "seed": seed,
        "base_rps": base_rps,
        "interactions_per_s": interactions_per_s,
        "envelope_records": 1 if no_envelope else envelope_records,
        "start_ts": start,
    }
    if tick is not None:
        overrides["tick_s"] = tick
    if (history or after_speed is not None) and not scenario:
        raise click.UsageError("--history and --after-speed shape a --scenario's run")
    try:
        if scenario:
            script = load_scenario(scenario)
            span = script.duration_s if duration is None else duration
            overrides["duration_s"] = history + span
            overrides["pace"] = _pace(history, speed, script.duration_s, span, after_speed)
            if history:
                overrides["speed"] = None
            config = SimConfig.for_scenario(script.after(history), **overrides)
        else:
            if duration is not None:
                overrides["duration_s"] = duration
            config = SimConfig(**overrides)
    except (ScenarioError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None

    def progress(sent: int, rate: float, event_ts: float) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event_ts))
        click.echo(f"  sent {sent:>10,d} events  {rate:>9,.0f}/s  event time {stamp}", err=True)

    click.echo(
        f"simulating {len(config.services)} services x {len(config.regions)} regions, "
        f"{config.duration_s:g} event s, to {settings.bootstrap_servers} "
        f"(topic prefix {topic_names.prefix or '(none)'})",
        err=True,
    )
    try:
        summary = await run_simulation(
            config,
            bootstrap_servers=settings.bootstrap_servers,
            topics=topic_names,
            ground_truth_path=ground_truth,
            progress=progress,
            security=settings.aiokafka_security_kwargs(),
        )
    except asyncio.CancelledError:
        click.echo("simulation interrupted", err=True)
        return
    figures = summary.to_dict()
    per_topic = ", ".join(f"{topic} {count:,d}" for topic, count in summary.sent.items())
    click.echo(
        f"sent {summary.total:,d} events ({per_topic}) in {summary.messages:,d} messages, "
        f"{summary.wall_s:.1f}s, "
        f"{summary.rate_per_s:,.0f}/s; failed {summary.failed}"
        + (f"; ground truth in {ground_truth}" if ground_truth else "")
    )
    if summary_json:
        summary_json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    if summary.failed:
        raise click.ClickException(f"{summary.failed} sends failed: {summary.first_error}")
