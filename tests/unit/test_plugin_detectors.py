"""Detector plugins inside the metrics brain: bound by scope, guarded, handed over, checkpointed."""

from __future__ import annotations

import random

import orjson

from models.brains.metrics import MetricsBrain
from models.plugins.detectors import DetectorPlugins
from models.plugins.guard import PluginGuard
from models.registry import Entry
from schemas.config.plugins import Binding, PluginBindings
from tests.unit.test_metrics_brain import T0, healthy
from tests.unit.test_plugin_guard import burn


class Ceiling:
    """Scores 1.0 above a fixed ceiling: a stand-in for a team's own detector."""

    def __init__(self, ceiling: float = 500.0) -> None:
        self.ceiling = ceiling
        self.seen = 0

    def learn_one(self, x: dict) -> None:
        self.seen += 1

    def score_one(self, x: dict) -> float:
        return 1.0 if x["value"] > self.ceiling else 0.0


class EveryTenthRaises(Ceiling):
    def score_one(self, x: dict) -> float:
        if self.seen % 10 == 9:
            self.seen += 1
            raise RuntimeError("boom")
        return super().score_one(x)


ENTRIES = {
    "ceiling": Entry("detectors", "ceiling", Ceiling, 1024, "a ceiling", warmup=20),
    "flaky": Entry("detectors", "flaky", EveryTenthRaises, 1024, "raises", warmup=0),
}


def plugins(*bindings: Binding, max_failures: int = 3) -> DetectorPlugins:
    table = PluginBindings()
    for binding in bindings:
        table.apply(binding)
    return DetectorPlugins(table, PluginGuard(max_failures), lambda g, n: ENTRIES[n])


def latency_spikes(brain: MetricsBrain, service: str, n: int = 600, every: int = 200) -> list:
    rng = random.Random(3)
    out = []
    for i in range(n):
        sample = healthy(i, rng)
        if i % every >= every - 3:  # an episode needs consecutive flags
            sample["latency_p99_ms"] = 900.0
        out += brain.observe(T0 + 5 * i, service, "eu-west", sample)
    return [d for d in out if d.kind == "anomaly"]


def test_a_bound_plugin_decides_for_its_scope_and_names_itself() -> None:
    bound = plugins(Binding("detectors", "ceiling", service="api", metric="latency_p99_ms"))
    brain = MetricsBrain(plugins=bound)
    mine = latency_spikes(brain, "api")
    assert mine and {d.evidence.get("detector") for d in mine} == {"ceiling"}
    assert all(d.params["anomaly_kind"] == "plugin" for d in mine)
    assert all("detector ceiling" in d.reason for d in mine)
    # Another service keeps the built-in, whose decisions are those of a brain without plugins.
    others = latency_spikes(brain, "web")
    assert others and [d.to_dict() for d in others] == [
        d.to_dict() for d in latency_spikes(MetricsBrain(), "web")
    ]


def test_a_plugin_raising_on_every_tenth_value_loses_nothing_and_is_quarantined() -> None:
    bound = plugins(Binding("detectors", "flaky", service="api"), max_failures=3)
    brain = MetricsBrain(plugins=bound)
    rng = random.Random(4)
    for i in range(200):
        brain.observe(T0 + 5 * i, "api", "eu-west", healthy(i, rng))
    stats = bound.guard.stats["flaky"]
    assert stats.errors == 3 and stats.quarantined
    assert "RuntimeError: boom" in stats.last_error
    # Every sample was learned by the built-in: the series is as a plugin-free brain's.
    alone = MetricsBrain()
    rng = random.Random(4)
    for i in range(200):
        alone.observe(T0 + 5 * i, "api", "eu-west", healthy(i, rng))
    mine, theirs = brain.state_of(("api", "eu-west")), alone.state_of(("api", "eu-west"))
    assert {k: v for k, v in mine.items() if k != "plugins"} == theirs


def test_a_swapped_detector_warms_up_while_the_built_in_decides() -> None:
    table = PluginBindings()
    bound = DetectorPlugins(table, PluginGuard(), lambda g, n: ENTRIES[n])
    brain = MetricsBrain(plugins=bound)
    rng = random.Random(5)
    for i in range(400):
        brain.observe(T0 + 5 * i, "api", "eu-west", healthy(i, rng))
    table.apply(Binding("detectors", "ceiling", service="api"))
    # Within the plugin's 20-value warm-up a spike is the built-in's to decide.
    spike = {**healthy(400, rng), "latency_p99_ms": 900.0}
    for i in range(400, 405):
        decisions = brain.observe(T0 + 5 * i, "api", "eu-west", spike)
    assert all("detector" not in d.evidence for d in decisions)
    assert brain._series[("api", "eu-west")].plugin_detectors["latency_p99_ms"].learned == 5


def test_a_plugin_detector_resumes_from_its_checkpoint() -> None:
    binding = Binding("detectors", "ceiling", service="api", metric="latency_p99_ms")
    head = MetricsBrain(plugins=plugins(binding))
    rng = random.Random(6)
    for i in range(100):
        head.observe(T0 + 5 * i, "api", "eu-west", healthy(i, rng))
    state = orjson.loads(orjson.dumps(head.state_of(("api", "eu-west"))))
    assert set(state["plugins"]) == {"latency_p99_ms"}
    restored = MetricsBrain(plugins=plugins(binding))
    restored.restore(("api", "eu-west"), state)
    slot = restored._series[("api", "eu-west")].plugin_detectors["latency_p99_ms"]
    assert slot.learned == 100 and slot.model.seen == 100
    # A checkpoint of a plugin no longer bound is dropped: the built-in serves.
    unbound = MetricsBrain(plugins=plugins())
    unbound.restore(("api", "eu-west"), state)
    assert unbound._series[("api", "eu-west")].plugin_detectors == {}


class SlowToBuild(Ceiling):
    """Builds itself at its first value, as River's Half-Space Trees do."""

    def score_one(self, x: dict) -> float:
        if self.seen == 0:
            burn(0.005)
        return super().score_one(x)


def test_a_models_first_call_may_build_it_outside_the_budget() -> None:
    entry = Entry("detectors", "slow-start", SlowToBuild, 1024, "builds late", warmup=0)
    table = PluginBindings()
    table.apply(Binding("detectors", "slow-start", service="api"))
    bound = DetectorPlugins(table, PluginGuard(max_failures=1), lambda g, n: entry)
    brain = MetricsBrain(plugins=bound)
    rng = random.Random(6)
    for i in range(50):
        brain.observe(T0 + 5 * i, "api", "eu-west", healthy(i, rng))
    stats = bound.guard.stats["slow-start"]
    # Four metrics: four models built, then each scored and learned 50 values.
    assert stats.calls == 4 + 4 * 50 and stats.overruns == 0 and not stats.quarantined
    assert stats.seconds >= 4 * 0.005  # the first calls were timed, not held to the budget
