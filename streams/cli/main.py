"""The ``autopilot`` command: Faust's own CLI for the app, plus the project's verbs.

``autopilot worker -l info`` is the Faust worker as Faust users know it. Verbs
that need the running app (``simulate``, ``score``...) are ``@app.command``
commands, one module per verb in :mod:`streams.cli`; verb groups that must work without a
broker (``kafka start|stop|status``, ``bench ...``, ``plugins list|check``) are click
groups added to Faust's root command.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Any

import click

__all__ = ["main"]


def _checking_broker_access(run_worker: Callable[..., Any]) -> Callable[..., Any]:
    """``run_worker``, after a check that the broker accepts the worker's TLS and credentials.

    A broker that refuses them ends the command with one line and exit code 2,
    like a configuration error, instead of Faust's traceback.
    """

    @functools.wraps(run_worker)
    def checked(*args: Any, **kwargs: Any) -> Any:
        from streams.runtime.app import settings
        from streams.runtime.broker_check import BrokerRefused, check_broker_access

        if settings.security_protocol != "PLAINTEXT":
            # Not asyncio.run: it would leave the thread without the current event
            # loop that Faust's worker asks for.
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(check_broker_access(settings))
            except BrokerRefused as exc:
                click.echo(f"autopilot: cannot connect to the broker: {exc}", err=True)
                sys.exit(2)
            finally:
                loop.close()
        return run_worker(*args, **kwargs)

    return checked


def main() -> None:
    """Entry point of the ``autopilot`` console script."""
    from schemas.config.toml import ConfigError
    from streams.runtime.settings import SettingsError

    try:
        # Importing the agents reads their config files (regions, actuator mapping).
        import agents.all  # noqa: F401  (registers the agents and the /metrics view)
        from streams.runtime.app import app, settings
    except (SettingsError, ConfigError) as exc:
        click.echo(f"autopilot: configuration error: {exc}", err=True)
        sys.exit(2)

    from faust.cli.faust import cli

    # @app.command verbs register themselves when imported; click groups are added below.
    from streams.cli import (  # noqa: F401
        bench_latency,
        bench_mirror,
        bench_scaleout,
        bench_soak,
        bench_throughput,
        outcomes,
        simulate,
        tail,
    )
    from streams.cli.approve import approve, reject
    from streams.cli.bench import bench
    from streams.cli.compliance import audit, erase, report
    from streams.cli.kafka import kafka
    from streams.cli.mirror import mirror
    from streams.cli.native import native
    from streams.cli.otelcol import otelcol
    from streams.cli.plugins import plugins
    from streams.cli.score import score
    from streams.cli.up import up

    # Faust creates only the last level of its data dir.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cli.add_command(kafka)
    cli.add_command(mirror)
    cli.add_command(native)
    cli.add_command(otelcol)
    cli.add_command(bench)
    cli.add_command(up)
    cli.add_command(score)
    cli.add_command(approve)
    cli.add_command(reject)
    cli.add_command(audit)
    cli.add_command(erase)
    cli.add_command(report)
    cli.add_command(plugins)
    worker = cli.commands["worker"]
    worker.callback = _checking_broker_access(worker.callback)
    app.main()
