"""``autopilot kafka start|stop|status``: the local development broker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from streams.kafka.local import (
    KafkaLocal,
    KafkaLocalError,
    env_data_dir,
    named_broker,
    started_port,
)
from streams.kafka.topics import create_topics

__all__ = ["create_product_topics", "kafka"]


def _default_port() -> int:
    raw = os.environ.get("AUTOPILOT_KAFKA_PORT", "9092")
    try:
        return int(raw)
    except ValueError:
        raise click.BadParameter(f"AUTOPILOT_KAFKA_PORT={raw!r} is not a port") from None


_port = click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Client port on 127.0.0.1 [the port of the broker last started in --data-dir, "
    "else AUTOPILOT_KAFKA_PORT or 9092; with --name: the cluster's port from before, else a "
    "free one].",
)
_name = click.option(
    "--name",
    default=None,
    metavar="NAME",
    help="One of several local clusters (us-east, eu-west, global): its own ports, data "
    "dir and cluster id; status and stop find it by name.",
)
_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Log dirs, config, pid and logs [AUTOPILOT_KAFKA_DATA or ~/.local/state/...].",
)


def _broker(name: str | None, port: int | None, data_dir: Path | None) -> KafkaLocal:
    log = lambda msg: click.echo(msg, err=True)  # noqa: E731
    if name is None:
        if port is None:
            # status and stop find the broker on the port it was started with.
            started_in = data_dir or env_data_dir()
            port = started_port(started_in) if started_in else None
        return KafkaLocal(port=port or _default_port(), data_dir=data_dir, log=log)
    try:
        return named_broker(name, port=port, data_dir=data_dir, log=log)
    except KafkaLocalError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None


@click.group()
def kafka() -> None:
    """Run a local single-node Apache Kafka (KRaft) for development and tests.

    The broker jars are fetched once from Maven Central with mvn into
    ~/.cache/paas-autopilot/kafka (AUTOPILOT_KAFKA_CACHE); later starts need no
    network. If you already run Kafka, set AUTOPILOT_BROKER and skip this.
    """


@kafka.command()
@_name
@_port
@_data_dir
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for readiness.")
def start(name: str | None, port: int | None, data_dir: Path | None, timeout: float) -> None:
    """Start the broker and return once it answers a metadata request.

    Several clusters, one per region and one global, for a multi-region setup:

        autopilot kafka start --name us-east
        autopilot kafka start --name eu-west
        autopilot kafka start --name global
    """
    broker = _broker(name, port, data_dir)
    if (pid := broker.pid()) is not None:
        click.echo(f"{broker.title} is already running on {broker.bootstrap} (pid {pid})")
        return
    try:
        broker.start(timeout_s=timeout)
    except KafkaLocalError as exc:
        raise click.ClickException(str(exc)) from None
    created = create_product_topics(broker.bootstrap)
    click.echo(f"export AUTOPILOT_BROKER=kafka://{broker.bootstrap}")
    click.echo(created, err=True)


def create_product_topics(bootstrap: str) -> str:
    """Create every topic the worker reads or writes; say how many, in one line."""
    # The deployment's prefix and partition count, from the same env vars as the worker's.
    from streams.runtime.app import settings, topics

    names = asyncio.run(
        create_topics(bootstrap, topics.specs(), security=settings.aiokafka_security_kwargs())
    )
    prefix = settings.topic_prefix or "(none)"
    return (
        f"created {len(names)} topics ({settings.partitions} partitions, prefix {prefix})"
        if names
        else "every topic of the product already exists"
    )


@kafka.command()
@_name
@_port
@_data_dir
def stop(name: str | None, port: int | None, data_dir: Path | None) -> None:
    """Stop the broker started by ``autopilot kafka start``."""
    broker = _broker(name, port, data_dir)
    if not broker.stop():
        click.echo(f"{broker.title} is not running on {broker.bootstrap}; nothing to stop")


@kafka.command()
@_name
@_port
@_data_dir
def status(name: str | None, port: int | None, data_dir: Path | None) -> None:
    """Say whether the broker runs and answers; exit code 3 when it does not run."""
    broker = _broker(name, port, data_dir)
    click.echo(broker.status())
    if broker.pid() is None:
        raise SystemExit(3)
