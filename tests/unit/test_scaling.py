"""PredictiveScaler, CapacityEstimator and StartupDelayEstimator."""

import json

import pytest

from models.forecast.capacity import CapacityEstimator
from models.forecast.load import Forecast
from models.forecast.startup import StartupDelayEstimator
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


# ------------------------------------------------------------------ leaving the band
def test_a_burst_is_sized_for_where_its_trend_leads_capped_at_the_days_peak():
    scaler = PredictiveScaler(target_utilisation=0.5, scale_down_window_s=0.0)
    band = fc(600.0)  # mean 540, lower 432
    # The day's peak so far: 2000 rps, then back under the band.
    assert scaler.recommend(0.0, 4, 2000.0, band, capacity=100.0).desired_replicas == 40
    assert scaler.recommend(15.0, 40, 400.0, band, capacity=100.0).rule == "fall"
    # Rising 10 rps/s: in 180 s it is at 550 + 1800 = 2350, capped at the peak of 2000.
    rec = scaler.recommend(30.0, 10, 550.0, band, capacity=100.0)
    assert (rec.rule, rec.desired_replicas) == ("trend", 40)
    assert rec.demand == pytest.approx(2000.0, rel=1e-3)
    assert "rising to 1999 in 180 s" in rec.reason  # the peak decays over a day
    # Above the band and still rising, below the peak: a surge, sized for the trend.
    scaler = PredictiveScaler(target_utilisation=0.5, scale_down_window_s=0.0)
    scaler.recommend(0.0, 4, 5000.0, band, capacity=100.0)
    scaler.recommend(15.0, 100, 400.0, band, capacity=100.0)
    rec = scaler.recommend(30.0, 10, 700.0, band, capacity=100.0)
    assert (rec.rule, rec.desired_replicas) == ("surge", 86)  # 700 + 20 * 180 = 4300
    assert "heading for 4300" in rec.reason


def test_the_trend_within_a_wide_band_is_noise():
    scaler = PredictiveScaler(target_utilisation=0.5)
    narrow, wide = fc(600.0), fc(1500.0)
    scaler.recommend(0.0, 12, 2000.0, narrow, capacity=100.0, band=wide)
    scaler.recommend(15.0, 12, 500.0, narrow, capacity=100.0, band=wide)
    # Up 4 rps/s, heading for 1280 in 180 s: inside the wide band, so the forecast rules.
    assert scaler.recommend(30.0, 12, 560.0, narrow, capacity=100.0, band=wide) is None
    rec = scaler.recommend(45.0, 12, 560.0, narrow, capacity=100.0)
    assert rec is None or rec.rule == "forecast"


def test_demand_falling_below_the_band_is_followed_at_once():
    scaler = PredictiveScaler(target_utilisation=0.5, scale_down_window_s=300.0)
    band = Forecast(mean=1000.0, lower=900.0, upper=1100.0, horizon_s=180.0)
    assert scaler.recommend(0.0, 22, 1000.0, band, capacity=100.0) is None
    # Falling below the band: sized for its lower bound, 900 -> 18 replicas; the window
    # of 300 s still holds the highest recommendation (22) against the forecast's lag.
    rec = scaler.recommend(15.0, 22, 500.0, band, capacity=100.0)
    assert rec is None
    scaler = PredictiveScaler(target_utilisation=0.5, scale_down_window_s=0.0)
    scaler.recommend(0.0, 22, 1000.0, band, capacity=100.0)
    rec = scaler.recommend(15.0, 22, 500.0, band, capacity=100.0)
    assert (rec.rule, rec.desired_replicas) == ("fall", 18)
    assert "falling below the forecast band" in rec.reason
    # Below the band but rising again: the forecast, not the fall rule.
    rec = scaler.recommend(30.0, 18, 600.0, band, capacity=100.0)
    assert rec is None or rec.rule != "fall"


def test_the_trend_survives_a_restart():
    scaler = PredictiveScaler(target_utilisation=0.5)
    scaler.recommend(0.0, 4, 2000.0, fc(600.0), capacity=100.0)
    scaler.recommend(15.0, 40, 400.0, fc(600.0), capacity=100.0)
    restored = PredictiveScaler(target_utilisation=0.5)
    restored.load_state(json.loads(json.dumps(scaler.to_state())))
    a = scaler.recommend(30.0, 10, 550.0, fc(600.0), capacity=100.0)
    b = restored.recommend(30.0, 10, 550.0, fc(600.0), capacity=100.0)
    assert a == b and a.rule == "trend"
    # A state from before the trend was kept still loads.
    old = PredictiveScaler()
    old.load_state({"window": [[0.0, 3]]})
    assert old.to_state()["last"] is None


# ------------------------------------------------------------------ start-up delay
def test_startup_delay_is_learned_from_requested_and_ready_counts():
    est = StartupDelayEstimator(prior=60.0)
    assert (est.delay, est.horizon(15.0)) == (60.0, 60.0)
    est.learn_one(0.0, requested=2, ready=2)
    est.learn_one(15.0, requested=6, ready=2)  # 4 requested at 0 s
    est.learn_one(30.0, requested=4, ready=2)  # the 2 newest cancelled
    for ts in range(45, 300, 15):
        est.learn_one(float(ts), requested=4, ready=4 if ts >= 120 else 2)
    assert est.n_samples == 2 and est.delay == 120.0
    # A request seen at 315 s was made at the observation before (285 s); ready by 450 s,
    # a sample of 165 s: the running mean of three samples.
    est.learn_one(315.0, requested=5, ready=4)
    for ts in range(330, 480, 15):
        est.learn_one(float(ts), requested=5, ready=5 if ts >= 450 else 4)
    assert est.n_samples == 3 and est.delay == pytest.approx(135.0)
    assert est.horizon(15.0) == 135.0 and est.horizon(60.0) == 180.0
    # Out-of-order samples are ignored; the state round-trips.
    est.learn_one(10.0, requested=50, ready=0)
    restored = StartupDelayEstimator()
    restored.load_state(json.loads(json.dumps(est.to_state())))
    assert restored.to_state() == est.to_state()
    with pytest.raises(ValueError):
        StartupDelayEstimator(prior=-1.0)
    with pytest.raises(ValueError):
        StartupDelayEstimator(alpha=0.0)


def test_the_pending_requests_are_bounded():
    est = StartupDelayEstimator(max_pending=4)
    for i in range(20):
        est.learn_one(float(i * 15), requested=i + 1, ready=0)
    assert len(est.to_state()["pending"]) == 4
