"""RiverForecaster: any River forecaster with the native verbs, its interval and checkpoint,
and in the predictive policy."""

import json
import math
import random

import pytest
from river import time_series

from models.forecast.river_forecaster import RiverForecaster
from models.policy.autoscalers import PREDICTIVE_CONFIG, make_policy

DAY_S = 86_400.0
MONDAY = 4 * DAY_S


def daily_shape(ts):
    """Quiet nights, busy afternoons: between 0.5 and 1.5 (as in test_forecast)."""
    return 1.0 + 0.5 * math.sin(2 * math.pi * ((ts % DAY_S) / DAY_S - 0.3))


def noisy_days(days, step=300.0, seed=0):
    rng = random.Random(seed)
    n = int(days * DAY_S / step)
    return [
        (MONDAY + step * i, 1000 * daily_shape(step * i) * (1 + rng.gauss(0, 0.05)))
        for i in range(n)
    ]


def holt_winters(**kwargs):
    """Multiplicative Holt-Winters with a daily season of 5-minute steps."""
    return RiverForecaster(
        time_series.HoltWinters(
            alpha=0.3, beta=0.01, gamma=0.3, seasonality=288, multiplicative=True
        ),
        **kwargs,
    )


def test_holt_winters_follows_a_daily_cycle():
    """Four days learned, the fifth forecast 30 minutes ahead.

    The bar is the load forecaster's on the same cycle (test_forecast): mean error under
    8 %, where the 5 % noise alone gives 4 % (5.1 % when this was written), and an 80 %
    interval that holds over 70 % of the outcomes (74 %).
    """
    f = holt_winters()
    samples = noisy_days(5)
    by_ts = dict(samples)
    errors, covered = [], []
    for i, (ts, y) in enumerate(samples):
        target = ts + 1800.0
        if i >= 4 * 288 and target in by_ts:
            fc = f.forecast_at(ts, 1800.0)
            errors.append(abs(fc.mean - by_ts[target]) / by_ts[target])
            covered.append(fc.lower <= by_ts[target] <= fc.upper)
        f.update(ts, y)
    assert f.step_s == pytest.approx(300.0)
    assert sum(errors) / len(errors) < 0.08
    assert sum(covered) / len(covered) > 0.7


def test_state_round_trip_gives_identical_next_forecasts():
    f = holt_winters(intervals=(0.8, 0.5))
    samples = noisy_days(3, seed=1)
    for ts, y in samples[:600]:
        f.update(ts, y)
    restored = RiverForecaster.from_state(json.loads(json.dumps(f.to_state())))
    for ts, y in samples[600:]:
        for h in (60.0, 600.0, 1800.0):
            assert restored.forecast_at(ts, h) == f.forecast_at(ts, h)
            assert restored.forecast_at(ts, h, 0.5) == f.forecast_at(ts, h, 0.5)
        f.update(ts, y)
        restored.update(ts, y)
    assert restored.to_state() == f.to_state()


def test_memory_is_bounded():
    f = holt_winters()
    sizes = []
    for days in (2, 4):
        for ts, y in noisy_days(2, seed=days):
            f.update(ts + (days - 2) * DAY_S, y)
        sizes.append(len(json.dumps(f.to_state())))
        assert all(len(p) <= f.pending_per_horizon for p in f._pending)
    assert sizes[1] < 1.05 * sizes[0]


def test_any_river_forecaster_serves_and_edge_cases():
    f = RiverForecaster(time_series.SNARIMAX(p=1, d=0, q=0))
    assert f.forecast_at(0.0, 60.0).mean == 0.0  # nothing learned
    for i in range(500):
        f.update(15.0 * i, 40.0)
    f.update(100.0, 1e9)  # out of order: ignored
    fc = f.forecast_at(7500.0, 300.0)
    assert fc.mean == pytest.approx(40.0, rel=0.05)
    assert fc.lower <= fc.mean <= fc.upper
    with pytest.raises(ValueError, match="not tracked"):
        f.forecast_at(7500.0, 300.0, interval=0.5)
    with pytest.raises(ValueError):
        RiverForecaster(time_series.SNARIMAX(p=1, d=0, q=0), intervals=(1.5,))
    # Holt-Winters cannot forecast before a season: the last value stands in.
    young = holt_winters()
    young.update(0.0, 10.0)
    young.update(300.0, 12.0)
    assert young.forecast_at(300.0, 600.0).mean == 12.0


def test_the_predictive_policy_runs_on_a_river_forecaster():
    forecaster = holt_winters(
        intervals=(PREDICTIVE_CONFIG["interval"], PREDICTIVE_CONFIG["band_interval"])
    )
    policy = make_policy("predictive", 0.6, forecaster=forecaster)
    assert policy.forecaster is forecaster
    requested = 8
    decisions = []
    for ts, rps in noisy_days(2, step=15.0):
        new = policy.decide(ts, rps, requested, requested, rps / (requested * 100.0))
        if new is not None:
            requested = new
            decisions.append(new)
    assert policy.last_forecast.mean == pytest.approx(rps, rel=0.2)
    # About 1500 rps at the peak and 500 at night, at 100 rps per replica and 60 %.
    assert max(decisions) >= 20
    assert min(decisions) <= 12
    with pytest.raises(ValueError):
        make_policy("predictive", 0.6, forecaster=forecaster, prior=[1.0] * 168)
    with pytest.raises(ValueError):
        make_policy("hpa", 0.6, forecaster=forecaster)
