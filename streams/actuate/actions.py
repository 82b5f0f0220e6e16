"""Action plugins at work: a decision handed to every action bound to its kind.

The plugins file (``AUTOPILOT_PLUGINS_FILE``, :mod:`schemas.config.plugins`) and the
control records (``autopilot plugins bind actions ...``) bind action plugins
(:mod:`models.registry`, group ``actions``) to decision kinds. :class:`ActionRunner`
builds each bound action at its first call, then calls its blocking ``apply`` in a thread
pool of its own, so that a slow plugin neither blocks the event loop nor takes the threads the
actuator's AWS calls run in. A call that outlives its entry's ``max_seconds_per_call``,
raises, or returns anything but an :class:`~models.base.ActionResult` is a failed result:
a plugin never takes the agent down (:mod:`agents.actions`).

Examples
--------
>>> import asyncio
>>> from schemas.config.plugins import PluginBindings
>>> bindings = PluginBindings.from_dict({"actions": [{"plugin": "nowhere", "kind": "scaling"}]})
>>> runner = ActionRunner(bindings)
>>> runner.plugins
['nowhere']
>>> [(plugin, result)] = asyncio.run(runner.call({"kind": "scaling"}, "scaling"))
>>> plugin, result.ok, result.detail[:40]
('nowhere', False, "cannot build: no actions named 'nowhere'")
>>> asyncio.run(runner.call({"kind": "failover"}, "failover"))
[]
>>> runner.close()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from models import registry
from models.base import Action, ActionResult
from schemas.config.plugins import Binding, PluginBindings

__all__ = ["ActionRunner"]

log = logging.getLogger(__name__)

MAX_DETAIL = 200
"""Characters of a result's detail kept: one line of the audit record."""


@dataclass(frozen=True, slots=True)
class _Bound:
    """One binding of the plugins file, built: the action, or why it could not be."""

    plugin: str
    action: Action | None
    error: str
    timeout_s: float


class ActionRunner:
    """The actions of ``bindings``, each built at its first call, and their calls.

    Parameters
    ----------
    bindings
        The bindings in force, which control records change at run time; only those of
        the ``actions`` group are used. A binding changed is built anew.
    max_workers
        Threads for the calls. A call that timed out keeps its thread until it returns, so
        this also bounds how many hung calls the worker carries.
    """

    def __init__(self, bindings: PluginBindings, *, max_workers: int = 4) -> None:
        self._bindings = bindings
        self._bound: dict[str, tuple[Binding, _Bound]] = {}
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="action")

    @property
    def plugins(self) -> list[str]:
        """The bound plugins' names, sorted: the label values the worker counts calls by."""
        return sorted({b.plugin for b in self._bindings if b.group == "actions" and b.plugin})

    def serves(self, kind: str) -> bool:
        """Whether any action is bound to decisions of ``kind``.

        >>> ActionRunner(PluginBindings()).serves("scaling")
        False
        """
        return bool(self._bindings.for_kind(kind))

    def _bound_for(self, binding: Binding) -> _Bound:
        built = self._bound.get(binding.scope)
        if built is None or built[0] != binding:
            assert binding.plugin is not None  # a binding in force names its plugin
            built = self._bound[binding.scope] = (
                binding, self._build(binding.plugin, binding.config)
            )  # fmt: skip
        return built[1]

    @staticmethod
    def _build(plugin: str, config: Mapping[str, Any]) -> _Bound:
        try:
            entry = registry.entry("actions", plugin)
        except registry.RegistryError as exc:
            return _Bound(plugin, None, f"cannot build: {exc}", 0.0)
        try:
            action = entry.factory(**config)
        except Exception as exc:  # a plugin's factory can raise anything
            # Only the type: the message may quote the configuration (a URL with a token).
            log.error("action plugin %s: cannot build it: %s", plugin, type(exc).__name__)
            return _Bound(plugin, None, f"cannot build: {type(exc).__name__}", 0.0)
        return _Bound(plugin, action, "", entry.max_seconds_per_call)

    async def call(self, decision: Mapping[str, Any], kind: str) -> list[tuple[str, ActionResult]]:
        """Hand ``decision`` to every action bound to ``kind``, concurrently.

        Returns each plugin's name and result, in binding order (the kind's, then any
        kind's); never raises for what a plugin does.
        """
        bound = [self._bound_for(b) for b in self._bindings.for_kind(kind)]
        results = await asyncio.gather(*(self._call_one(one, decision) for one in bound))
        return [(one.plugin, result) for one, result in zip(bound, results, strict=True)]

    async def _call_one(self, bound: _Bound, decision: Mapping[str, Any]) -> ActionResult:
        if bound.action is None:
            return ActionResult(False, bound.error)
        loop = asyncio.get_running_loop()
        try:
            result = await asyncio.wait_for(
                loop.run_in_executor(self._executor, bound.action.apply, decision),
                bound.timeout_s,
            )
        except TimeoutError:
            return ActionResult(False, f"no result within {bound.timeout_s:g} s")
        except Exception as exc:  # a plugin's apply can raise anything
            log.warning("action plugin %s raised %s", bound.plugin, type(exc).__name__)
            return ActionResult(False, f"raised {type(exc).__name__}")
        if not isinstance(result, ActionResult):
            return ActionResult(False, f"returned a {type(result).__name__}, not an ActionResult")
        return ActionResult(result.ok, " ".join(str(result.detail).split())[:MAX_DETAIL])

    def close(self) -> None:
        """Stop taking calls; calls still running finish in their threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
