"""SurgeMemory, and the predictive policy sizing for a surge that announces itself."""

import itertools
import json
import random

import pytest

from models.forecast.load import LoadForecaster
from models.forecast.surges import SurgeMemory
from models.policy.autoscalers import PREDICTIVE_CONFIG, PredictivePolicy, make_policy
from models.policy.scaling import PredictiveScaler
from streams.lab.bench.scaling import capacity_for_trace, simulate

IDLE, TRICKLE, FLOOD = 50.0, 15_000.0, 5_000_000.0


def announced_floods(days=3, seed=7):
    """5-minute samples: idle, and at random times a trickle, then a flood 5 minutes on."""
    rng = random.Random(seed)
    trace, t, next_flood = [], 0.0, 3600.0
    while t < days * 86_400.0:
        if next_flood <= t < next_flood + 300.0:
            value = TRICKLE
        elif next_flood + 300.0 <= t < next_flood + 600.0:
            value = FLOOD
        else:
            value = IDLE * rng.uniform(0.8, 1.2)
            if t >= next_flood + 600.0:
                next_flood = t + rng.uniform(1.5, 4.0) * 3600.0
        trace.append((t, value))
        t += 300.0
    return trace


def policy_without_surges():
    forecaster = LoadForecaster(interval=PREDICTIVE_CONFIG["interval"])
    scaler = PredictiveScaler(0.6, horizon_s=60.0, scale_down_window_s=0.0)
    return PredictivePolicy(scaler, forecaster, band_interval=PREDICTIVE_CONFIG["band_interval"])


def test_a_flood_announced_by_a_trickle_is_met_once_the_pattern_is_known():
    trace = announced_floods()
    capacity = capacity_for_trace(trace)
    with_memory = make_policy("predictive", 0.6, startup_delay_s=60.0)
    assert with_memory.surges is not None
    rules = []
    decide = with_memory.decide

    def recording(*args):
        out = decide(*args)
        if with_memory.last_recommendation is not None:
            rules.append(with_memory.last_recommendation)
        return out

    with_memory.decide = recording
    remembered = simulate(trace, with_memory, capacity_per_replica=capacity)
    plain = simulate(trace, policy_without_surges(), capacity_per_replica=capacity)

    surge_recs = [r for r in rules if r.rule == "surge_memory"]
    assert surge_recs, "the memory never sized for a surge"
    ups = [r for r in surge_recs if r.desired_replicas > r.current_replicas]
    assert ups
    assert ups[0].reason.startswith(f"Scale up from {ups[0].current_replicas} to ")
    assert "after the last 4 jumps like it" in ups[0].reason
    assert "times its idle level" in ups[0].reason
    assert remembered.violation_minutes < 0.5 * plain.violation_minutes
    # Sized for the profile, which ends with the flood: no more replica-hours than the
    # policy that chases the flood once it is seen.
    assert remembered.replica_hours <= plain.replica_hours * 1.05


def test_a_series_without_jumps_is_left_to_its_forecast():
    trace = [(300.0 * k, 1000.0 + 400.0 * ((k % 288) / 288.0)) for k in range(864)]
    capacity = capacity_for_trace(trace)
    with_memory = make_policy("predictive", 0.6, startup_delay_s=60.0)
    a = simulate(trace, with_memory, capacity_per_replica=capacity)
    b = simulate(trace, policy_without_surges(), capacity_per_replica=capacity)
    assert with_memory.surges.level == pytest.approx(1200.0, rel=0.25)
    assert not with_memory.surges._past
    assert (a.violation_minutes, a.replica_hours, a.scaling_actions) == (
        b.violation_minutes,
        b.replica_hours,
        b.scaling_actions,
    )


def feed(memory, trace, step_s=15.0):
    """Feed a 5-minute trace interpolated onto a ``step_s`` grid, as the simulator does."""
    for (t0, v0), (t1, v1) in itertools.pairwise(trace):
        t = t0
        while t < t1:
            memory.learn_one(t, v0 + (v1 - v0) * (t - t0) / (t1 - t0))
            t += step_s


def test_the_memory_survives_a_checkpoint_mid_episode():
    trace = announced_floods(days=2)
    memory = SurgeMemory()
    cut = next(i for i, (t, v) in enumerate(trace) if v == TRICKLE and t > 86_400.0)
    feed(memory, trace[: cut + 1])
    assert memory.in_episode
    restored = SurgeMemory()
    restored.load_state(json.loads(json.dumps(memory.to_state())))
    for t in (trace[cut][0] + 15.0, trace[cut][0] + 30.0):
        for m in (memory, restored):
            m.learn_one(t, TRICKLE)
        assert restored.forecast(t, 180.0) == memory.forecast(t, 180.0)
        assert memory.forecast(t, 180.0) is not None


def test_memory_is_bounded_per_kind_and_in_kinds():
    memory = SurgeMemory(window_s=60.0, max_episodes=3, max_kinds=2, min_episodes=1)
    t = 0.0
    for ratio in [40.0] * 5 + [80.0] * 5 + [160.0] * 5:
        for _ in range(20):  # idle
            memory.learn_one(t, 10.0)
            t += 15.0
        for _ in range(5):  # a jump of its own kind, past the window
            memory.learn_one(t, 10.0 * ratio)
            t += 15.0
    # Kinds floor(log2(ratio)) 5, 6 and 7: the first is forgotten, five of each kind kept 3.
    assert list(memory._past) == [6, 7]
    assert all(len(profiles) == 3 for profiles in memory._past.values())
    assert all(len(p) == memory.n_bins for ps in memory._past.values() for p in ps)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        SurgeMemory(jump_ratio=1.0)
    with pytest.raises(ValueError):
        SurgeMemory(min_episodes=5, max_episodes=4)
    with pytest.raises(ValueError):
        SurgeMemory(max_kinds=0)
