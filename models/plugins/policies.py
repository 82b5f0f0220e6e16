"""Scaling policies bound to a service, deciding beside the built-in predictive policy.

A ``policies`` binding (:mod:`schemas.config.plugins`, scope: the service) names a
registered :class:`~models.base.ScalingPolicy`: the built-ins ``predictive`` and ``hpa``
(e.g. the HPA for a batch service, or the predictive policy with another target
utilisation) or a plugin's. Its ``config`` is keyword configuration of the entry's
factory, over the brain's own (``target_utilisation``, ``startup_delay_s``,
``min_replicas``, ``max_replicas``: every registered factory takes them), so that
``config = { target_utilisation = 0.7 }`` is all a binding needs.

The series' built-in predictive policy keeps deciding every sample: its decision serves
whenever the bound policy fails (raises, or overruns its time budget: the guard counts it
and, after repeated failures, quarantines it), while it warms up (``warmup`` samples of
:attr:`models.registry.Entry.warmup`) and after it is unbound, and the built-in's own
checkpoint stays as it was. A binding that changes is picked up at the series' next sample.

**State.** The bound policy is checkpointed with its series as its pickle (base64), as
plugin detectors and forecasters are; a checkpoint of a policy no longer bound to the
service is dropped.

**Memory** per series served: the entry's declared ``max_bytes_per_key`` and 200 bytes.

Examples
--------
>>> from models.plugins.guard import PluginGuard
>>> from models.registry import entry
>>> from schemas.config.plugins import Binding, PluginBindings
>>> bindings = PluginBindings()
>>> bindings.apply(Binding("policies", "hpa", service="batch"))
>>> plugins = PolicyPlugins(bindings, PluginGuard(), entry)
>>> defaults = {"target_utilisation": 0.6}
>>> bound = plugins.bound(None, "batch", defaults)
>>> bound.name, plugins.bound(bound, "batch", defaults) is bound
('hpa', True)
>>> plugins.bound(bound, "api", defaults) is None
True
>>> rec, name = plugins.decide(bound, 0.0, 400.0, 4, 0.9, builtin=None)
>>> rec.desired_replicas, name
(6, 'hpa')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from models.plugins.served import ServedPlugins, budget, checkpoint, restored
from models.policy.scaling import ScalingRecommendation
from schemas.config.plugins import Binding

if TYPE_CHECKING:
    from models.registry import Entry

__all__ = ["BoundPolicy", "PolicyPlugins"]


class BoundPolicy:
    """One bound scaling policy of one series, and the samples it has decided on."""

    __slots__ = ("binding", "entry", "learned", "model")

    def __init__(self, binding: Binding, entry: Entry, model: Any, learned: int = 0) -> None:
        self.binding = binding
        self.entry = entry
        self.model = model
        self.learned = learned

    @property
    def name(self) -> str:
        """The policy's registered name."""
        return self.entry.name

    def state(self) -> dict[str, Any]:
        """The policy, JSON-friendly, for the series' checkpoint."""
        return checkpoint(self.binding, self.learned, self.model)


class PolicyPlugins(ServedPlugins):
    """What a brain needs to let bound policies scale (see :class:`ServedPlugins`)."""

    def bound(
        self, current: BoundPolicy | None, service: str, defaults: Mapping[str, Any]
    ) -> BoundPolicy | None:
        """The policy that should decide for a series of ``service``, given the one that
        does: ``current`` kept, a new one built (through the guard) with ``defaults`` (the
        brain's keyword configuration) under its binding's ``config``, or ``None``."""
        binding = self.bindings.for_series("policies", service) if len(self.bindings) else None
        if binding is None:
            return None
        if current is not None and current.binding == binding:
            return current
        name = binding.plugin
        assert name is not None  # a binding in force names its plugin
        try:
            entry = self.entry_of("policies", name)
        except LookupError:
            return None
        config = {**defaults, **binding.config}
        ok, model = self.guard.call(name, math.inf, lambda: entry.factory(**config))
        return BoundPolicy(binding, entry, model) if ok else None

    def decide(
        self,
        bound: BoundPolicy,
        ts: float,
        rps: float,
        current: int,
        cpu_util: float,
        builtin: ScalingRecommendation | None,
    ) -> tuple[ScalingRecommendation | None, str | None]:
        """The bound policy's recommendation for one sample, with its name; ``builtin``
        (the built-in's), with ``None``, if it failed or is still warming up."""
        entry = bound.entry
        ok, rec = self.guard.call(
            entry.name, budget(entry, bound.learned), _decide, bound.model, ts, rps, current,
            cpu_util,
        )  # fmt: skip
        if not ok:
            return builtin, None
        bound.learned += 1
        if bound.learned <= entry.warmup:
            return builtin, None
        return rec, entry.name

    def restore(self, service: str, state: Mapping[str, Any]) -> BoundPolicy | None:
        """The checkpointed policy if it is still bound to ``service``, else ``None``."""
        binding, learned, model = restored(state)
        if self.bindings.for_series("policies", service) != binding:
            return None
        assert binding.plugin is not None
        try:
            entry = self.entry_of("policies", binding.plugin)
        except LookupError:
            return None
        return BoundPolicy(binding, entry, model, learned)


def _decide(
    model: Any, ts: float, rps: float, current: int, cpu_util: float
) -> ScalingRecommendation | None:
    # The brain sees the replicas the platform runs as both ready and requested.
    model.decide(ts, rps, current, current, cpu_util)
    rec = model.last_recommendation
    # It is published as evidence: a policy giving anything else fails as one raising does.
    if rec is not None and not isinstance(rec, ScalingRecommendation):
        raise TypeError(f"last_recommendation is a {type(rec).__name__}, not a recommendation")
    return rec
