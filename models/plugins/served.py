"""What every group of plugins served beside a built-in shares: the bindings, the guard and
the registry they are served from, and how a served plugin is checkpointed.

A plugin is checkpointed with its series as its binding, the values it has learned and
its pickle (base64): River estimators have no JSON state. The checkpoint table is internal
to the product, written and read only by its workers; a checkpoint of a plugin no longer
bound as it was is dropped by the caller.

Examples
--------
>>> from schemas.config.plugins import Binding
>>> saved = checkpoint(Binding("detectors", "x", service="api"), 3, [1.0, 2.0])
>>> binding, learned, model = restored(saved)
>>> binding.plugin, learned, model
('x', 3, [1.0, 2.0])
"""

from __future__ import annotations

import base64
import math
import pickle
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from models.plugins.guard import PluginGuard
from schemas.config.plugins import Binding, PluginBindings

if TYPE_CHECKING:
    from models.registry import Entry

__all__ = ["ServedPlugins", "budget", "checkpoint", "restored"]


def budget(entry: Entry, learned: int) -> float:
    """The CPU seconds a call to a served model may take: ``entry.max_seconds_per_call``,
    or no limit for a model that has learned nothing yet, whose first call may build it
    (River's Half-Space Trees are built at the first value: 5 to 7 ms, against 40 to
    150 µs a value after that)."""
    return math.inf if learned == 0 else entry.max_seconds_per_call


def checkpoint(binding: Binding, learned: int, model: Any) -> dict[str, Any]:
    """A served plugin, JSON-friendly, for its series' checkpoint."""
    return {
        "binding": binding.to_dict(),
        "learned": learned,
        "pickle": base64.b64encode(pickle.dumps(model)).decode("ascii"),
    }


def restored(saved: Mapping[str, Any]) -> tuple[Binding, int, Any]:
    """The binding, values learned and model of a :func:`checkpoint`."""
    # The pickle comes from this product's own checkpoint table (see the docstring).
    model = pickle.loads(base64.b64decode(saved["pickle"]))
    return Binding.from_dict(saved["binding"]), saved["learned"], model


class ServedPlugins:
    """What a brain needs to serve one group's plugins: bindings, registry and a guard.

    Parameters
    ----------
    bindings
        The bindings in force; the worker changes them at run time (control records).
    guard
        Runs and counts the plugins' calls.
    entry_of
        ``(group, name) -> Entry`` of the registry (:func:`models.registry.entry`), raising
        ``LookupError`` for an unknown name.
    """

    def __init__(
        self,
        bindings: PluginBindings,
        guard: PluginGuard,
        entry_of: Callable[[str, str], Entry],
    ) -> None:
        self.bindings = bindings
        self.guard = guard
        self.entry_of = entry_of
