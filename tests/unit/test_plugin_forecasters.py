"""Forecaster plugins inside the metrics brain: serving the scaler, guarded, handed over,
checkpointed, and the built-in path left exactly as it was."""

from __future__ import annotations

import hashlib
import itertools
import random

import orjson
from river import time_series

from models.brains.metrics import MetricsBrain
from models.forecast.load import Forecast, LoadForecaster
from models.forecast.river_forecaster import RiverForecaster
from models.plugins import checks
from models.plugins.forecasters import BoundForecaster, ForecasterPlugins
from models.plugins.guard import PluginGuard
from models.policy.autoscalers import PREDICTIVE_CONFIG
from models.registry import Entry
from schemas.config.plugins import Binding, PluginBindings
from tests.conformance.test_registered import telemetry
from tests.unit.test_metrics_brain import T0

KEY = ("api", "eu-west")


def holt() -> RiverForecaster:
    """River's Holt (level and trend), as a team would bind it."""
    return RiverForecaster(
        time_series.HoltWinters(alpha=0.5, beta=0.1),
        intervals=(PREDICTIVE_CONFIG["interval"], PREDICTIVE_CONFIG["band_interval"]),
    )


class RaisesEveryTenth(LoadForecaster):
    """Learns as the built-in does, but every tenth update raises."""

    def __init__(self) -> None:
        super().__init__(interval=PREDICTIVE_CONFIG["interval"])
        self.calls = 0

    def update(self, ts: float, y: float) -> None:
        self.calls += 1
        if self.calls % 10 == 0:
            raise RuntimeError("boom")
        super().update(ts, y)


class Inverted(LoadForecaster):
    """Forecasts an interval that does not hold its mean."""

    def forecast_at(self, ts_now, horizon_s, interval=None) -> Forecast:
        return Forecast(100.0, 120.0, 80.0, horizon_s)


ENTRIES = {
    "river-holt": Entry("forecasters", "river-holt", holt, 64 * 1024, "Holt", warmup=20),
    "flaky": Entry("forecasters", "flaky", RaisesEveryTenth, 64 * 1024, "raises"),
    "inverted": Entry("forecasters", "inverted", Inverted, 64 * 1024, "inverted"),
}


def plugins(*bindings: Binding, max_failures: int = 3) -> ForecasterPlugins:
    table = PluginBindings()
    for binding in bindings:
        table.apply(binding)
    return ForecasterPlugins(table, PluginGuard(max_failures), lambda g, n: ENTRIES[n])


def ramp(i: int, rng: random.Random) -> dict[str, float]:
    """Demand tripling over 1,000 samples at fixed capacity: the scaler keeps scaling out."""
    demand = 200.0 * (1.0 + 2.0 * min(i, 1000) / 1000) * (1 + rng.gauss(0, 0.02))
    return {"rps": demand, "replicas": 8, "cpu_util": min(1.0, demand / (8 * 50))}


def run(brain: MetricsBrain, service: str = "api", start: int = 0, n: int = 600) -> list:
    rng = random.Random(7 + start)
    out = []
    for i in range(start, start + n):
        out += brain.observe(T0 + 5 * i, service, "eu-west", ramp(i, rng))
    return [d for d in out if d.kind == "scaling"]


def test_a_bound_river_forecaster_serves_the_scaler_and_its_decisions_name_it() -> None:
    bound = plugins(Binding("forecasters", "river-holt", service="api"))
    brain = MetricsBrain(scaling_warmup_s=60, forecasters=bound)
    mine = run(brain)
    # Sample 20 is the first after the plugin's 20-value warm-up.
    warm = T0 + 5 * 20
    assert {d.evidence.get("forecaster") for d in mine if d.ts < warm} == {None}
    assert {d.evidence.get("forecaster") for d in mine if d.ts >= warm} == {"river-holt"}
    served = brain._series[KEY].policy.forecaster
    assert isinstance(served, BoundForecaster) and served.learned == 600
    # The scaler sized on the plugin's forecast, not the built-in's.
    horizon = brain._series[KEY].policy.scaler.horizon_s
    sized = brain.last_forecast(*KEY)
    assert sized.mean == served.model.forecast_at(T0 + 5 * 599, horizon).mean
    assert sized.mean != served.builtin.forecast_at(T0 + 5 * 599, horizon).mean
    # Another service keeps the built-in: its decisions are those of a plugin-free brain.
    others = run(brain, "web")
    assert others and [d.to_dict() for d in others] == [
        d.to_dict() for d in run(MetricsBrain(scaling_warmup_s=60), "web")
    ]


def test_a_raising_forecaster_loses_nothing_and_is_quarantined() -> None:
    bound = plugins(Binding("forecasters", "flaky", service="api"), max_failures=3)
    brain = MetricsBrain(scaling_warmup_s=60, forecasters=bound)
    decisions = run(brain)
    stats = bound.guard.stats["flaky"]
    assert stats.errors == 3 and stats.quarantined
    assert "RuntimeError: boom" in stats.last_error
    # Quarantined after its 30th update: every decision after that is the built-in's.
    assert all("forecaster" not in d.evidence for d in decisions if d.ts > T0 + 5 * 30)
    # The built-in learned every sample: its state is that of a plugin-free brain.
    alone = MetricsBrain(scaling_warmup_s=60)
    run(alone)
    mine, theirs = brain.state_of(KEY), alone.state_of(KEY)
    assert {k: v for k, v in mine.items() if k != "plugin_forecaster"} == theirs


def test_an_unsound_forecast_counts_as_a_failure_and_the_built_in_serves() -> None:
    bound = plugins(Binding("forecasters", "inverted", service="api"), max_failures=3)
    brain = MetricsBrain(scaling_warmup_s=60, forecasters=bound)
    run(brain, n=20)
    stats = bound.guard.stats["inverted"]
    assert stats.quarantined and "interval" in stats.last_error
    assert brain._series[KEY].policy.forecaster.served_by is None


def test_the_conformance_suite_admits_a_river_forecaster_and_refuses_an_unsound_one() -> None:
    one_us_per_reading = itertools.count(0, 1000).__next__
    holt_results = checks.run_checks(ENTRIES["river-holt"], n=300, clock=one_us_per_reading)
    assert all(r.ok for r in holt_results), holt_results
    assert holt_results[0].figures["mae"] < 40  # the canned cycle's amplitude
    inverted = checks.run_checks(ENTRIES["inverted"], n=300, clock=one_us_per_reading)
    assert not inverted[0].ok
    assert "must be finite and hold its mean" in inverted[0].reason


def test_a_binding_changed_at_run_time_is_picked_up_at_the_next_sample() -> None:
    bound = plugins()
    table = bound.bindings
    brain = MetricsBrain(scaling_warmup_s=60, forecasters=bound)
    run(brain, n=100)
    assert type(brain._series[KEY].policy.forecaster) is LoadForecaster
    table.apply(Binding("forecasters", "river-holt", service="api"))
    # Within the plugin's 20-value warm-up the built-in forecasts.
    assert all("forecaster" not in d.evidence for d in run(brain, start=100, n=20))
    assert brain._series[KEY].policy.forecaster.learned == 20
    table.apply(Binding("forecasters", None, service="api"))
    run(brain, start=120, n=1)
    assert type(brain._series[KEY].policy.forecaster) is LoadForecaster


def test_a_plugin_forecaster_resumes_from_its_checkpoint() -> None:
    binding = Binding("forecasters", "river-holt", service="api")
    head = MetricsBrain(scaling_warmup_s=60, forecasters=plugins(binding))
    run(head, n=300)
    state = orjson.loads(orjson.dumps(head.state_of(KEY)))
    assert state["plugin_forecaster"]["learned"] == 300
    restored = MetricsBrain(scaling_warmup_s=60, forecasters=plugins(binding))
    restored.restore(KEY, state)
    # The restored series goes on deciding exactly as the one that was never stopped.
    assert [d.to_dict() for d in run(restored, start=300)] == [
        d.to_dict() for d in run(head, start=300)
    ]
    # A checkpoint of a plugin no longer bound is dropped: the built-in serves.
    unbound = MetricsBrain(scaling_warmup_s=60, forecasters=plugins())
    unbound.restore(KEY, state)
    assert type(unbound._series[KEY].policy.forecaster) is LoadForecaster
    assert "plugin_forecaster" not in unbound.state_of(KEY)


def test_set_prior_applies_to_the_built_in() -> None:
    brain = MetricsBrain(forecasters=plugins(Binding("forecasters", "river-holt")))
    run(brain, n=5)
    assert brain.set_prior(*KEY, [1.0] * 168)
    assert brain.state_of(KEY)["forecaster"] == (
        brain._series[KEY].policy.forecaster.builtin.to_state()
    )


def _fingerprint(brain: MetricsBrain) -> tuple[int, str, str]:
    """Scaling, anomaly and risk decisions and checkpoints of the ``mixed`` scenario's first
    hour, as hashes of their JSON."""
    decisions, states, n = hashlib.sha256(), hashlib.sha256(), 0
    for kind, s in telemetry():
        if kind == "metrics":
            for d in brain.observe(s.ts, s.service, s.region, s.metrics):
                decisions.update(orjson.dumps(d.to_dict(), option=orjson.OPT_SORT_KEYS))
                n += 1
    for key in sorted(brain):
        states.update(orjson.dumps(brain.state_of(key), option=orjson.OPT_SORT_KEYS))
    return n, decisions.hexdigest()[:16], states.hexdigest()[:16]


# Of a brain without plugins before forecaster plugins existed (commit a7a5d7e): the same
# decisions; the checkpoints carry each series' surge memory since it was added.
BUILTIN_FINGERPRINT = (691, "e50841400c7bd44e", "b1489d8f994457b0")


def test_the_built_in_path_is_unchanged_without_a_binding_serving_the_series() -> None:
    elsewhere = plugins(Binding("forecasters", "river-holt", service="no-such-service"))
    assert _fingerprint(MetricsBrain()) == BUILTIN_FINGERPRINT
    assert _fingerprint(MetricsBrain(forecasters=elsewhere)) == BUILTIN_FINGERPRINT
