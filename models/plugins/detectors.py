"""Plugin detectors serving the metrics of a series beside the built-in one.

For each metric bound to a detector plugin (:mod:`schemas.config.plugins`), the metrics brain
keeps a :class:`BoundDetector` next to its built-in :class:`~models.detect.anomaly.SeriesDetector`.
The built-in keeps learning every value, so that it can decide at once for any value the
plugin fails on, while the plugin warms up after a swap, and after the plugin is unbound or
quarantined. Calls go through a :class:`~models.plugins.guard.PluginGuard`.

A plugin's decision keeps the built-in's evidence of what was expected (its expectation and
spread: a River detector gives a score only) and names the plugin.

**Hand-over.** A detector bound to a metric, or swapped for another, learns the values that
arrive from then on; the built-in keeps deciding until the plugin has learned its
``warmup`` values (:attr:`models.registry.Entry.warmup`), so a swap leaves no gap in the
decisions and no cold detector decides.

**State.** A plugin detector is checkpointed with its series as its pickle (base64): River
estimators have no JSON state. The checkpoint table is internal to the product, written and
read only by its workers. A checkpoint of a plugin no longer bound to the metric is dropped.

**Memory** per metric bound: the plugin's declared ``max_bytes_per_key`` and 100 bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from models.detect.anomaly import AnomalyScore
from models.plugins.served import ServedPlugins, budget, checkpoint, restored
from schemas.config.plugins import Binding

__all__ = ["BoundDetector", "DetectorPlugins"]

PLUGIN_KIND = "plugin"
"""``anomaly_kind`` of an anomaly found by a plugin (the plugin is named in the evidence)."""


class BoundDetector:
    """One plugin detector of one metric, and the values it has learned."""

    __slots__ = ("binding", "learned", "model")

    def __init__(self, binding: Binding, model: Any, learned: int = 0) -> None:
        self.binding = binding
        self.model = model
        self.learned = learned


def _score_and_learn(model: Any, x: dict[str, float]) -> float:
    score = float(model.score_one(x))
    if not math.isfinite(score):
        raise ValueError(f"score_one returned {score}")
    model.learn_one(x)
    return score


class DetectorPlugins(ServedPlugins):
    """What a brain needs to let plugins detect (see :class:`ServedPlugins`)."""

    def serves(self, service: str) -> bool:
        """Whether a detector plugin may serve some metric of ``service``."""
        return len(self.bindings) > 0 and self.bindings.serves("detectors", service)

    def score(
        self,
        bound: dict[str, BoundDetector],
        service: str,
        metric: str,
        ts: float,
        value: float,
        builtin: AnomalyScore,
    ) -> tuple[AnomalyScore, str | None]:
        """The result for one value: the plugin's, with the name of the plugin, when one is
        bound to the metric, warm and healthy; else ``builtin``'s, with ``None``.

        ``bound`` holds the series' plugin detectors by metric; one is created, swapped or
        dropped here as the bindings say.
        """
        binding = self.bindings.for_series("detectors", service, metric)
        slot = bound.get(metric)
        if binding is None:
            if slot is not None:
                del bound[metric]
            return builtin, None
        name = binding.plugin
        assert name is not None  # a binding in force names its plugin
        try:
            entry = self.entry_of("detectors", name)
        except LookupError:
            return builtin, None
        if slot is None or slot.binding != binding:
            ok, model = self.guard.call(name, math.inf, lambda: entry.factory(**binding.config))
            if not ok:
                return builtin, None
            slot = bound[metric] = BoundDetector(binding, model)
        ok, score = self.guard.call(
            name, budget(entry, slot.learned), _score_and_learn, slot.model,
            entry.features(ts, value),
        )  # fmt: skip
        if not ok:
            return builtin, None
        slot.learned += 1
        if slot.learned <= entry.warmup:
            return builtin, None
        result = AnomalyScore(
            score=score,
            is_anomaly=score >= entry.threshold,
            kind=PLUGIN_KIND,
            expected=builtin.expected,
            deviation=builtin.deviation,
            spread=builtin.spread,
            threshold=entry.threshold,
            warming_up=False,
        )
        return result, name

    @staticmethod
    def state_of(bound: Mapping[str, BoundDetector]) -> dict[str, Any]:
        """The series' plugin detectors, JSON-friendly, for its checkpoint."""
        return {
            metric: checkpoint(slot.binding, slot.learned, slot.model)
            for metric, slot in bound.items()
        }

    def restore(self, service: str, state: Mapping[str, Any]) -> dict[str, BoundDetector]:
        """The plugin detectors of a checkpoint that are still bound to their metric."""
        bound = {}
        for metric, saved in state.items():
            binding, learned, model = restored(saved)
            if self.bindings.for_series("detectors", service, metric) != binding:
                continue
            bound[metric] = BoundDetector(binding, model, learned)
        return bound
