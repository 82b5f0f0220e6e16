"""``--detector NAME``: any registered anomaly detector, the built-in or a plugin's.

Plugins are loaded as the worker loads them: the ``paas_autopilot.detectors`` entry points
of installed packages, and the modules named in ``AUTOPILOT_PLUGIN_MODULES``
(comma-separated).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import click

from models import registry
from models.registry import Entry

__all__ = ["detector_option", "load_detector_plugins", "plugin_modules", "resolve_detector"]

detector_option = click.option(
    "--detector",
    "detector_name",
    default="series",
    show_default=True,
    help="Registered detector: the built-in `series` or a plugin's name (plugins from "
    "entry points and AUTOPILOT_PLUGIN_MODULES).",
)


def plugin_modules(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The modules named in ``AUTOPILOT_PLUGIN_MODULES``, blanks dropped.

    >>> plugin_modules({"AUTOPILOT_PLUGIN_MODULES": " team.hst, ,team.other "})
    ['team.hst', 'team.other']
    >>> plugin_modules({})
    []
    """
    raw = environ.get("AUTOPILOT_PLUGIN_MODULES", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def load_detector_plugins() -> dict[str, str]:
    """Register the plugins; say on stderr, one line each, which were refused and why."""
    refused = registry.load_plugins(plugin_modules())
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
