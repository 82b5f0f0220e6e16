"""``autopilot mirror start|stop|status``: MirrorMaker 2 between regional clusters and the hub."""

from __future__ import annotations

from pathlib import Path

import click

from schemas.topics import TopicNames
from streams.kafka.local import KafkaLocalError, named_broker, state_dir
from streams.kafka.mirror import MirrorMaker, hub_flows, standby_flow

__all__ = ["mirror"]

_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="mm2.properties, pid and log of MirrorMaker [~/.local/state/paas-autopilot/mirror].",
)


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


def _bootstrap(alias: str, given: dict[str, str]) -> str:
    """A cluster's ``host:port``: given with --cluster, else the local cluster of that name."""
    if alias in given:
        return given[alias]
    try:
        broker = named_broker(alias)
    except KafkaLocalError as exc:
        raise click.BadParameter(str(exc)) from None
    if broker.pid() is None:
        raise click.UsageError(
            f"no local cluster {alias!r} runs: start it with `autopilot kafka start --name "
            f"{alias}`, or give its address with --cluster {alias}=HOST:PORT"
        )
    return broker.bootstrap


def _mirror(
    data_dir: Path | None,
    clusters: dict[str, str] | None = None,
    flows=(),
    replication_factor: int = 1,
) -> MirrorMaker:
    return MirrorMaker(
        clusters or {},
        list(flows),
        replication_factor=replication_factor,
        data_dir=data_dir or state_dir() / "mirror",
        log=_echo,
    )


@click.group()
def mirror() -> None:
    """Copy regional telemetry to the hub cluster, and decisions back, with MirrorMaker 2.

    Each region's input topics (telemetry.*, otlp_*, feedback.remediation) go to the hub,
    where the engine runs; the hub's decision topics go to every region. Topic names stay the
    same (Kafka's IdentityReplicationPolicy), so the worker needs no per-region settings.
    MirrorMaker's jars are fetched from Maven Central with mvn into
    ~/.cache/paas-autopilot/kafka, once.

    \b
        autopilot kafka start --name us-east
        autopilot kafka start --name eu-west
        autopilot kafka start --name global
        autopilot mirror start --hub global --region us-east --region eu-west
    """


@mirror.command()
@click.option("--hub", required=True, help="The cluster the engine reads, e.g. global.")
@click.option(
    "--region", "regions", multiple=True, required=True, help="A regional cluster; repeat."
)
@click.option(
    "--cluster",
    "addresses",
    multiple=True,
    metavar="NAME=HOST:PORT",
    help="Where a cluster is, when it is not a local one started with `kafka start --name`.",
)
@click.option(
    "--standby",
    default=None,
    help="A cluster in another region that keeps a copy of the hub's engine: its topics, "
    "table changelogs and translated consumer offsets, to take over if the hub is lost.",
)
@click.option(
    "--replication-factor",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Of the topics MirrorMaker creates: 1 for local clusters, 3 for most others.",
)
@_data_dir
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for start.")
def start(
    hub: str,
    regions: tuple[str, ...],
    addresses: tuple[str, ...],
    standby: str | None,
    replication_factor: int,
    data_dir,
    timeout: float,
) -> None:
    """Start MirrorMaker; return once every flow copies.

    \b
    Taking over when the hub's region is lost, with the standby `standby`:
        autopilot mirror stop
        autopilot mirror start --hub standby --region us-east --region eu-west
        AUTOPILOT_BROKER=kafka://<standby> autopilot worker
    """
    # The deployment's topic prefix, from the same env var as the worker's.
    from streams.runtime.app import settings

    given = {}
    for text in addresses:
        alias, sep, bootstrap = text.partition("=")
        if not sep or ":" not in bootstrap:
            raise click.BadParameter(f"{text!r} is not NAME=HOST:PORT", param_hint="--cluster")
        given[alias] = bootstrap
    topics = TopicNames(settings.topic_prefix)
    try:
        flows = hub_flows(regions, hub, topics)
        if standby is not None:
            flows.append(standby_flow(hub, standby, regions, topics, settings.app_id))
    except KafkaLocalError as exc:
        raise click.UsageError(str(exc)) from None
    names = (hub, *regions, *([standby] if standby else []))
    clusters = {alias: _bootstrap(alias, given) for alias in names}
    maker = _mirror(data_dir, clusters, flows, replication_factor)
    if (pid := maker.pid()) is not None:
        click.echo(f"MirrorMaker is already running (pid {pid}); stop it to change its flows")
        return
    try:
        maker.start(timeout_s=timeout)
    except KafkaLocalError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(maker.status())


@mirror.command()
@_data_dir
def stop(data_dir) -> None:
    """Stop the MirrorMaker started by ``autopilot mirror start``."""
    if not _mirror(data_dir).stop():
        click.echo("MirrorMaker is not running; nothing to stop")


@mirror.command()
@_data_dir
def status(data_dir) -> None:
    """Say whether MirrorMaker runs and what it copies; exit code 3 when it does not run."""
    maker = _mirror(data_dir)
    click.echo(maker.status())
    if maker.pid() is None:
        raise SystemExit(3)
