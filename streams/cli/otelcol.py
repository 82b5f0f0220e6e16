"""``autopilot otelcol build|start|stop|status|config``: a local OpenTelemetry Collector."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from schemas.otlp import ENCODINGS
from streams.otelcol.local import (
    OtelcolError,
    OtelcolLocal,
    ScrapeTarget,
    collector_config,
)

__all__ = ["otelcol"]


def _default_data_dir() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "paas-autopilot" / "otelcol"


def _collector(data_dir: Path | None) -> OtelcolLocal:
    return OtelcolLocal(
        data_dir=data_dir or _default_data_dir(), log=lambda msg: click.echo(msg, err=True)
    )


def _scrape_target(text: str) -> ScrapeTarget:
    """``JOB=HOST:PORT[,LABEL=VALUE...]`` as a scrape target."""
    head, *labels = text.split(",")
    job, sep, target = head.partition("=")
    pairs = [label.partition("=") for label in labels]
    if not sep or not job or ":" not in target or any(not k or not s for k, s, _ in pairs):
        raise click.BadParameter(
            f"{text!r} is not JOB=HOST:PORT[,LABEL=VALUE...], e.g. "
            "checkout=127.0.0.1:8000,cloud_region=eu-west"
        )
    return ScrapeTarget(job, target, {k: v for k, _, v in pairs})


_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Config, pid and log of the collector [~/.local/state/paas-autopilot/otelcol].",
)


def _config_options(command):
    options = [
        click.option(
            "--broker",
            envvar="AUTOPILOT_BROKER",
            default="127.0.0.1:9092",
            show_default="AUTOPILOT_BROKER or 127.0.0.1:9092",
            help="Kafka bootstrap the collector writes to.",
        ),
        click.option(
            "--prefix",
            envvar="AUTOPILOT_TOPIC_PREFIX",
            default="",
            help="Topic prefix of the deployment [AUTOPILOT_TOPIC_PREFIX].",
        ),
        click.option(
            "--encoding",
            envvar="AUTOPILOT_OTLP_ENCODING",
            type=click.Choice(ENCODINGS),
            default="otlp_proto",
            show_default=True,
            help="How the Kafka exporter encodes [AUTOPILOT_OTLP_ENCODING]; the worker "
            "must read the same.",
        ),
        click.option("--grpc-port", default=4317, show_default=True, help="OTLP/gRPC port."),
        click.option("--http-port", default=4318, show_default=True, help="OTLP/HTTP port."),
        click.option(
            "--scrape",
            "targets",
            multiple=True,
            metavar="JOB=HOST:PORT[,LABEL=VALUE...]",
            help="A Prometheus endpoint to scrape (repeatable); its job is the service, a "
            "cloud_region label its region (AUTOPILOT_OTLP_REGION_ATTRIBUTES).",
        ),
        click.option(
            "--scrape-interval", default=15.0, show_default=True, help="Seconds between scrapes."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _config(
    broker: str,
    prefix: str,
    encoding: str,
    grpc_port: int,
    http_port: int,
    targets: tuple[str, ...],
    scrape_interval: float,
) -> dict:
    return collector_config(
        broker.removeprefix("kafka://").split(";")[0],
        topic_prefix=prefix,
        encoding=encoding,
        grpc_port=grpc_port,
        http_port=http_port,
        scrape=[_scrape_target(t) for t in targets],
        scrape_interval_s=scrape_interval,
    )


@click.group()
def otelcol() -> None:
    """Run an OpenTelemetry Collector that writes OTLP metrics and logs to Kafka.

    The collector (OTLP receiver, Prometheus receiver, Kafka exporter) is built once from
    Go modules with the OpenTelemetry Collector Builder into
    ~/.cache/paas-autopilot/otelcol (AUTOPILOT_OTELCOL_CACHE): that needs Go and about
    3 to 5 minutes on 2 cores; later starts need neither.
    """


@otelcol.command()
def build() -> None:
    """Build the collector now (start builds it too, if needed)."""
    try:
        click.echo(_collector(None).build())
    except OtelcolError as exc:
        raise click.ClickException(str(exc)) from None


@otelcol.command()
@_config_options
def config(**options) -> None:
    """Print the collector configuration (JSON, which is YAML) that start would run."""
    click.echo(json.dumps(_config(**options), indent=2))


@otelcol.command()
@_config_options
@_data_dir
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for readiness.")
def start(data_dir: Path | None, timeout: float, **options) -> None:
    """Start the collector (building it first if needed); return once OTLP listens."""
    collector = _collector(data_dir)
    try:
        pid = collector.start(_config(**options), timeout_s=timeout)
    except OtelcolError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"collector pid {pid}; log {collector.log_file}")


@otelcol.command()
@_data_dir
def stop(data_dir: Path | None) -> None:
    """Stop the collector."""
    collector = _collector(data_dir)
    click.echo("stopped" if collector.stop() else "the collector was not running")


@otelcol.command()
@_data_dir
def status(data_dir: Path | None) -> None:
    """Say whether the collector runs, and with which config."""
    collector = _collector(data_dir)
    pid = collector.pid()
    if pid is None:
        click.echo("not running")
        raise SystemExit(1)
    click.echo(f"running (pid {pid}), config {collector.config_file}, log {collector.log_file}")
