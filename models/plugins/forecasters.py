"""Plugin forecasters serving the scaler of a service beside the built-in one.

When a forecaster plugin is bound to a service (:mod:`schemas.config.plugins`, scope: the
service), the metrics brain gives each of its series' predictive policies a
:class:`BoundForecaster` in place of the built-in :class:`~models.forecast.load.LoadForecaster`.
The built-in keeps learning every value, so that it can forecast at once whenever the plugin
fails, while the plugin warms up after a swap, and after the plugin is unbound or
quarantined. Calls go through a :class:`~models.plugins.guard.PluginGuard`, each with the
entry's ``max_seconds_per_call``. A forecast from a plugin that is not finite, or whose
interval does not hold its mean, counts as a failure.

**Hand-over.** A forecaster bound to a service, or swapped for another, learns the values
that arrive from then on; the built-in forecasts until the plugin has learned its
``warmup`` values (:attr:`models.registry.Entry.warmup`). A binding that changes is picked
up at the series' next sample; a series whose service no binding serves runs the built-in
itself, unwrapped, so its forecasts and checkpoints are exactly those of a brain without
plugins.

**State.** The plugin is checkpointed with its series as its pickle (base64), as plugin
detectors are (:mod:`models.plugins.detectors`); a checkpoint of a plugin no longer bound to
the service is dropped.

**Memory** per series served: the plugin's declared ``max_bytes_per_key`` and 200 bytes.

Examples
--------
>>> from models.forecast.load import LoadForecaster
>>> from models.plugins.guard import PluginGuard
>>> from models.registry import entry
>>> from schemas.config.plugins import Binding, PluginBindings
>>> bindings = PluginBindings()
>>> plugins = ForecasterPlugins(bindings, PluginGuard(), entry)
>>> builtin = LoadForecaster()
>>> plugins.serve(builtin, "api") is builtin
True
>>> bindings.apply(Binding("forecasters", "load", service="api"))
>>> served = plugins.serve(builtin, "api")
>>> served.builtin is builtin, served.name
(True, 'load')
>>> for i in range(30):
...     served.update(1_700_000_000 + 10 * i, 100.0)
>>> round(served.forecast_at(1_700_000_290, 180.0).mean), served.served_by
(100, 'load')
>>> bindings.apply(Binding("forecasters", None, service="api"))
>>> plugins.serve(served, "api") is builtin
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from models.forecast.load import Forecast, LoadForecaster
from models.plugins.guard import PluginGuard
from models.plugins.served import ServedPlugins, budget, checkpoint, restored
from schemas.config.plugins import Binding

if TYPE_CHECKING:
    from models.base import Forecaster
    from models.registry import Entry

__all__ = ["BoundForecaster", "ForecasterPlugins"]


def _checked_forecast(
    model: Any, ts_now: float, horizon_s: float, interval: float | None
) -> Forecast:
    fc = model.forecast_at(ts_now, horizon_s, interval)
    mean, lower, upper = float(fc.mean), float(fc.lower), float(fc.upper)
    # The scaler sizes for the upper bound and tells bursts by the band: a NaN or an
    # inverted interval would size for nonsense rather than fail.
    if not (math.isfinite(lower) and math.isfinite(upper) and lower <= mean <= upper):
        raise ValueError(f"forecast_at returned mean {mean}, interval [{lower}, {upper}]")
    return Forecast(mean, lower, upper, float(horizon_s))


class BoundForecaster:
    """A plugin forecaster beside the built-in one, for one series: the policy's forecaster.

    ``update`` feeds both; ``forecast_at`` gives the plugin's forecast when it is warm,
    healthy and not quarantined, else the built-in's. :attr:`served_by` names the plugin
    when the last forecast at the default interval (the one the scaler sizes for) was the
    plugin's, and is ``None`` when it was the built-in's.
    """

    __slots__ = ("binding", "builtin", "entry", "guard", "healthy", "learned", "model", "served_by")

    def __init__(
        self,
        builtin: LoadForecaster,
        binding: Binding,
        entry: Entry,
        model: Any,
        guard: PluginGuard,
        learned: int = 0,
    ) -> None:
        self.builtin = builtin
        self.binding = binding
        self.entry = entry
        self.model = model
        self.guard = guard
        self.learned = learned
        # Whether the plugin learned the latest value: one it missed would leave it a step
        # behind, so it does not forecast until it learns again.
        self.healthy = True
        self.served_by: str | None = None

    @property
    def name(self) -> str:
        """The plugin's registered name."""
        return self.entry.name

    def update(self, ts: float, y: float) -> None:
        """Learn ``y`` at ``ts``: the built-in always, the plugin through the guard."""
        self.builtin.update(ts, y)
        ok, _ = self.guard.call(
            self.entry.name, budget(self.entry, self.learned), self.model.update, ts, y
        )
        self.healthy = ok
        if ok:
            self.learned += 1

    def forecast_at(
        self, ts_now: float, horizon_s: float, interval: float | None = None
    ) -> Forecast:
        """The plugin's forecast if it may serve and gives a sound one, else the built-in's."""
        entry = self.entry
        if self.healthy and self.learned > entry.warmup:
            ok, fc = self.guard.call(
                entry.name, entry.max_seconds_per_call, _checked_forecast, self.model,
                ts_now, horizon_s, interval,
            )  # fmt: skip
            if ok:
                if interval is None:
                    self.served_by = entry.name
                return fc
        if interval is None:
            self.served_by = None
        return self.builtin.forecast_at(ts_now, horizon_s, interval)

    def to_state(self) -> dict[str, Any]:
        """The built-in's state: the plugin's is checkpointed apart (:meth:`plugin_state`)."""
        return self.builtin.to_state()

    def plugin_state(self) -> dict[str, Any]:
        """The plugin, JSON-friendly, for the series' checkpoint."""
        return checkpoint(self.binding, self.learned, self.model)


class ForecasterPlugins(ServedPlugins):
    """What a brain needs to let plugins forecast (see :class:`ServedPlugins`)."""

    def serve(self, current: Forecaster, service: str) -> Forecaster:
        """The forecaster a series of ``service`` should run, given the one it runs.

        ``current`` is the built-in or a :class:`BoundForecaster`; a plugin is created,
        kept, swapped or dropped as the bindings say. A plugin whose factory fails is not
        bound (the guard counts it) and the built-in serves.
        """
        builtin = current.builtin if isinstance(current, BoundForecaster) else current
        assert isinstance(builtin, LoadForecaster)
        binding = self.bindings.for_series("forecasters", service) if len(self.bindings) else None
        if binding is None:
            return builtin
        if isinstance(current, BoundForecaster) and current.binding == binding:
            return current
        name = binding.plugin
        assert name is not None  # a binding in force names its plugin
        try:
            entry = self.entry_of("forecasters", name)
        except LookupError:
            return builtin
        ok, model = self.guard.call(name, math.inf, lambda: entry.factory(**binding.config))
        if not ok:
            return builtin
        return BoundForecaster(builtin, binding, entry, model, self.guard)

    def restore(
        self, builtin: LoadForecaster, service: str, state: Mapping[str, Any]
    ) -> Forecaster:
        """``builtin`` with the checkpointed plugin beside it if it is still bound to
        ``service``; else ``builtin`` alone."""
        binding, learned, model = restored(state)
        if self.bindings.for_series("forecasters", service) != binding:
            return builtin
        assert binding.plugin is not None
        try:
            entry = self.entry_of("forecasters", binding.plugin)
        except LookupError:
            return builtin
        return BoundForecaster(builtin, binding, entry, model, self.guard, learned)
