"""The worker's plugins: registered at start-up, admitted, bound to their scopes, guarded.

At import (the worker's start), :data:`plugins` registers the plugins of the installed
``paas_autopilot.*`` entry points and of ``AUTOPILOT_PLUGIN_MODULES``, then applies the
bindings of ``AUTOPILOT_PLUGINS_FILE``. Each bound plugin must pass admission first
(:mod:`streams.plugins.admission`: a static scan, then the conformance suite); a plugin
refused, unknown or broken is logged in one line and the built-in serves its scope.
Control records (:mod:`agents.plugins`) change the bindings at run time through
:meth:`PluginRuntime.bind`, with the same checks.
"""

from __future__ import annotations

import logging

from models import registry
from models.plugins.detectors import DetectorPlugins
from models.plugins.forecasters import ForecasterPlugins
from models.plugins.guard import PluginGuard
from models.plugins.policies import PolicyPlugins
from schemas.config.plugins import Binding, PluginBindings, load_plugin_bindings
from streams.plugins.admission import admit
from streams.runtime.app import settings
from streams.runtime.settings import Settings

__all__ = ["PluginRuntime", "plugins"]

log = logging.getLogger(__name__)


class PluginRuntime:
    """The registered plugins, the bindings in force and the guard of their calls."""

    def __init__(self, settings: Settings) -> None:
        self.refused: dict[str, str] = registry.load_plugins(settings.plugin_modules)
        """``group/name`` of each plugin refused, to the reason why (one line)."""
        for where, reason in sorted(self.refused.items()):
            log.warning("plugin %s refused: %s", where, reason)
        self.bindings = PluginBindings()
        self.guard = PluginGuard(settings.plugin_max_failures, on_quarantine=self._quarantined)
        self.detectors = DetectorPlugins(self.bindings, self.guard, registry.entry)
        self.forecasters = ForecasterPlugins(self.bindings, self.guard, registry.entry)
        self.policies = PolicyPlugins(self.bindings, self.guard, registry.entry)
        if settings.plugins_path is not None:
            for binding in load_plugin_bindings(settings.plugins_path):
                self.bind(binding, source=str(settings.plugins_path))

    def admit(self, group: str, name: str) -> str | None:
        """Why ``name`` of ``group`` may not serve (one line), or ``None`` if it may."""
        where = f"{group}/{name}"
        if where in self.refused:
            return self.refused[where]
        try:
            entry = registry.entry(group, name)
        except registry.RegistryError as exc:
            return str(exc)
        verdict = admit(entry)
        if not verdict.ok:
            # Refused once, refused for good in this process: its code does not change.
            self.refused[where] = verdict.reason
            return verdict.reason
        log.info("plugin %s %s", where, verdict.reason)
        return None

    def bind(self, binding: Binding, source: str) -> str | None:
        """Put ``binding`` in force unless its plugin is refused; returns why it was not."""
        if binding.plugin is not None:
            reason = self.admit(binding.group, binding.plugin)
            if reason is not None:
                log.warning(
                    "plugin %s/%s not bound to %s (from %s): %s; the built-in serves it",
                    binding.group, binding.plugin, binding.scope, source, reason,
                )  # fmt: skip
                return reason
            # Bound again by an operator: a quarantine is lifted.
            self.guard.release(binding.plugin)
        self.bindings.apply(binding)
        log.warning(
            "plugins: %s %s now served by %s (from %s)",
            binding.group, binding.scope, binding.plugin or "the built-in", source,
        )  # fmt: skip
        return None

    @staticmethod
    def _quarantined(name: str, error: str) -> None:
        log.error(
            "plugin %s quarantined after repeated failures (last: %s); the built-in serves "
            "its scopes until it is bound again",
            name, error,
        )  # fmt: skip

    def view(self) -> dict:
        """What ``GET /plugins/`` shows."""
        return {
            "registered": {
                group: [
                    {"name": n, "builtin": registry.entry(group, n).builtin}
                    for n in registry.names(group)
                ]
                for group in registry.PLUGIN_GROUPS
            },
            "refused": dict(self.refused),
            "bindings": [b.to_dict() for b in self.bindings],
            "calls": {name: stats.to_dict() for name, stats in self.guard.stats.items()},
        }


plugins = PluginRuntime(settings)
