"""Usage profiles: hour-of-week learning, peak announcements, and the forecaster's prior."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from models.forecast.load import LoadForecaster
from models.forecast.usage import UsageModel, UsageProfile, hour_of_week
from streams.lab.bench.usage_prior import MONDAY, format_bench_usage_prior, run_bench_usage_prior
from streams.lab.simulator import _daily, _weekly

DAY = 86_400.0
STEP = 300.0


def simulated_counts(days: int, per_hour: float = 600.0, seed: int = 0):
    """Counts per 5 minutes of one tenant on one service in eu-west (UTC+0), following the
    simulator's daily cycle (afternoon peak) and weekly pattern (quieter weekends)."""
    rng = np.random.default_rng(seed)
    for k in range(int(days * DAY / STEP)):
        ts = MONDAY + k * STEP
        rate = per_hour * _daily(ts, 0.0) * _weekly(ts, 0.0) * STEP / 3600.0
        yield ts, float(rng.poisson(rate))


def learned_model(days: int = 21):
    """A model that learned one tenant's use of catalog in eu-west, as a tenant (its peaks)
    and as the (service, region) series (the prior)."""
    model = UsageModel()
    announced = []
    for ts, count in simulated_counts(days):
        model.learn_series(ts, "catalog", "eu-west", count)
        peak = model.learn_tenant(ts, "t_1", "catalog", "eu-west", count)
        if peak is not None:
            announced.append(peak)
    return model, announced


def test_hour_of_week_matches_the_forecaster_prior_index():
    # Monday 10:00-11:00 UTC is index 10; a forecaster without its own profile yet uses the
    # prior alone, so its seasonal factor peaks there.
    assert hour_of_week(MONDAY + 10.5 * 3600) == 10
    prior = [1.0] * 168
    prior[10] = 3.0
    f = LoadForecaster()
    f.set_prior(prior)
    factors = {h: f.seasonal_factor(MONDAY + (h + 0.5) * 3600) for h in range(24)}
    assert max(factors, key=factors.get) == 10


def test_scheduled_scaling_comes_ahead_of_weekday_peaks_and_never_on_weekends():
    _, announced = learned_model(21)
    week3 = [p for p in announced if p.ts >= MONDAY + 14 * DAY]
    days = [datetime.fromtimestamp(p.ts, UTC).strftime("%a") for p in week3]
    # One announcement per weekday peak; weekends are 0.72x quieter and have no peak hour.
    assert days == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    for p in week3:
        assert 15 * 60 <= p.peak.start_ts - p.ts <= 60 * 60  # ahead of the peak's start
        assert p.peak.peak_ts - p.ts >= 15 * 60  # and of its busiest hour
        assert datetime.fromtimestamp(p.peak.peak_ts, UTC).hour in (14, 15)
        assert p.peak.magnitude > 1.4
        assert (p.tenant, p.service, p.region) == ("t_1", "catalog", "eu-west")
    assert all(datetime.fromtimestamp(p.ts, UTC).weekday() < 5 for p in announced)


def test_prior_has_the_simulated_daily_and_weekly_shape():
    model, _ = learned_model(15)
    prior = model.prior_for("catalog", "eu-west")
    assert prior is not None and len(prior) == 168
    assert sum(prior) / 168 == pytest.approx(1.0)
    assert max(range(168), key=prior.__getitem__) % 24 in (14, 15)
    weekday = sum(prior[: 5 * 24]) / (5 * 24)
    weekend = sum(prior[5 * 24 :]) / (2 * 24)
    assert weekend / weekday == pytest.approx(0.72, abs=0.03)
    assert model.prior_for("catalog") == pytest.approx(prior)  # one region: the same
    assert model.prior_for("search") is None


def test_tenant_and_series_profiles_are_learned_apart():
    model = UsageModel()
    for ts, count in simulated_counts(8):
        model.learn_tenant(ts, "t_1", "catalog", "eu-west", count)
    assert model.profile("t_1", "catalog").complete
    assert model.prior_for("catalog") is None and list(model.series()) == []
    model = UsageModel()
    for ts, count in simulated_counts(8):
        model.learn_series(ts, "catalog", "eu-west", count)
    assert model.prior_for("catalog") is not None and len(model) == 0


def test_no_prior_before_a_whole_week():
    model = UsageModel()
    for ts, count in simulated_counts(6):
        model.learn_series(ts, "catalog", "eu-west", count)
    assert model.prior_for("catalog", "eu-west") is None
    assert 0.8 < model.series_profile("catalog", "eu-west").coverage < 1.0


def test_profile_learns_eventless_hours_as_zero_and_skips_the_first_partial_hour():
    p = UsageProfile()
    p.learn_one(MONDAY + 1800.0, 7.0)  # 00:30: the first, partial hour
    p.learn_one(MONDAY + 3 * 3600.0 + 10.0, 5.0)  # 03:00
    p.advance(MONDAY + 4 * 3600.0)
    assert p.visits[0] == 0  # not learned
    assert [p.counts[h] for h in (1, 2, 3)] == [0.0, 0.0, 5.0]
    assert [p.visits[h] for h in (1, 2, 3)] == [1, 1, 1]
    # A late event counts in the current hour.
    p.learn_one(MONDAY + 3.5 * 3600.0, 1.0)
    assert p.current == 1.0


def test_skipped_hours_are_not_learned():
    p = UsageProfile()
    p.learn_one(MONDAY, 1.0)
    p.learn_one(MONDAY + 3600.0, 100.0)
    p.skip_hour()
    p.advance(MONDAY + 2 * 3600.0)
    assert p.visits[1] == 0


def test_profile_learning_rate_after_the_first_visits():
    p = UsageProfile(alpha=0.3)
    for week in range(4):
        p.learn_one(MONDAY + week * 7 * DAY - 1.0, 0.0)
        p.learn_one(MONDAY + week * 7 * DAY, [10.0, 20.0, 30.0, 40.0][week])
        p.advance(MONDAY + week * 7 * DAY + 3600.0)
    # Visits 1-3 are averaged (weights 1, 1/2, 1/3 -> 20), the fourth has weight 0.3.
    assert p.counts[0] == pytest.approx(20.0 + 0.3 * (40.0 - 20.0))


def test_a_quiet_tenant_gets_no_announcement():
    model = UsageModel()  # min_peak_per_hour = 60
    for ts, count in simulated_counts(21):
        assert model.learn_tenant(ts, "t_q", "catalog", "eu-west", count / 100) is None


def test_state_round_trip_and_eviction():
    model, _ = learned_model(9)
    state = orjson.loads(orjson.dumps(model.to_state()))
    restored = UsageModel()
    restored.load_state(state)
    assert restored.prior_for("catalog", "eu-west") == model.prior_for("catalog", "eu-west")
    # The rest of the week goes on identically, announcements included.
    rest = [(ts, c) for ts, c in simulated_counts(12) if ts >= MONDAY + 9 * DAY]
    runs = [
        [m.learn_tenant(ts, "t_1", "catalog", "eu-west", c) for ts, c in rest]
        for m in (model, restored)
    ]
    assert runs[0] == runs[1]
    assert sum(p is not None for p in runs[0]) == 3  # Wednesday to Friday
    assert restored.evict_idle(rest[-1][0] + 15 * DAY) == 2
    assert len(restored) == 0


def test_memory_per_key_is_constant():
    model = UsageModel(max_keys=2)
    for n in range(4):
        model.learn_tenant(MONDAY, f"t_{n}", "catalog", "eu-west")
        model.learn_series(MONDAY, "catalog", f"r-{n}")
    assert list(model.tenants()) == [("t_2", "catalog"), ("t_3", "catalog")]
    assert list(model.series()) == [("catalog", "r-2"), ("catalog", "r-3")]
    p = model.profile("t_3", "catalog")
    assert len(p.counts) == len(p.visits) == 168


def test_the_prior_lowers_the_forecast_error_on_the_simulator_trace():
    # A short version of the bench: a week and a day of interactions, a day of demand.
    result = run_bench_usage_prior(
        learn_days=8, eval_days=1, tick_s=300.0, interactions_per_s=0.2, warm=False
    )
    cold = result["cold"]
    assert result["prior_helps"]
    assert cold["mape_with"] < cold["mape_without"]
    assert cold["ratio"] == pytest.approx(cold["mape_with"] / cold["mape_without"])
    assert math.isfinite(cold["replica_hours_with"])
    assert len(result["prior"]) == 168
    assert "prior lowers the cold forecaster's MAPE: yes" in format_bench_usage_prior(result)
