"""Plugins registered from the environment: entry points, and ``AUTOPILOT_PLUGIN_MODULES``."""

from __future__ import annotations

import os
from collections.abc import Mapping

from models import registry

__all__ = ["ENV_MODULES", "load_plugins", "plugin_modules"]

ENV_MODULES = "AUTOPILOT_PLUGIN_MODULES"


def plugin_modules(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The modules named in ``AUTOPILOT_PLUGIN_MODULES``, separated by commas or spaces.

    >>> plugin_modules({"AUTOPILOT_PLUGIN_MODULES": "team.detectors, other"})
    ['team.detectors', 'other']
    >>> plugin_modules({})
    []
    """
    return environ.get(ENV_MODULES, "").replace(",", " ").split()


def load_plugins(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Register every plugin (:func:`models.registry.load_plugins`); what was refused,
    ``"group/name"`` to a one-line reason."""
    return registry.load_plugins(plugin_modules(environ))
