"""LoadForecaster: daily and weekly cycles, intervals, the seasonal prior, checkpoints."""

import json
import math
import random

import pytest

from models.forecast.load import DAY_S, HOURS_PER_WEEK, LoadForecaster

MONDAY = 4 * DAY_S  # 1970-01-05 00:00 UTC was a Monday


def daily_shape(ts):
    """Quiet nights, busy afternoons: between 0.5 and 1.5."""
    return 1.0 + 0.5 * math.sin(2 * math.pi * ((ts % DAY_S) / DAY_S - 0.3))


def weekly_shape(ts):
    weekday = (int(ts // DAY_S) + 3) % 7
    return 0.4 if weekday >= 5 else 1.0


def stream(start, days, demand, step=300.0, seed=0, noise=0.05):
    rng = random.Random(seed)
    ts = start
    while ts < start + days * DAY_S:
        yield ts, demand(ts) * (1.0 + rng.gauss(0.0, noise))
        ts += step


def evaluate(f, samples, horizon_s):
    """Learn the samples one by one; score forecasts made ``horizon_s`` ahead."""
    samples = list(samples)
    by_ts = dict(samples)
    errors, covered = [], []
    for ts, y in samples:
        target = ts + horizon_s
        if target in by_ts:
            fc = f.forecast(ts, horizon_s)
            actual = by_ts[target]
            errors.append(abs(fc.mean - actual) / actual)
            covered.append(fc.lower <= actual <= fc.upper)
        f.learn_one(ts, y)
    return errors, covered


def test_learns_a_daily_cycle():
    f = LoadForecaster()
    demand = lambda ts: 1000 * daily_shape(ts)  # noqa: E731
    for ts, y in stream(MONDAY, 4, demand):
        f.learn_one(ts, y)
    errors, covered = evaluate(f, stream(MONDAY + 4 * DAY_S, 1, demand, seed=1), 1800.0)
    assert sum(errors) / len(errors) < 0.08
    assert sum(covered) / len(covered) > 0.7  # an 80 % interval
    # The daily profile has the shape: afternoons about three times the nights.
    assert f.seasonal_factor(MONDAY + 13 * 3600) > 2.5 * f.seasonal_factor(MONDAY + 1 * 3600)


def test_learns_a_weekly_cycle():
    f = LoadForecaster()
    demand = lambda ts: 1000 * daily_shape(ts) * weekly_shape(ts)  # noqa: E731
    for ts, y in stream(MONDAY, 21, demand):
        f.learn_one(ts, y)
    saturday_noon = MONDAY + 21 * DAY_S + 5 * DAY_S + 12 * 3600
    wednesday_noon = MONDAY + 21 * DAY_S + 2 * DAY_S + 12 * 3600
    ratio = f.seasonal_factor(saturday_noon) / f.seasonal_factor(wednesday_noon)
    assert ratio == pytest.approx(0.4, abs=0.08)
    # Forecasts on the weekend of week four stay close.
    weekend = stream(MONDAY + 26 * DAY_S, 2, demand, seed=3)
    errors, _ = evaluate(f, weekend, 1800.0)
    assert sum(errors) / len(errors) < 0.1


def hour_of_week_profile(shape):
    # Index weekday * 24 + hour, Monday first, sampled at the hour centres.
    return [shape(MONDAY + h * 3600 + 1800) for h in range(HOURS_PER_WEEK)]


def test_seasonal_prior_helps_while_young():
    def demand(ts):
        return 1000 * daily_shape(ts) * weekly_shape(ts)

    first_day = list(stream(MONDAY, 1, demand, seed=5))
    plain = LoadForecaster()
    primed = LoadForecaster()
    primed.set_prior(hour_of_week_profile(lambda ts: daily_shape(ts) * weekly_shape(ts)))
    err_plain, _ = evaluate(plain, first_day, 1800.0)
    err_primed, _ = evaluate(primed, first_day, 1800.0)
    assert sum(err_primed) < 0.7 * sum(err_plain)
    # A callable prior works the same way.
    called = LoadForecaster()
    called.set_prior(lambda ts: daily_shape(ts) * weekly_shape(ts))
    err_called, _ = evaluate(called, first_day, 1800.0)
    assert sum(err_called) < 0.7 * sum(err_plain)


def test_prior_weight_fades_as_the_profile_matures():
    f = LoadForecaster(prior_visits=2.0)
    f.set_prior([2.0 if h % 24 == 12 else 1.0 for h in range(HOURS_PER_WEEK)])
    noon = MONDAY + 12 * 3600 + 1800  # the centre of the prior's peak hour
    young = f.seasonal_factor(noon)
    for ts, y in stream(MONDAY, 10, lambda ts: 100.0, noise=0.0):
        f.learn_one(ts, y)
    # Flat demand for ten days: the learned profile (1.0) now outweighs the prior's peak.
    assert young > 1.5
    assert f.seasonal_factor(noon + 10 * DAY_S) < 1.25


def test_set_prior_validates():
    f = LoadForecaster()
    with pytest.raises(ValueError):
        f.set_prior([1.0] * 24)
    with pytest.raises(ValueError):
        f.set_prior([0.0] * HOURS_PER_WEEK)


def test_restored_forecaster_forecasts_identically():
    f = LoadForecaster()
    f.set_prior([1.0 + (h % 24) / 24 for h in range(HOURS_PER_WEEK)])
    rng = random.Random(7)
    ts = MONDAY
    for _ in range(2000):
        ts += rng.uniform(5.0, 120.0)  # irregular arrivals
        f.learn_one(ts, 500 * daily_shape(ts) * rng.uniform(0.9, 1.1))
    restored = LoadForecaster.from_state(json.loads(json.dumps(f.to_state())))
    for h in (0.0, 60.0, 180.0, 450.0, 1800.0):
        assert restored.forecast(ts + 30, h) == f.forecast(ts + 30, h)
    # And they keep learning in lockstep. Forecasting at every step fills the quantiles and
    # expert weights the forecaster keeps between changes: asked again after a change, they
    # must be those of a forecaster built afresh from the same state.
    for step in range(300):
        ts += 30.0
        y = 500 * daily_shape(ts) * (3.0 if step % 50 == 0 else 1.0)
        f.learn_one(ts, y)
        restored.learn_one(ts, y)
        for h in (60.0, 180.0, 1800.0):
            assert restored.forecast(ts, h) == f.forecast(ts, h)
    fresh = LoadForecaster.from_state(json.loads(json.dumps(f.to_state())))
    for h in (60.0, 180.0, 1800.0):
        assert fresh.forecast(ts + 5.0, h) == f.forecast(ts + 5.0, h)


def test_memory_is_bounded():
    f = LoadForecaster()
    sizes = []
    for days in (1, 3):
        for ts, y in stream(MONDAY + (days - 1) * DAY_S, 1, lambda ts: 100.0, step=15.0):
            f.learn_one(ts, y)
        sizes.append(len(json.dumps(f.to_state())))
        assert all(len(p) <= f.pending_per_horizon for p in f._pending)
    assert sizes[1] < 1.2 * sizes[0]


def test_edge_cases():
    f = LoadForecaster()
    empty = f.forecast(0.0, 60.0)
    assert (empty.mean, empty.upper) == (0.0, 0.0)
    f.learn_one(1000.0, 50.0)
    f.learn_one(900.0, 1e9)  # out of order: ignored
    assert f.forecast(1000.0, 60.0).mean == pytest.approx(50.0)
    with pytest.raises(ValueError):
        LoadForecaster(slot_s=7.0)


def test_a_service_idle_at_night_is_learned_not_a_division_by_zero() -> None:
    """Slots first seen idle learn a daily factor of exactly 0; the next night's samples
    divided by it and raised, and every sample of the series was dead-lettered."""
    forecaster = LoadForecaster()
    start = 1_704_067_200.0  # a Monday, 00:00 UTC
    for i in range(4 * 24 * 60):
        busy = 8 <= (i // 60) % 24 < 20
        forecaster.learn_one(start + 60.0 * i, 100.0 if busy else 0.0)
    noon = start + 4 * 86_400.0 + 12 * 3600.0
    for i in range(12 * 60):  # the fifth night and morning, to noon
        ts = start + 4 * 86_400.0 + 60.0 * i
        forecaster.learn_one(ts, 100.0 if i >= 8 * 60 else 0.0)
    assert forecaster.forecast(noon, 600.0).mean == pytest.approx(100.0, rel=0.05)
