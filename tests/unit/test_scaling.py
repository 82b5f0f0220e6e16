"""PredictiveScaler and CapacityEstimator."""

import pytest

from models.forecast.capacity import CapacityEstimator
from models.forecast.load import Forecast
from models.policy.scaling import PredictiveScaler


def fc(upper, mean=None, horizon_s=180.0):
    mean = upper * 0.9 if mean is None else mean
    return Forecast(mean=mean, lower=mean * 0.8, upper=upper, horizon_s=horizon_s)


def test_sizes_for_the_forecast_upper_bound_at_the_target():
    scaler = PredictiveScaler(target_utilisation=0.6)
    rec = scaler.recommend(0.0, 5, observed_rps=500.0, forecast=fc(1200.0), capacity=100.0)
    # ceil(1200 / (100 * 0.6)) = 20
    assert rec.desired_replicas == 20
    assert rec.rule == "forecast"
    assert rec.forecast_upper == 1200.0
    assert rec.horizon_s == 180.0
    assert rec.capacity_per_replica == 100.0
    assert rec.target_utilisation == 0.6
    assert rec.utilisation == pytest.approx(1.0)  # 500 rps on 5 replicas of 100
    assert rec.reason.startswith("Scale up from 5 to 20")


def test_no_recommendation_when_the_count_is_unchanged():
    scaler = PredictiveScaler(target_utilisation=0.5)
    assert scaler.recommend(0.0, 10, 400.0, fc(500.0), capacity=100.0) is None
    assert scaler.recommend(15.0, 10, 420.0, fc(480.0), capacity=100.0) is None


def test_surge_above_the_forecast_is_acted_on_at_once_despite_the_step_bound():
    scaler = PredictiveScaler(target_utilisation=0.5, max_step_up=2)
    rec = scaler.recommend(0.0, 4, observed_rps=2000.0, forecast=fc(300.0), capacity=100.0)
    assert rec.desired_replicas == 40
    assert rec.rule == "surge"
    assert "exceeds the forecast upper bound" in rec.reason


def test_scale_up_step_bound_applies_to_forecast_driven_changes():
    scaler = PredictiveScaler(target_utilisation=0.5, max_step_up=3)
    rec = scaler.recommend(0.0, 4, observed_rps=100.0, forecast=fc(2000.0), capacity=100.0)
    assert (rec.desired_replicas, rec.rule) == (7, "step_limit")


def test_scale_down_step_bound():
    scaler = PredictiveScaler(target_utilisation=0.5, max_step_down=2, scale_down_window_s=0.0)
    rec = scaler.recommend(0.0, 10, observed_rps=50.0, forecast=fc(60.0), capacity=100.0)
    assert (rec.desired_replicas, rec.rule) == (8, "step_limit")


def test_scale_down_stabilisation_holds_the_highest_recommendation_of_the_window():
    scaler = PredictiveScaler(target_utilisation=0.5, scale_down_window_s=300.0)
    assert scaler.recommend(0.0, 10, 900.0, fc(1000.0), capacity=100.0).desired_replicas == 20
    # Demand falls: the 20 of t=0 holds the count within the window.
    for ts in range(15, 300, 15):
        assert scaler.recommend(float(ts), 20, 100.0, fc(200.0), capacity=100.0) is None
    rec = scaler.recommend(300.0, 20, 100.0, fc(200.0), capacity=100.0)
    assert rec.desired_replicas == 4
    # Partway: with a 600 recommendation inside the window, scale down only to 12.
    scaler = PredictiveScaler(target_utilisation=0.5, scale_down_window_s=300.0)
    scaler.recommend(0.0, 20, 500.0, fc(600.0), capacity=100.0)
    rec = scaler.recommend(15.0, 20, 100.0, fc(200.0), capacity=100.0)
    assert (rec.desired_replicas, rec.rule) == (12, "stabilised")


def test_min_and_max_replicas():
    scaler = PredictiveScaler(target_utilisation=0.5, min_replicas=2, max_replicas=10)
    rec = scaler.recommend(0.0, 5, 100.0, fc(5000.0), capacity=100.0)
    assert (rec.desired_replicas, rec.rule) == (10, "max_replicas")
    scaler = PredictiveScaler(
        target_utilisation=0.5, min_replicas=2, max_replicas=10, scale_down_window_s=0.0
    )
    rec = scaler.recommend(0.0, 5, 1.0, fc(2.0), capacity=100.0)
    assert (rec.desired_replicas, rec.rule) == (2, "min_replicas")


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        PredictiveScaler(target_utilisation=0.0)
    with pytest.raises(ValueError):
        PredictiveScaler(min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError):
        PredictiveScaler().recommend(0.0, 1, 1.0, fc(1.0), capacity=0.0)


def test_capacity_estimator_learns_and_ignores_bad_samples():
    cap = CapacityEstimator()
    assert cap.capacity is None
    for i in range(300):
        util = 0.3 + 0.4 * (i % 7) / 7
        cap.learn_one(rps=util * 120.0 * 8, replicas=8, cpu_util=util)
    assert cap.capacity == pytest.approx(120.0, rel=1e-6)
    for rps, replicas, util in [(100.0, 0, 0.5), (100.0, 4, 0.001), (0.0, 4, 0.5)]:
        cap.learn_one(rps, replicas, util)
    assert cap.n_samples == 300
    # One wild sample moves the estimate by at most max_step (about 5 %).
    cap.learn_one(rps=1e9, replicas=1, cpu_util=0.5)
    assert cap.capacity == pytest.approx(120.0, rel=0.06)


def test_capacity_estimator_blends_the_prior_while_young():
    cap = CapacityEstimator(prior=100.0, min_samples=10)
    cap.learn_one(rps=200.0, replicas=1, cpu_util=1.0)
    assert 100.0 < cap.capacity < 200.0
    for _ in range(9):
        cap.learn_one(rps=200.0, replicas=1, cpu_util=1.0)
    assert cap.capacity == pytest.approx(200.0)
    restored = CapacityEstimator(prior=100.0, min_samples=10)
    restored.load_state(cap.to_state())
    assert restored.capacity == cap.capacity
