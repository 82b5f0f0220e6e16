"""``--detector NAME``: any registered anomaly detector, the built-in or a plugin's.

Plugins are loaded as the worker loads them: the ``paas_autopilot.detectors`` entry points
of installed packages, and the modules named in ``AUTOPILOT_PLUGIN_MODULES``
(comma-separated).
"""

from __future__ import annotations

import sys

import click

from models import registry
from models.registry import Entry
from streams.plugins.loading import load_plugins

__all__ = ["detector_option", "load_detector_plugins", "resolve_detector"]

detector_option = click.option(
    "--detector",
    "detector_name",
    default="series",
    show_default=True,
    help="Registered detector: the built-in `series` or a plugin's name (plugins from "
    "entry points and AUTOPILOT_PLUGIN_MODULES).",
)


def load_detector_plugins() -> dict[str, str]:
    """Register the plugins; say on stderr, one line each, which were refused and why."""
    refused = load_plugins()
    for where, reason in refused.items():
        click.echo(f"autopilot: plugin {where} refused: {reason}", err=True)
    return refused


def resolve_detector(name: str) -> Entry:
    """The registered detector ``name``, plugins loaded; an unknown name ends the command
    with one line listing the registered names, exit code 2."""
    load_detector_plugins()
    known = registry.names("detectors")
    if name not in known:
        click.echo(
            f"autopilot: unknown detector {name!r}; registered: {', '.join(known)}", err=True
        )
        sys.exit(2)
    return registry.entry("detectors", name)
