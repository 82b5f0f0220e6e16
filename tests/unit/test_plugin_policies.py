"""Scaling policies bound to a service: the registered ones run in the brain, guarded,
picked up at run time, checkpointed, and the built-in path left exactly as it was."""

from __future__ import annotations

import orjson
import pytest

from models import registry
from models.base import ScalingPolicy
from models.brains.metrics import MetricsBrain
from models.plugins.forecasters import ForecasterPlugins
from models.plugins.guard import PluginGuard
from models.plugins.policies import PolicyPlugins
from models.registry import Entry
from schemas.config.plugins import Binding, PluginBindings
from tests.unit.test_plugin_forecasters import BUILTIN_FINGERPRINT, KEY, _fingerprint, run


class Raises:
    """A policy whose every decision raises."""

    last_recommendation = None
    last_forecast = None

    def decide(self, ts, rps, ready, requested, cpu_util):
        raise RuntimeError("boom")


class Chatty:
    """A policy whose recommendation is no recommendation."""

    last_forecast = None
    last_recommendation = "scale out, trust me"

    def decide(self, ts, rps, ready, requested, cpu_util):
        return requested + 1


def _raises(**config) -> Raises:
    return Raises()


def _chatty(**config) -> Chatty:
    return Chatty()


ENTRIES = {
    **{name: registry.entry("policies", name) for name in registry.names("policies")},
    "raises": Entry("policies", "raises", _raises, 1024, "raises"),
    "chatty": Entry("policies", "chatty", _chatty, 1024, "chatty"),
}


def plugins(*bindings: Binding, max_failures: int = 3) -> PolicyPlugins:
    table = PluginBindings()
    for binding in bindings:
        table.apply(binding)
    return PolicyPlugins(table, PluginGuard(max_failures), lambda g, n: ENTRIES[n])


@pytest.mark.parametrize("name", registry.names("policies"))
def test_every_registered_policy_is_one_the_brain_runs(name: str) -> None:
    assert isinstance(registry.create("policies", name, target_utilisation=0.6), ScalingPolicy)
    bound = plugins(Binding("policies", name, service="api"))
    decisions = run(MetricsBrain(scaling_warmup_s=60, policies=bound))
    assert decisions and {d.evidence["policy"] for d in decisions} == {name}
    assert bound.guard.stats[name].errors == 0


def test_the_hpa_bound_to_a_service_scales_it_with_its_configuration() -> None:
    bound = plugins(Binding("policies", "hpa", service="api", config={"target_utilisation": 0.7}))
    brain = MetricsBrain(scaling_warmup_s=60, policies=bound)
    mine = run(brain)
    assert mine and {d.evidence["rule"] for d in mine} == {"hpa"}
    assert {d.evidence["target_utilisation"] for d in mine} == {0.7}
    # Another service keeps the built-in: its decisions are those of a plugin-free brain.
    others = run(brain, "web")
    assert others and [d.to_dict() for d in others] == [
        d.to_dict() for d in run(MetricsBrain(scaling_warmup_s=60), "web")
    ]


@pytest.mark.parametrize("name", ["raises", "chatty"])
def test_a_failing_policy_loses_nothing_and_is_quarantined(name: str) -> None:
    bound = plugins(Binding("policies", name, service="api"), max_failures=3)
    brain = MetricsBrain(scaling_warmup_s=60, policies=bound)
    mine = run(brain)
    stats = bound.guard.stats[name]
    assert stats.errors == 3 and stats.quarantined
    # Every sample got the built-in predictive policy's decision, as in a plugin-free brain.
    alone = MetricsBrain(scaling_warmup_s=60)
    assert [d.to_dict() for d in mine] == [d.to_dict() for d in run(alone)]
    assert brain.state_of(KEY).keys() - alone.state_of(KEY).keys() == {"plugin_policy"}


def test_a_binding_changed_at_run_time_is_picked_up_at_the_next_sample() -> None:
    bound = plugins()
    brain = MetricsBrain(scaling_warmup_s=60, policies=bound)
    run(brain, n=100)
    bound.bindings.apply(Binding("policies", "hpa", service="api"))
    run(brain, start=100, n=1)
    assert brain._series[KEY].plugin_policy.learned == 1
    bound.bindings.apply(Binding("policies", None, service="api"))
    run(brain, start=101, n=1)
    assert brain._series[KEY].plugin_policy is None
    assert "plugin_policy" not in brain.state_of(KEY)


def test_a_bound_policy_resumes_from_its_checkpoint() -> None:
    binding = Binding("policies", "hpa", service="api", config={"target_utilisation": 0.7})
    head = MetricsBrain(scaling_warmup_s=60, policies=plugins(binding))
    run(head, n=300)
    state = orjson.loads(orjson.dumps(head.state_of(KEY)))
    assert state["plugin_policy"]["learned"] == 300
    restored = MetricsBrain(scaling_warmup_s=60, policies=plugins(binding))
    restored.restore(KEY, state)
    after = run(restored, start=300)
    assert after and [d.to_dict() for d in after] == [d.to_dict() for d in run(head, start=300)]
    # A checkpoint of a policy no longer bound is dropped: the built-in serves.
    unbound = MetricsBrain(scaling_warmup_s=60, policies=plugins())
    unbound.restore(KEY, state)
    assert unbound._series[KEY].plugin_policy is None


def test_the_built_in_path_is_unchanged_with_empty_bindings() -> None:
    table, guard = PluginBindings(), PluginGuard()
    brain = MetricsBrain(
        forecasters=ForecasterPlugins(table, guard, registry.entry),
        policies=PolicyPlugins(table, guard, registry.entry),
    )
    assert _fingerprint(brain) == BUILTIN_FINGERPRINT
