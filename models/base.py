"""The protocols of the brain: the same verbs for every learner, policy and brain.

Learners follow River's verbs: ``learn_one`` updates, ``score_one`` and ``forecast`` read
without learning. The per-series detector and forecaster are River estimators whose
River verbs take the event time in ``x["ts"]``; the brain calls their native event-time
verbs, ``update`` and (forecasters) ``forecast_at``. Everything that learns is
checkpointed the same way: ``to_state()`` returns a JSON-friendly dict (no config), and
the class method ``from_state(state, **config)`` rebuilds it; parts of a brain whose
hyper-parameters come from their brain restore in place with ``load_state(state)``. A
brain that keeps one entry per key (a series, a tenant) and is checkpointed key by key
offers ``state_of(key)`` and ``restore(key, state)`` instead, so that a checkpoint writes
only the keys that changed.

Every brain bounds its memory per key (its docstring says how much) and drops keys idle
for longer than its time to live with ``evict_idle(now)``, judged at its own event time. A
brain that learns per tenant forgets one on request (erasure) with ``forget(tenant)``.

:mod:`models.registry` names the implementations of each protocol: the plugin point.
``tests/conformance`` checks every registered one against these protocols.

A scaling policy (the ``policies`` group) sizes one series: the metrics brain calls its
``decide`` once per sample and publishes its ``last_recommendation`` when the count changes.

An action (the ``actions`` plugin group) is what is done with a decision besides the
actuator's AWS calls: notify a webhook, open a ticket. Its ``apply`` is called once per
decision, off the event loop; it reports failure in its :class:`ActionResult` rather than
raising.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from models.forecast.load import Forecast
from models.policy.scaling import ScalingRecommendation

__all__ = [
    "Action",
    "ActionResult",
    "Checkpointed",
    "Detector",
    "Erasable",
    "EvictsIdle",
    "Forecaster",
    "KeyedCheckpointed",
    "ScalingPolicy",
]


@runtime_checkable
class Checkpointed(Protocol):
    """Learned state as a JSON-friendly dict; ``from_state`` is its class method inverse."""

    def to_state(self) -> Mapping[str, Any]: ...


@runtime_checkable
class KeyedCheckpointed(Protocol):
    """A brain checkpointed key by key (one series, one tenant)."""

    def state_of(self, key: Hashable) -> Mapping[str, Any] | None: ...

    def restore(self, key: Hashable, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class EvictsIdle(Protocol):
    """A brain that drops keys idle for too long, judged at its own event time."""

    @property
    def watermark(self) -> float: ...

    def evict_idle(self, now: float) -> int: ...


@runtime_checkable
class Erasable(Protocol):
    """A brain that learns per tenant and forgets one on request: what it learned from
    the tenant's requests no later than ``seen_until`` (event time); returns whether it
    held anything."""

    def forget(self, tenant: str, seen_until: float = ...) -> bool: ...


@runtime_checkable
class Detector(Protocol):
    """Anomaly detector of one metric series: River's ``AnomalyDetector`` verbs.

    ``x`` is River's dict of features: ``{"value": v}``, with the event time as ``x["ts"]``
    for a detector registered with ``event_time`` (:meth:`models.registry.Entry.features`).
    ``score_one`` returns a score (higher is more anomalous) without learning; ``learn_one``
    learns the value. Any River anomaly detector or pipeline is one; it need not be
    :class:`Checkpointed`, since plugins are checkpointed as pickles
    (:mod:`models.plugins.detectors`).
    """

    def learn_one(self, x: dict[str, float]) -> None: ...

    def score_one(self, x: dict[str, float]) -> float: ...


@runtime_checkable
class Forecaster(Checkpointed, Protocol):
    """Demand forecaster of one series, in event time: learn a value, forecast ``horizon_s``
    ahead with a prediction interval (``interval``: its coverage, ``None`` for the default).

    These are the native verbs the brain calls; the built-in is also a River forecaster
    (``learn_one(y, x)``, ``forecast(horizon, xs)``), and any River forecaster serves through
    :class:`models.forecast.river_forecaster.RiverForecaster`.
    """

    def update(self, ts: float, y: float) -> None: ...

    def forecast_at(
        self, ts_now: float, horizon_s: float, interval: float | None = None
    ) -> Forecast: ...


@runtime_checkable
class ScalingPolicy(Protocol):
    """The scaling policy of one series, as the metrics brain runs it.

    ``decide`` learns one sample (the demand ``rps``, the ``ready`` and ``requested``
    replica counts, the CPU utilisation of the ready replicas) and returns the replica count
    to request, or ``None`` to keep it; ``last_recommendation`` is the evidence of the last
    change it asked for (published as a ``scaling`` decision), ``None`` when it asked for
    none; ``last_forecast`` is the demand forecast it sized for, ``None`` for a policy that
    forecasts nothing. A policy bound as a plugin is checkpointed as its pickle, as every
    plugin is (:mod:`models.plugins.policies`); the built-in predictive policy is
    checkpointed by parts, in JSON, by its brain.

    Both registered policies are ones: :class:`~models.policy.autoscalers.PredictivePolicy`
    and :class:`~models.policy.autoscalers.HPAPolicy`. (The lab's simulator drives a looser
    protocol, :class:`models.policy.autoscalers.ScalingPolicy`, which its oracle also meets.)
    """

    last_recommendation: ScalingRecommendation | None
    last_forecast: Forecast | None

    def decide(
        self, ts: float, rps: float, ready: int, requested: int, cpu_util: float
    ) -> int | None: ...


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What became of one action call: ``ok``, and one line saying what was done or why not.

    >>> ActionResult(False, "HTTP 500 from https://hooks.example.com")
    ActionResult(ok=False, detail='HTTP 500 from https://hooks.example.com')
    """

    ok: bool
    detail: str = ""


@runtime_checkable
class Action(Protocol):
    """Does something with one decision (its JSON object, as published).

    ``apply`` may block (it is run in a thread, with a timeout) and returns an
    :class:`ActionResult`; a failure it can foresee (HTTP, network) is a result, not an
    exception.
    """

    def apply(self, decision: Mapping[str, Any]) -> ActionResult: ...
